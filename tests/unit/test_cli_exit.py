"""`dagctl` skips the interpreter's teardown only when it has nothing left to do but
free memory, and always with the command's exit code and its output flushed."""

from __future__ import annotations

import atexit
import importlib
import subprocess
import sys
import threading

import pytest

main_module = importlib.import_module("dagctl.cli.main")  # dagctl.cli.main is also the function


class _Left(Exception):
    pass


@pytest.fixture
def quiet_process(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """A process as a short command leaves it (pytest's own hooks, threads and
    SQLAlchemy hidden); records how `_exit` left."""
    left: list[tuple[str, int]] = []

    def immediate(code: int) -> None:
        left.append(("at once", code))
        raise _Left

    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 0, raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.delitem(sys.modules, "sqlalchemy", raising=False)
    monkeypatch.setattr(main_module.os, "_exit", immediate)
    return left


def _leave(code: int, left: list[tuple[str, int]]) -> None:
    try:
        main_module._exit(code)
    except SystemExit as exc:
        left.append(("teardown", int(str(exc.code))))
    except _Left:
        pass


def test_a_quiet_process_leaves_at_once_with_its_code(quiet_process: list[tuple[str, int]]) -> None:
    _leave(3, quiet_process)
    assert quiet_process == [("at once", 3)]


@pytest.mark.parametrize("busy", ["a thread", "an atexit hook", "sqlalchemy"])
def test_anything_left_to_do_takes_the_usual_teardown(
    busy: str, quiet_process: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if busy == "a thread":
        monkeypatch.setattr(threading, "active_count", lambda: 2)
    elif busy == "an atexit hook":
        monkeypatch.setattr(atexit, "_ncallbacks", lambda: 1)
    else:
        monkeypatch.setitem(sys.modules, "sqlalchemy", sys)
    _leave(1, quiet_process)
    assert quiet_process == [("teardown", 1)]


def test_output_still_in_a_buffer_is_written_before_leaving() -> None:
    code = (
        "import sys\n"
        "sys.stdout = open(sys.stdout.fileno(), 'w', buffering=1 << 20, closefd=False)\n"
        "sys.stdout.write('x' * 100_000)\n"
        "sys.modules['dagctl.cli.main']._exit(4)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import dagctl.cli.main\n" + code], capture_output=True, text=True, check=False
    )
    assert (result.returncode, len(result.stdout), result.stderr) == (4, 100_000, "")
