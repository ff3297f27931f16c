"""A scheduler starts and works on PostgreSQL whatever its host name (F31, issue 12
item 10): a pod of a long-named Deployment has a 63-character host name, and the
owner id (host-pid-token) used to overflow `varchar(64)`, a crash loop reported as
"check DATABASE_URL"."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dagctl.scheduling.scheduler import Scheduler as InProcessScheduler
from dagctl.store.records import OWNER_ID_LENGTH, owner_id
from dagctl.store.tables import scheduler as scheduler_table
from dagctl.store.tables import task_run
from tests.faults.conftest import DAGCTL, Harness, InProcess

pytestmark = pytest.mark.postgres

# What a pod of Deployment "nightly-warehouse-reconciliation-and-reporting" is called.
POD_HOST = "nightly-warehouse-reconciliation-and-reporting-7d9f8c6b5d-x2k9q"
LONGEST_HOST = "h" * 60 + "tail"  # Linux allows 64 characters
RECORD = """
#!/usr/bin/env bash
echo "$DAGCTL_RUN_ID" >> "$FAULT_OUT"
"""


def test_owner_ids_fit_their_columns_whatever_the_host_name() -> None:
    assert scheduler_table.c.id.type.length == OWNER_ID_LENGTH  # type: ignore[attr-defined]
    assert task_run.c.lease_owner.type.length == OWNER_ID_LENGTH  # type: ignore[attr-defined]
    seen = set()
    for length in range(300):
        host = ("pod-" * 80)[:length]
        made = owner_id(host=host, pid=4_194_304)
        assert len(made) <= OWNER_ID_LENGTH, (length, made)
        assert made.endswith("-4194304-" + made[-8:])
        seen.add(made)
    assert len(seen) == 300  # the random token keeps them apart
    long = owner_id(host=POD_HOST, pid=12, token="abcdef12")
    assert long.startswith("nightly-warehouse-reconci..") and long.endswith("7d9f8c6b5d-x2k9q-12-abcdef12")
    assert owner_id(host="db-1", pid=12, token="abcdef12") == "db-1-12-abcdef12"


def test_a_scheduler_with_a_long_injected_host_name_works_on_postgres(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without root: the host name goes through the function that builds the
    owner id, and the scheduler registers and claims with it, as `run()` does."""
    for name, value in harness.env().items():
        monkeypatch.setenv(name, value)
    harness.dag("chain", "description: d\nmax_active_runs: 3\n", first__sh=RECORD)
    harness.migrate()
    run_ids = harness.trigger_many("chain", 3)
    proc = InProcess(harness)
    try:
        owner = owner_id(host=LONGEST_HOST)
        proc.scheduler = InProcessScheduler(
            proc.store,
            harness.dags,
            proc.manager,
            proc.scheduler.options,
            clock=lambda: proc.now,
            owner=owner,
        )
        proc.store.register_scheduler(owner, proc.manager.name, proc.now)
        proc.run_until_idle()
    finally:
        proc.close()
    assert sorted(harness.executions()) == sorted(str(r) for r in run_ids)
    assert harness.sql("SELECT id FROM scheduler") == [(owner,)]
    assert harness.sql("SELECT DISTINCT lease_owner FROM task_run") in ([(owner,)], [(None,)])
    harness.check(triggered=run_ids, all_finished=True)


def _can_set_host_name() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "hostname", "probe"], capture_output=True, timeout=10, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_set_host_name(), reason="needs unshare --uts (root)")
def test_a_scheduler_on_a_host_with_a_63_character_name_starts_and_works(harness: Harness) -> None:
    assert len(POD_HOST) == 63
    harness.dag("job", "description: d\n", first__sh=RECORD)
    harness.migrate()
    run_id = int(harness.run("trigger", "job").stdout)
    result = subprocess.run(
        [
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$1" && exec "$2" schedule --until-idle',
            "sh",
            POD_HOST,
            DAGCTL,
        ],
        env=harness.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert harness.executions() == [str(run_id)]
    [(owner, host)] = harness.sql("SELECT id, host FROM scheduler")
    assert host == POD_HOST  # the full name is kept where it fits
    assert len(owner) <= OWNER_ID_LENGTH and owner.startswith("nightly-warehouse")
    harness.check(triggered=[run_id], all_finished=True)
