"""SQLite's NOTIFY: a doorbell per scheduler, a FIFO in a folder beside the database file.

SQLite has no way to tell another process that something changed. Schedulers used to
read `PRAGMA data_version` every 50 ms, so a `trigger` waited up to 50 ms for its first
task and an idle scheduler woke 20 times a second. Now each scheduler opens a FIFO in
`.<database>-bells/` and waits on it; a process that queued work for others rings every
bell there after its commit (where PostgreSQL would have sent a NOTIFY). Reading
`data_version` stays, at a slower pace, for the writers that do not ring (another
version of dagctl, the sqlite3 shell): the bell is a hint, the database the truth.

No SQLAlchemy here: `trigger`'s fast path (store/fast_trigger.py) rings too.
FIFOs rather than Unix sockets because a socket's path is limited to 108 bytes, and a
database may live deep in a tree. A bell whose scheduler is gone has no reader: opening
it for writing fails with ENXIO, and the ringer removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

SUFFIX = ".bell"


def bells_of(database_file: Path) -> Path:
    """Where the bells of the schedulers of this database hang."""
    # Hidden: a database kept inside the DAGs folder must not add a DAG to it.
    return database_file.with_name(f".{database_file.name}-bells")


class Doorbell:
    """A scheduler's own bell: a descriptor to wait on, readable once somebody rang."""

    def __init__(self, database_file: Path) -> None:
        if not hasattr(os, "mkfifo"):  # not a POSIX system: the data version alone
            raise OSError(errno.ENOSYS, "no FIFOs on this system")
        folder = bells_of(database_file)
        folder.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Made under a name ringers skip, opened, then renamed into view: a ringer that
        # found it between mkfifo and open would take it for a dead one and remove it.
        hidden = folder / f".{name}"
        os.mkfifo(hidden)
        try:
            # Read and write: it never sees end-of-file when a ringer closes its end.
            self._fd = os.open(hidden, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            hidden.unlink(missing_ok=True)
            raise
        self.path = folder / f"{name}{SUFFIX}"
        os.rename(hidden, self.path)

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> bool:
        """Take every ring so far; True when there was one."""
        rang = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):
                rang = True
        return rang

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)


def ring(database_file: Path, *, except_bell: Path | None = None) -> None:
    """Wake every scheduler of this database (but the caller's own). Never fails: a bell
    that cannot be rung leaves that scheduler to notice at its next look."""
    try:
        entries = list(os.scandir(bells_of(database_file)))
    except OSError:
        return  # no scheduler ever hung a bell here
    for entry in entries:
        if not entry.name.endswith(SUFFIX) or (except_bell is not None and entry.path == str(except_bell)):
            continue
        try:
            fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nobody reads it: its scheduler is gone
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            continue
        try:
            os.write(fd, b"!")
        except OSError:
            pass  # full (rung often, not yet read) or otherwise unable: it wakes anyway
        finally:
            os.close(fd)


__all__ = ["Doorbell", "bells_of", "ring"]
