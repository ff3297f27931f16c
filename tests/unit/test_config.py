"""Every DAGCTL_* setting is read in dagctl/config.py, typed, and listed in `dagctl --help`
and the README; an invalid value is a usage error naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dagctl import config
from dagctl.errors import EXIT_USAGE, UsageError

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "dagctl"
# Variables a task is GIVEN (they describe its run), or that click or the tests own:
# not settings dagctl reads.
NOT_SETTINGS = {
    "DAGCTL_DAG",
    "DAGCTL_TASK",
    "DAGCTL_RUN_ID",
    "DAGCTL_ATTEMPT",
    "DAGCTL_LOGICAL_DATE",
    "DAGCTL_DATA_INTERVAL_START",
    "DAGCTL_DATA_INTERVAL_END",
    "DAGCTL_DS",
    "DAGCTL_PARAMS",
    "DAGCTL_OUTPUT",
    "DAGCTL_OUTPUTS",
    "DAGCTL_ITEM",
    "DAGCTL_ITEM_JSON",
    "DAGCTL_ITEM_INDEX",
    "DAGCTL_SQL_URL",
    "DAGCTL_COMPLETE",
    "DAGCTL_CONN_",  # DAGCTL_CONN_<NAME>: a connection handed to a task, not a setting
}


def _dagctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagctl", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_setting_read_in_the_package_is_declared_once_in_config() -> None:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r"\bDAGCTL_[A-Z_]+\b", path.read_text()))
    declared = {s.env for s in config.SETTINGS}
    assert names - NOT_SETTINGS - declared == set()
    readers = [
        p.relative_to(REPO)
        for p in PACKAGE.rglob("*.py")
        if p.name != "config.py"
        and re.search(
            r"environ(\.get)?\(?\[?\"DAGCTL_(?!("
            + "|".join(n.removeprefix("DAGCTL_") for n in NOT_SETTINGS)
            + r")\b)",
            p.read_text(),
        )
    ]
    assert readers == []


def test_help_and_readme_list_every_setting() -> None:
    result = _dagctl("--help")
    assert result.returncode == 0
    readme = (REPO / "README.md").read_text()
    for setting in config.SETTINGS:
        assert setting.env in result.stdout
        assert f"`{setting.env}`" in readme


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DAGCTL_LEASE_SECONDS", "abc"),
        ("DAGCTL_LEASE_SECONDS", "0"),
        ("DAGCTL_KILL_GRACE", "-1"),
        ("DAGCTL_LOG_CAP_BYTES", "lots"),
        ("DAGCTL_FAKE_NOW", "garbage"),
    ],
)
def test_an_invalid_setting_is_a_one_line_usage_error(name: str, value: str, tmp_path: Path) -> None:
    result = _dagctl("--dags", str(tmp_path), "list", **{name: value})
    assert result.returncode == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"dagctl: error: {name}=")
    assert "Traceback" not in result.stderr


def test_tuning_reads_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGCTL_LEASE_SECONDS", "4.5")
    monkeypatch.setenv("DAGCTL_LOG_CAP_BYTES", "4096")
    monkeypatch.setenv("DAGCTL_FAKE_NOW", "2024-03-31T00:30:00+02:00")
    config.tuning.cache_clear()
    try:
        tuning = config.tuning()
        assert tuning.lease_seconds == 4.5
        assert tuning.stale_after_seconds == 13.5
        assert tuning.log_cap_bytes == 4096
        assert tuning.fake_now is not None and tuning.fake_now.isoformat() == "2024-03-30T22:30:00"
        monkeypatch.setenv("DAGCTL_KUBE_POLL_SECONDS", "nope")
        config.tuning.cache_clear()
        with pytest.raises(UsageError, match="DAGCTL_KUBE_POLL_SECONDS"):
            config.tuning()
    finally:
        config.tuning.cache_clear()
