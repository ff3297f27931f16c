from __future__ import annotations
def startup(cfg, backend): return []
