"""Work queues through the installed CLI: `schedule --manager kubernetes --queue k8s`
beside `schedule --manager worker --queue default`, against the fake Kubernetes API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.test_kubernetes_cli import Cluster
from tests.k8s_fake_api import Script

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, db_url)
    config = made.dags / "dagctl.yaml"
    config.write_text(config.read_text() + "queues:\n  k8s: {description: pods on the cluster}\n")
    yield made
    made.api.close()


def test_each_queue_runs_on_the_infrastructure_of_the_schedulers_serving_it(cluster: Cluster) -> None:
    cluster.dag(
        "train", "description: on the cluster\nqueue: k8s\n", fit__sh="echo fit\n", score__sh="echo s\n"
    )
    cluster.dag(
        "etl",
        "description: on the workers\n",
        load__sh="echo load\n",
        big__sh="# queue: k8s\necho big\n",  # a task's queue wins over its DAG's
    )
    cluster.api.rule = lambda pod: Script(pending=0.05, execute=True)
    train = int(cluster.run("trigger", "train").stdout)
    etl = int(cluster.run("trigger", "etl").stdout)
    workers = cluster.spawn(
        "schedule", "--manager", "worker", "--queue", "default", "--until-idle", "--poll-interval", "0.05"
    )
    try:
        cluster.schedule("--queue", "k8s", "--until-idle")
    finally:
        _, err = workers.communicate(timeout=60)
    assert workers.returncode == 0, err
    for run_id in (train, etl):
        assert {a["status"] for a in cluster.attempts(run_id).values()} == {"success"}
    pods = sorted(
        (p["metadata"]["labels"]["dagctl.io/dag"], p["metadata"]["labels"]["dagctl.io/task"])
        for p in cluster.api.created()
    )
    assert pods == [("etl", "big.sh"), ("train", "fit.sh"), ("train", "score.sh")]


def test_a_scheduler_of_another_queue_never_claims_default_tasks(cluster: Cluster) -> None:
    cluster.dag("etl", "description: default queue\n", load__sh="echo load\n")
    cluster.api.rule = lambda pod: Script(pending=0.05, execute=True)
    run_id = int(cluster.run("trigger", "etl").stdout)
    for _ in range(5):
        cluster.schedule("--queue", "k8s", "--once")
    assert {a["status"] for a in cluster.attempts(run_id).values()} == {"queued"}
    assert cluster.api.created() == []
    # `dagctl queues` tells why: the default queue has a waiting attempt and no live
    # scheduler (the k8s one has stopped, and it never served default).
    queues = {q["queue"]: q for q in json.loads(cluster.run("queues", "-o", "json").stdout)}
    assert (queues["default"]["waiting"], queues["default"]["served_by"]) == (1, [])
    assert queues["default"]["oldest_wait_seconds"] >= 0
    table = cluster.run("queues").stdout
    assert "no live scheduler" in table
    result = cluster.run("schedule", "--manager", "worker", "--until-idle", "--poll-interval", "0.05")
    assert result.returncode == 0
    assert {a["status"] for a in cluster.attempts(run_id).values()} == {"success"}


def test_a_paused_queue_keeps_its_attempts_waiting_until_unpaused(cluster: Cluster) -> None:
    cluster.dag("train", "description: paused queue\nqueue: k8s\n", fit__sh="echo fit\n")
    cluster.dag("etl", "description: default queue\n", load__sh="echo load\n")
    train = int(cluster.run("trigger", "train").stdout)
    etl = int(cluster.run("trigger", "etl").stdout)
    paused = cluster.run("queue", "pause", "k8s", "-o", "json")
    assert json.loads(paused.stdout) == {"queue": "k8s", "paused": True, "changed": True}
    typo = cluster.run("queue", "pause", "k8z", code=2)
    assert "did you mean 'k8s'?" in typo.stderr
    serve_both = ("schedule", "--manager", "worker", "--queue", "default", "--queue", "k8s")
    for _ in range(20):
        cluster.run(*serve_both, "--once", code=None)
        if {a["status"] for a in cluster.attempts(etl).values()} == {"success"}:
            break
    assert {a["status"] for a in cluster.attempts(etl).values()} == {"success"}
    assert {a["status"] for a in cluster.attempts(train).values()} == {"queued"}
    queues = {q["queue"]: q for q in json.loads(cluster.run("queues", "-o", "json").stdout)}
    assert (queues["k8s"]["paused"], queues["k8s"]["waiting"], queues["default"]["paused"]) == (
        True,
        1,
        False,
    )
    assert "paused" in cluster.run("queues").stdout
    why = json.loads(cluster.run("why", "train", "-o", "json").stdout)
    assert "queue_paused" in {r["code"] for r in why["reasons"]}
    cluster.run("queue", "unpause", "k8s")
    assert cluster.run(*serve_both, "--until-idle", "--poll-interval", "0.05").returncode == 0
    assert {a["status"] for a in cluster.attempts(train).values()} == {"success"}
