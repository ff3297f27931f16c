"""The schema revision this dagctl expects (the newest migration), importable without
SQLAlchemy (the `trigger` fast path checks it)."""

from __future__ import annotations

HEAD_REVISION = "0017"
