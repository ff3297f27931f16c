"""The installation id: a random value the first migration stored in the state
database (table `installation`), read once per Store. A mixin of `Store`.

It names what belongs to this installation outside the database: the kubernetes
manager labels its pods with it, so schedulers reaching one database by different URLs
adopt each other's pods, and two installations sharing a namespace never touch each
other's.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from sqlalchemy import select

from dagctl.store.tables import installation

if TYPE_CHECKING:
    from sqlalchemy import Connection


class InstallationOperations:
    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

    _installation_id: str | None = None

    def installation_id(self) -> str:
        """This state database's installation id (it never changes once migrated)."""
        if self._installation_id is None:
            with self._tx() as connection:
                value = connection.execute(
                    select(installation.c.installation_id).where(installation.c.id == 1)
                ).scalar_one()
            self._installation_id = str(value)
        return self._installation_id
