"""KubernetesManager in this process, against the fake API server of tests/k8s_fake_api.py,
driven the way the scheduler loop drives it (poll, next_wakeup, discard).

Tests about intervals and timeouts take the `clock` fixture: the manager and the fake
API then share a clock that moves only when the test moves it, so what they assert
does not depend on how busy the machine is."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from dagctl.dags.model import Dag, ParamSpec, Task
from dagctl.execution.attempt import FAILED, INTERRUPTED, SUCCESS, Attempt, Outcome, TaskContext
from dagctl.managers.kubepod import NO_IMAGE, SHUTDOWN_KILLED
from dagctl.managers.kubernetes import KubernetesManager
from tests.k8s_fake_api import FakeClock, FakeKubeApi, Script

pytestmark = pytest.mark.timeout(30)


def make_manager(kubeconfig: str, **kwargs: Any) -> KubernetesManager:
    options: dict[str, Any] = {"poll_interval": 0.05, "tail_interval": 60.0, **kwargs}
    manager = KubernetesManager(concurrency=4, kubeconfig=kubeconfig, installation="inst-1", **options)
    manager.bind("sched-1", "inst-1")
    return manager


def make_dag(config: dict[str, Any] | None = None, *, timeout: float | None = None, secret: str = "") -> Dag:
    tasks = {
        name: Task(name=name, folder="/dags/demo", type=kind)
        for name, kind in (("a.sh", "shell"), ("b.sh", "shell"), ("noop.yaml", "no_op"))
    }
    params = {"token": ParamSpec("token", {"type": "string"}, True, secret, secret=True)} if secret else {}
    return Dag(
        name="demo",
        folder="/dags/demo",
        description="d",
        tasks=MappingProxyType(tasks),
        fingerprint="f",
        params=MappingProxyType(params),
        timeout=timeout,
        worker_config=MappingProxyType({"kube_image": "img:1", "kube_in_cluster": False, **(config or {})}),
    )


def make_attempt(dag: Dag, task: str, task_run_id: int, attempt: int = 1) -> Attempt:
    params = {name: spec.default for name, spec in dag.params.items()}
    context = TaskContext(
        dag.name, task, 5, attempt, datetime(2024, 6, 1), params, secret_params=dag.secret_params
    )
    return Attempt(task_run_id, dag, dag.tasks[task], context)


def drain(
    manager: KubernetesManager, count: int, limit: float = 10.0, clock: FakeClock | None = None
) -> dict[int, Outcome]:
    """Poll until `count` outcomes came, waiting as the loop would; with `clock`, the
    waits (and `limit`) are on that clock, which moves instead of sleeping."""
    outcomes: dict[int, Outcome] = {}
    now, wait = (clock, clock.sleep) if clock is not None else (time.monotonic, time.sleep)
    deadline = now() + limit
    while len(outcomes) < count:
        assert now() < deadline, f"only {len(outcomes)} of {count} outcomes"
        for outcome in manager.poll().finished:
            assert outcome.task_run_id not in outcomes
            outcomes[outcome.task_run_id] = outcome
        wakeup = manager.next_wakeup()
        wait(0.5 if wakeup is None else min(0.5, wakeup))
    return outcomes


def test_success_failure_and_no_op(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: (
        Script(log="all good\n")
        if pod["metadata"]["labels"]["dagctl.io/task"] == "a.sh"
        else Script(exit_code=3, log="boom\n")
    )
    manager = make_manager(kubeconfig)
    dag = make_dag()
    manager.launch(make_attempt(dag, "a.sh", 1))
    manager.launch(make_attempt(dag, "b.sh", 2))
    manager.launch(make_attempt(dag, "noop.yaml", 3))
    assert manager.running() == 2  # the no_op has ended already, without a pod
    outcomes = drain(manager, 3)
    assert outcomes[1] == Outcome(1, SUCCESS, exit_code=0, log="all good\n")
    assert outcomes[2] == Outcome(2, FAILED, exit_code=3, error="exit code 3", log="boom\n")
    assert outcomes[3] == Outcome(3, SUCCESS)
    assert len(api.created()) == 2
    # Ended pods stay until the scheduler has recorded their outcome...
    assert not api.calls("DELETE") and len(api.live()) == 2
    manager.discard([1, 2, 3])
    # ... and then go, each after its log was read.
    assert not api.live()
    for name in (pod["metadata"]["name"] for pod in api.created()):
        (log_read,) = api.calls("GET", f"/{name}/log")
        (deleted,) = api.calls("DELETE", f"/{name}")
        assert log_read.at < deleted.at
    assert manager.running() == 0 and manager.next_wakeup() is None


def test_lists_by_label_selector_at_most_once_per_interval(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(run=1.0)
    manager = make_manager(kubeconfig, poll_interval=0.25, clock=clock, sleep=clock.sleep)
    dag = make_dag()
    manager.launch(make_attempt(dag, "a.sh", 10))
    manager.launch(make_attempt(dag, "b.sh", 11))
    for _ in range(120):  # a loop woken far more often than the interval, for 15/16 s
        manager.poll()
        clock.advance(1 / 128)
    lists = api.calls("GET", "/namespaces/default/pods")
    assert len(lists) == 4  # at 0, 0.25, 0.5 and 0.75 s
    instance = manager.instance
    assert lists[0].query == {
        "labelSelector": f"dagctl.io/instance={instance},dagctl.io/task-run-id in (10,11)"
    }
    assert 0 < (manager.next_wakeup() or 0) <= 0.25
    drain(manager, 2, clock=clock)


def test_stuck_image_pull_fails_after_the_pending_timeout(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(
        waiting_reason="ErrImagePull", waiting_message='pull access denied for "nope"'
    )
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    started = clock()
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": 0.5}), "a.sh", 1))
    (outcome,) = drain(manager, 1, clock=clock).values()
    assert clock() - started >= 0.5
    assert outcome.status == FAILED and outcome.exit_code is None
    assert outcome.error == 'the pod did not start within 0.5s: ErrImagePull: pull access denied for "nope"'
    assert not api.live()  # deleted at once: nothing more will come of it


def test_unschedulable_fails_after_the_pending_timeout(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(unschedulable=True)
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": "300ms"}), "a.sh", 1))
    (outcome,) = drain(manager, 1).values()
    assert outcome.error == (
        "the pod did not start within 0.3s: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    )


def test_timeout_and_cancel_read_the_log_then_delete_the_pod(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(run=30)
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag(timeout=0.4), "a.sh", 1))
    manager.launch(make_attempt(make_dag(), "b.sh", 2))
    clock.advance(0.2)
    assert not manager.poll().finished
    manager.cancel(2, "cancelled by dagctl cancel")
    assert manager.next_wakeup() == 0
    outcomes = drain(manager, 2, clock=clock)
    assert outcomes[1].status == FAILED and outcomes[1].error == "timed out after 0.4s"
    assert outcomes[2].status == FAILED and outcomes[2].error == "cancelled by dagctl cancel"
    assert not api.live()
    for name in (pod["metadata"]["name"] for pod in api.created()):
        assert api.calls("GET", f"/{name}/log")[0].at < api.calls("DELETE", f"/{name}")[0].at


def test_shutdown_waits_for_the_grace_then_deletes(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(run=0.2 if pod["metadata"]["labels"]["dagctl.io/task"] == "a.sh" else 30)
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    dag = make_dag()
    manager.launch(make_attempt(dag, "a.sh", 1))
    manager.launch(make_attempt(dag, "b.sh", 2))
    started = clock()
    result = manager.shutdown(1.0)
    assert 1.0 <= clock() - started < 3
    outcomes = {o.task_run_id: o for o in result.finished}
    assert outcomes[1].status == SUCCESS
    assert outcomes[2].status == INTERRUPTED and outcomes[2].error == SHUTDOWN_KILLED
    assert [p.labels["dagctl.io/task"] for p in api.live()] == ["a.sh"]  # until recorded
    with pytest.raises(RuntimeError):
        manager.launch(make_attempt(dag, "a.sh", 3))
    manager.discard([1, 2])
    assert not api.live()


def test_an_existing_pod_is_watched_not_started_again(api: FakeKubeApi, kubeconfig: str) -> None:
    """A scheduler died after creating the pod: whoever launches the attempt again
    (same attempt, so the same pod name) watches that pod."""
    api.rule = lambda pod: Script(run=0.5, log="ran once\n")
    dag = make_dag()
    first = make_manager(kubeconfig)
    first.launch(make_attempt(dag, "a.sh", 1))
    del first  # dies without a word
    second = make_manager(kubeconfig)
    second.launch(make_attempt(dag, "a.sh", 1))  # not knowing: the create answers 409
    third = make_manager(kubeconfig)
    assert third.found({"demo": dag}) == [1]
    third.launch(make_attempt(dag, "a.sh", 1))  # adopting what found() saw: no create
    for manager in (second, third):
        (outcome,) = drain(manager, 1).values()
        assert outcome == Outcome(1, SUCCESS, exit_code=0, log="ran once\n")
    assert [r.status for r in api.calls("POST")] == [201, 409]
    assert len(api.pods) == 1


def test_found_ignores_pods_of_another_state_database(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(run=30)
    dag = make_dag({"kube_namespace": "jobs"})
    other = make_manager(kubeconfig)
    other.bind("sched-9", "inst-other")
    other.launch(make_attempt(dag, "a.sh", 1))
    mine = make_manager(kubeconfig)
    mine.launch(make_attempt(dag, "b.sh", 2))
    watcher = make_manager(kubeconfig)
    assert watcher.found({"demo": dag}) == [2]
    assert mine.found({"demo": dag}) == []  # its own pods are not "found"
    watcher.discard([2])  # e.g. its attempt ended while its scheduler was away
    assert [p.labels["dagctl.io/task-run-id"] for p in api.live()] == ["1"]
    other.shutdown(0)


def test_transient_api_errors_are_retried(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(log="fine\n")
    manager = make_manager(kubeconfig)
    api.fail_next = [503]  # the create
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    assert manager.running() == 1
    api.fail_next = [503]  # the retry at the next tick
    deadline = time.monotonic() + 5
    while [r.status for r in api.calls("POST")] != [503, 503, 201]:
        assert time.monotonic() < deadline
        assert not manager.poll().finished
        time.sleep(0.01)
    api.fail_next = [500, 500]  # lists: no news, which is no failure
    (outcome,) = drain(manager, 1).values()
    assert outcome.status == SUCCESS and outcome.log == "fine\n"
    assert [r.status for r in api.calls("GET")].count(500) == 2


def test_refusals_and_bad_configuration_fail_the_attempt(api: FakeKubeApi, kubeconfig: str) -> None:
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag({"kube_image": ""}), "a.sh", 1))
    api.fail_next = [403]
    manager.launch(make_attempt(make_dag(), "b.sh", 2))
    outcomes = drain(manager, 2)
    assert outcomes[1].error is not None and outcomes[1].error.startswith(NO_IMAGE)
    assert outcomes[2].error == "kubernetes refused the pod: 403 try again"
    assert len(api.calls("POST")) == 1
    assert api.calls("POST")[0].query == {"fieldValidation": "Strict"}


def test_a_misspelt_field_is_refused_before_sending(api: FakeKubeApi, kubeconfig: str) -> None:
    """The official schema, strict: what the API would refuse never leaves."""
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag({"kube_security_context": {"runAsUsr": 1}}), "a.sh", 3))
    (outcome,) = drain(manager, 1).values()
    assert outcome.error == (
        "kubernetes would refuse the pod: spec.securityContext:"
        " Additional properties are not allowed ('runAsUsr' was unexpected)"
    )
    assert not api.calls("POST")


def test_a_pod_deleted_behind_our_back_fails_the_attempt(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(run=30)
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    api.pods.clear()
    (outcome,) = drain(manager, 1).values()
    assert outcome.status == FAILED and "disappeared" in (outcome.error or "")


def test_logs_are_capped_and_masked(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(log="token=hunter22\n" + "x" * 5000 + "\nthe end\n")
    manager = make_manager(kubeconfig, log_cap_bytes=1000)
    manager.launch(make_attempt(make_dag(secret="hunter22"), "a.sh", 1))
    (outcome,) = drain(manager, 1).values()
    assert outcome.log.startswith("token=***\n")
    assert outcome.log.endswith("x\nthe end\n") and "bytes of output truncated" in outcome.log
    assert outcome.log_truncated_bytes > 4000


def test_missing_kubeconfig_fails_attempts_with_the_reason(tmp_path: Path) -> None:
    manager = make_manager(str(tmp_path / "nope"))
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    (outcome,) = drain(manager, 1).values()
    assert outcome.status == FAILED
    assert outcome.error is not None and outcome.error.startswith("cannot load the kubeconfig:")
