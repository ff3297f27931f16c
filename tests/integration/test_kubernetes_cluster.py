"""The kubernetes manager against what real clusters do, through the fake API server:
422 for invalid pods, missing namespaces, graceful deletion, a full ResourceQuota,
throttling, pods stuck in ContainerCreating, evictions, lost nodes, and logs tailed
while a pod runs. Timing tests share a FakeClock with the API (see
test_kubernetes_manager.py)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from dagctl.execution.attempt import FAILED, SUCCESS, Outcome
from dagctl.managers.kubepod import pod_manifest
from dagctl.managers.kubernetes import KubernetesManager
from tests.integration.test_kubernetes_manager import drain, make_attempt, make_dag, make_manager
from tests.k8s_fake_api import FakeClock, FakeKubeApi, Script
from tests.unit.test_kubepod import make_attempt as unit_attempt
from tests.unit.test_kubevalidate import REFUSED

pytestmark = pytest.mark.timeout(30)


def test_the_fake_api_refuses_the_seven_specs_with_422(api: FakeKubeApi, kubeconfig: str) -> None:
    core: Any = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))
    for config, field, message in REFUSED:
        pod = pod_manifest(unit_attempt({"kube_image": "img:1", **config}), owner="o", instance="i")
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.create_namespaced_pod(pod["metadata"]["namespace"], pod, _preload_content=False)
        assert refused.value.status == 422
        status = json.loads(refused.value.body)
        assert (status["kind"], status["status"], status["reason"], status["code"]) == (
            "Status",
            "Failure",
            "Invalid",
            422,
        )
        assert status["message"].startswith(f'Pod "{pod["metadata"]["name"]}" is invalid: {field}: ')
        (cause,) = status["details"]["causes"]
        assert cause["field"] == field and message in cause["message"]
    assert not api.live()


def test_a_missing_namespace_is_a_refusal(api: FakeKubeApi, kubeconfig: str) -> None:
    api.namespaces = {"default"}
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag({"kube_namespace": "nowhere"}), "a.sh", 1))
    (outcome,) = drain(manager, 1).values()
    assert outcome.error == 'kubernetes refused the pod: 404 namespaces "nowhere" not found'


def test_deleted_pods_stay_terminating_for_a_while(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(run=60)
    api.deletion_grace = 30
    dag = make_dag()
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(dag, "a.sh", 1))
    clock.advance(1)
    manager.poll()
    manager.cancel(1, "cancelled")
    (outcome,) = drain(manager, 1, clock=clock).values()
    assert outcome.error == "cancelled"
    (pod,) = api.live()
    assert "deletionTimestamp" in pod.as_json()["metadata"]  # Terminating
    assert make_manager(kubeconfig).found({"demo": dag}) == []  # not news: it is going
    clock.advance(30)
    assert api.calls("GET") and not make_manager(kubeconfig).found({"demo": dag}) and not api.live()


def run_all(
    manager: KubernetesManager, count: int, clock: FakeClock, limit: float = 120
) -> dict[int, Outcome]:
    """drain(), and discard each outcome at once as the scheduler does once recorded."""
    outcomes: dict[int, Outcome] = {}
    deadline = clock() + limit
    while len(outcomes) < count:
        assert clock() < deadline, f"only {len(outcomes)} of {count} outcomes"
        finished = manager.poll().finished
        outcomes.update((o.task_run_id, o) for o in finished)
        manager.discard([o.task_run_id for o in finished])
        wakeup = manager.next_wakeup()
        clock.advance(0.5 if wakeup is None else min(0.5, wakeup))
    return outcomes


def test_a_full_quota_is_waited_for_with_backoff(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.rule = lambda pod: Script(run=5, log="done\n")
    api.quota_pods = 1
    dag = make_dag()
    manager = make_manager(kubeconfig, poll_interval=0.5, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(dag, "a.sh", 1))
    manager.launch(make_attempt(dag, "b.sh", 2))
    outcomes = run_all(manager, 2, clock)
    assert {o.status for o in outcomes.values()} == {SUCCESS}
    posts = api.calls("POST")
    refused = [r for r in posts if r.status == 403]
    assert posts[-1].status == 201 and len(refused) >= 3
    gaps = [b.clock_at - a.clock_at for a, b in itertools.pairwise(refused)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]  # a growing delay, not one try per tick


def test_a_quota_that_stays_full_fails_at_the_pending_timeout(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.quota_pods = 0
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": "20s"}), "a.sh", 1))
    (outcome,) = run_all(manager, 1, clock).values()
    assert outcome.status == FAILED and outcome.error is not None
    assert outcome.error.startswith("could not create the pod within 20s: 403 pods ")
    assert "exceeded quota: compute-resources" in outcome.error
    assert len(api.calls("POST")) < 20  # backed off, not hammered every 50 ms


def test_429_waits_for_retry_after(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.throttle_next = [3]
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    started = clock()
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    assert [r.status for r in api.calls("POST")] == [429]
    (outcome,) = run_all(manager, 1, clock).values()
    assert outcome.status == SUCCESS
    assert [r.status for r in api.calls("POST")] == [429, 201]
    assert clock() - started >= 3


def test_container_creating_counts_toward_the_pending_timeout(
    api: FakeKubeApi, kubeconfig: str, clock: FakeClock
) -> None:
    api.rule = lambda pod: Script(waiting_reason="ContainerCreating")
    manager = make_manager(kubeconfig, poll_interval=0.25, clock=clock, sleep=clock.sleep)
    started = clock()
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": 2}), "a.sh", 1))
    (outcome,) = run_all(manager, 1, clock).values()
    assert outcome.error == "the pod did not start within 2s: ContainerCreating"
    assert 2 <= clock() - started < 3 and not api.live()


def test_evicted_pods_are_reported_as_evicted(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.rule = lambda pod: Script(run=1, evicted=True)
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    (outcome,) = run_all(manager, 1, clock).values()
    assert (outcome.status, outcome.exit_code) == (FAILED, None)
    assert outcome.error == (
        "the pod was evicted: The node was low on resource: memory."
        " Threshold quantity: 100Mi, available: 5Mi."
    )


def test_a_pod_on_a_lost_node_is_bounded(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.rule = lambda pod: Script(run=1, node_lost=True)
    manager = make_manager(kubeconfig, poll_interval=0.5, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": 10}), "a.sh", 1))
    manager.launch(make_attempt(make_dag({"kube_pending_timeout": 600}, timeout=4), "b.sh", 2))
    outcomes = run_all(manager, 2, clock)
    assert outcomes[1].error is not None and outcomes[1].error.startswith(
        "the pod's node stopped reporting for 10s: Node worker-3 which was running pod"
    )
    assert outcomes[2].error == "timed out after 4s"  # the task timeout counts on through it
    assert not api.live()


def test_logs_are_tailed_while_the_pod_runs(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.rule = lambda pod: Script(
        run=10, progress=((0.5, "one\n"), (1.0, "two\n"), (6, "three\n")), log="end\n"
    )
    manager = make_manager(kubeconfig, tail_interval=2.0, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    chunks: list[tuple[float, str]] = []
    outcome = None
    while outcome is None:
        result = manager.poll()
        chunks += [(clock(), c.text) for c in result.logs]
        outcome = result.finished[0] if result.finished else None
        clock.advance(0.25)
    assert [text for _, text in chunks] == ["one\ntwo\n", "three\n"]
    assert all(at < clock() - 2 for at, _ in chunks)  # while it ran, not at its end
    assert outcome.log == "end\n"  # the rest: each line stored exactly once
    assert len(api.calls("GET", "/log")) >= 4


def test_what_a_cluster_refuses_fails_the_attempt_before_any_request(
    api: FakeKubeApi, kubeconfig: str
) -> None:
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(make_dag({"kube_requests_memory": "256MB"}), "a.sh", 1))
    (outcome,) = drain(manager, 1).values()
    assert outcome.error is not None and outcome.error.startswith(
        "kubernetes would refuse the pod: spec.containers[0].resources.requests[memory]:"
        ' Invalid value: "256MB": quantities must match the regular expression'
    )
    assert not api.requests


def test_failed_pods_are_kept_when_asked(api: FakeKubeApi, kubeconfig: str) -> None:
    api.rule = lambda pod: Script(exit_code=0 if pod["metadata"]["labels"]["dagctl.io/task"] == "a.sh" else 2)
    dag = make_dag({"kube_keep_failed_pods": True})
    manager = make_manager(kubeconfig)
    manager.launch(make_attempt(dag, "a.sh", 1))
    manager.launch(make_attempt(dag, "b.sh", 2))
    outcomes = drain(manager, 2)
    assert (outcomes[1].status, outcomes[2].status) == (SUCCESS, FAILED)
    manager.discard([1, 2])
    assert [p.labels["dagctl.io/task"] for p in api.live()] == ["b.sh"]  # the failed one, for a post-mortem
    # Another scheduler finding it (its attempt already recorded) keeps it too.
    other = make_manager(kubeconfig)
    assert other.found({"demo": dag}) == [2]
    other.discard([2])
    assert len(api.live()) == 1


def test_a_throttled_list_waits_for_retry_after(api: FakeKubeApi, kubeconfig: str, clock: FakeClock) -> None:
    api.rule = lambda pod: Script(run=30)
    manager = make_manager(kubeconfig, clock=clock, sleep=clock.sleep)
    manager.launch(make_attempt(make_dag(), "a.sh", 1))
    api.throttle_next = [4]
    manager.poll()  # the list answers 429, Retry-After: 4
    assert [r.status for r in api.calls("GET")] == [429]
    for _ in range(30):  # 3 s of a busy loop: no request
        clock.advance(0.1)
        manager.poll()
    assert len(api.calls("GET")) == 1
    clock.advance(1)
    manager.poll()
    assert [r.status for r in api.calls("GET")] == [429, 200]
    manager.shutdown(0)
