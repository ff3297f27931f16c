"""`dagctl schedule --manager kubernetes`: the installed command as a subprocess, on
SQLite and PostgreSQL, against the fake Kubernetes API of tests/k8s_fake_api.py reached
through a kubeconfig. In the first test the fake "kubelet" really runs each pod's
command (`dagctl run ... --run-id ... --attempt ...`) with the pod's environment and a
state database URL that cannot work, so the pods prove they need none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagctl.managers.kubepod import MISSING_CLIENT, pod_name
from dagctl.store import open_store
from tests.acceptance.conftest import BIN, DAGCTL, Env
from tests.k8s_fake_api import FakeKubeApi, FakePod, Script

pytestmark = pytest.mark.timeout(60)

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/none"

ROOT_CONFIG = """
worker_config:
  kube_in_cluster: false
  kube_image: registry.example/dagctl-dags:7
  kube_namespace: data
  kube_command: [env, WRAPPED=yes]
  kube_env: {LANG: C.UTF-8}
  kube_requests_cpu: 0.25
  kube_requests_memory: 128Mi
  kube_limits_memory: 512Mi
  kube_service_account_name: etl-runner
  kube_node_selector: {pool: batch}
  kube_tolerations: [{key: batch, operator: Exists, effect: NoSchedule}]
  kube_security_context: {runAsNonRoot: true, runAsUser: 10001}
"""


class Cluster(Env):
    """An Env with a fake Kubernetes API, reached through a kubeconfig, and a root
    dagctl.yaml for the kubernetes manager."""

    def __init__(self, root: Path, db_url: str) -> None:
        super().__init__(root, db_url)
        (self.dags / "dagctl.yaml").write_text(ROOT_CONFIG)
        self.api = FakeKubeApi(
            image_env={
                "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(root),
                "DAGCTL_DAGS": str(self.dags),  # what the image's ENV sets
                "DATABASE_URL": UNREACHABLE_DB,
                "XDG_STATE_HOME": str(root / "pod-state"),
            }
        )
        self.api.start()
        self.kubeconfig = self.api.write_kubeconfig(root / "kubeconfig")
        self.extra_env.update(KUBECONFIG=str(self.kubeconfig), DAGCTL_KUBE_POLL_SECONDS="0.1")

    def schedule(
        self, *args: str, fake_now: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return super().schedule("--manager", "kubernetes", *args, fake_now=fake_now, **extra)

    def attempts(self, run_id: int) -> dict[tuple[str, int], dict[str, Any]]:
        store = open_store(self.db_url, migrate=False)
        try:
            return {(a["task_name"], a["attempt"]): a for a in store.task_runs([run_id])}
        finally:
            store.close()

    def installation(self) -> str:
        store = open_store(self.db_url, migrate=False)
        try:
            return store.installation_id()
        finally:
            store.close()

    def log(self, task_run_id: int) -> str:
        store = open_store(self.db_url, migrate=False)
        try:
            return "".join(text for _, text, _ in store.read_log(task_run_id))
        finally:
            store.close()


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, db_url)
    yield made
    made.api.close()


def test_pods_run_the_task_with_params_and_their_logs_are_stored_before_deletion(cluster: Cluster) -> None:
    cluster.dag(
        "etl",
        """
        description: ETL
        params:
          region: {type: string, default: emea}
          token: {type: string, default: "", secret: true}
        """,
        extract__sh="""
        #!/usr/bin/env bash
        # inputs: []
        echo "region=$region attempt=$DAGCTL_ATTEMPT run=$DAGCTL_RUN_ID wrapped=$WRAPPED lang=$LANG"
        echo "token=$token"
        """,
        load__py='''
        """
        inputs: [extract.sh]
        worker_config: {kube_limits_memory: 1Gi}
        """

        def run(context):
            print("loading", context["params"]["region"], context["logical_date"], context["attempt"])
        ''',
    )
    stored_at_delete: dict[str, str] = {}

    def on_delete(pod: FakePod) -> None:
        # The moment the manager deletes a pod, its log must already be in the state DB.
        stored_at_delete[pod.labels["dagctl.io/task"]] = cluster.log(int(pod.labels["dagctl.io/task-run-id"]))

    cluster.api.rule = lambda pod: Script(pending=0.05, execute=True)
    cluster.api.on_delete = on_delete
    region = "x; touch /tmp/pwned # $(id)"
    run_id = int(cluster.run("trigger", "etl", "-p", f"region={region}", "-p", "token=s3cr3t-v4lue").stdout)
    cluster.schedule("--until-idle")

    attempts = cluster.attempts(run_id)
    assert {k: a["status"] for k, a in attempts.items()} == {
        ("extract.sh", 1): "success",
        ("load.py", 1): "success",
    }
    extract = attempts[("extract.sh", 1)]
    created = cluster.api.created()
    assert [p["metadata"]["labels"]["dagctl.io/task"] for p in created] == ["extract.sh", "load.py"]
    pod = created[0]
    instance = cluster.installation()
    scheduler = pod["metadata"]["labels"]["dagctl.io/scheduler"]
    assert scheduler and created[1]["metadata"]["labels"]["dagctl.io/scheduler"] == scheduler
    params_json = json.dumps({"region": region, "token": "s3cr3t-v4lue"})
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(instance, "etl", "extract.sh", run_id, 1),
            "namespace": "data",
            "labels": {
                "app.kubernetes.io/managed-by": "dagctl",
                "dagctl.io/instance": instance,
                "dagctl.io/scheduler": scheduler,
                "dagctl.io/dag": "etl",
                "dagctl.io/task": "extract.sh",
                "dagctl.io/run-id": str(run_id),
                "dagctl.io/attempt": "1",
                "dagctl.io/task-run-id": str(extract["id"]),
            },
            "annotations": {"dagctl.io/dag": "etl", "dagctl.io/task": "extract.sh"},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "etl-runner",
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "task",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "image": "registry.example/dagctl-dags:7",
                    "command": ["env", "WRAPPED=yes", "dagctl"],
                    "args": ["run", "etl", "extract.sh", "--run-id", str(run_id), "--attempt", "1"],
                    "env": [
                        {"name": "LANG", "value": "C.UTF-8"},
                        {"name": "region", "value": region},
                        {"name": "token", "value": "s3cr3t-v4lue"},
                        {"name": "DAGCTL_DAG", "value": "etl"},
                        {"name": "DAGCTL_TASK", "value": "extract.sh"},
                        {"name": "DAGCTL_RUN_ID", "value": str(run_id)},
                        {"name": "DAGCTL_ATTEMPT", "value": "1"},
                        {"name": "DAGCTL_LOGICAL_DATE", "value": pod_env(pod)["DAGCTL_LOGICAL_DATE"]},
                        # An unscheduled DAG's data interval is its logical date itself.
                        {"name": "DAGCTL_DATA_INTERVAL_START", "value": pod_env(pod)["DAGCTL_LOGICAL_DATE"]},
                        {"name": "DAGCTL_DATA_INTERVAL_END", "value": pod_env(pod)["DAGCTL_LOGICAL_DATE"]},
                        {"name": "DAGCTL_DS", "value": pod_env(pod)["DAGCTL_LOGICAL_DATE"][:10]},
                        {"name": "DAGCTL_PARAMS", "value": params_json},
                    ],
                    "resources": {
                        "requests": {"cpu": "0.25", "memory": "128Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                }
            ],
        },
    }
    assert created[1]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "1Gi"}  # the task's own
    assert all(r.path.startswith("/api/v1/namespaces/data/") for r in cluster.api.requests)

    # The task really ran in the "pod", with the params, the attempt and the wrapper; the
    # secret is masked in the stored log; nothing ran through a shell.
    log = cluster.log(extract["id"])
    assert f"region={region} attempt=1 run={run_id} wrapped=yes lang=C.UTF-8\n" in log
    assert "token=***\n" in log and "s3cr3t" not in log
    assert not Path("/tmp/pwned").exists()
    load_log = cluster.log(cluster.attempts(run_id)[("load.py", 1)]["id"])
    assert f"loading {region} " in load_log and load_log.rstrip().endswith(" 1")

    # Each log was read, then stored, then the pod deleted; no pod is left.
    for body in created:
        name = body["metadata"]["name"]
        (log_read,) = cluster.api.calls("GET", f"/pods/{name}/log")
        (deleted,) = cluster.api.calls("DELETE", f"/pods/{name}")
        assert log_read.at < deleted.at
    assert stored_at_delete["extract.sh"] == log
    assert stored_at_delete["load.py"] == load_log
    assert not cluster.api.live()


def pod_env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


def test_failures_map_to_attempts_and_image_pull_errors_time_out(cluster: Cluster) -> None:
    cluster.dag(
        "flaky",
        """
        description: failures
        retry_delay: 0
        """,
        flaky__sh="""
        #!/usr/bin/env bash
        # retries: 1
        exit 0
        """,
        oom__sh="""
        #!/usr/bin/env bash
        # retries: 0
        exit 0
        """,
        pull__sh="""
        #!/usr/bin/env bash
        # retries: 0
        # worker_config: {kube_image: "registry.example/missing:1", kube_pending_timeout: 1s}
        exit 0
        """,
    )

    def rule(pod: dict[str, Any]) -> Script:
        labels = pod["metadata"]["labels"]
        task, attempt = labels["dagctl.io/task"], labels["dagctl.io/attempt"]
        if task == "flaky.sh":
            return Script(exit_code=3, log="first try failed\n") if attempt == "1" else Script(log="fine\n")
        if task == "oom.sh":
            return Script(exit_code=137, reason="OOMKilled", log="allocating\n")
        image = pod["spec"]["containers"][0]["image"]
        return Script(waiting_reason="ErrImagePull", waiting_message=f'failed to pull "{image}": not found')

    cluster.api.rule = rule
    run_id = int(cluster.run("trigger", "flaky").stdout)
    started = time.monotonic()
    cluster.schedule("--until-idle")
    assert time.monotonic() - started >= 1.0
    attempts = cluster.attempts(run_id)
    summary = {k: (a["status"], a["exit_code"], a["error"]) for k, a in attempts.items()}
    assert summary == {
        ("flaky.sh", 1): ("failed", 3, "exit code 3"),
        ("flaky.sh", 2): ("success", 0, None),
        ("oom.sh", 1): ("failed", 137, "exit code 137 (OOMKilled)"),
        ("pull.sh", 1): (
            "failed",
            None,
            "the pod did not start within 1s: ErrImagePull:"
            ' failed to pull "registry.example/missing:1": not found',
        ),
    }
    assert cluster.log(attempts[("flaky.sh", 1)]["id"]) == "first try failed\n"
    assert cluster.log(attempts[("flaky.sh", 2)]["id"]) == "fine\n"
    assert cluster.log(attempts[("oom.sh", 1)]["id"]) == "allocating\n"
    assert [r["status"] for r in json.loads(cluster.run("status", "-o", "json").stdout)] == ["failed"]
    assert len(cluster.api.created()) == 4 and not cluster.api.live()


def respelled(url: str) -> str:
    """The same database by another address: localhost for 127.0.0.1, a /./ in a path."""
    if "127.0.0.1" in url:
        return url.replace("127.0.0.1", "localhost")
    head, _, name = url.rpartition("/")
    return f"{head}/./{name}"


def test_a_restarted_scheduler_adopts_the_running_pod(cluster: Cluster) -> None:
    """... even when it reaches the state database by another URL: pods carry the
    database's installation id, not anything derived from the URL."""
    cluster.dag(
        "long",
        """
        description: one long task
        retry_delay: 0
        """,
        work__sh="""
        #!/usr/bin/env bash
        sleep 5
        """,
    )
    cluster.api.rule = lambda pod: Script(
        pending=0.1, run=5.0, progress=((0.1, "early\n"),), log="long work done\n"
    )
    run_id = int(cluster.run("trigger", "long").stdout)
    env = cluster.environ(DAGCTL_LEASE_SECONDS="2")
    argv = [DAGCTL, "schedule", "--manager", "kubernetes", "--poll-interval", "0.05", "--until-idle"]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        # Killed once it has stored the first lines of the running pod's log.
        while not (cluster.attempts(run_id) and cluster.log(cluster.attempts(run_id)[("work.sh", 1)]["id"])):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    other_url = respelled(cluster.db_url)
    assert other_url != cluster.db_url
    second = cluster.schedule("--until-idle", DAGCTL_LEASE_SECONDS="2", DATABASE_URL=other_url)

    assert "adopting attempt 1 of long/work.sh" in second.stderr
    attempts = cluster.attempts(run_id)
    assert list(attempts) == [("work.sh", 1)]  # not reaped, not retried
    (attempt,) = attempts.values()
    assert (attempt["status"], attempt["exit_code"], attempt["error"]) == ("success", 0, None)
    assert cluster.log(attempt["id"]) == "early\nlong work done\n"  # read again, stored once
    assert [r.status for r in cluster.api.calls("POST")] == [201]  # never created twice
    assert len(cluster.api.calls("DELETE")) == 1 and not cluster.api.live()


def test_dagctl_run_in_a_pod_needs_no_state_database(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "etl").mkdir(parents=True)
    (dags / "etl" / "workflow.yaml").write_text(
        "description: d\nparams: {region: {type: string, default: emea}}\n"
    )
    (dags / "etl" / "show.sh").write_text(
        'echo "$region $DAGCTL_ATTEMPT $DAGCTL_LOGICAL_DATE $DAGCTL_RUN_ID"\nexit 4\n'
    )
    env = {**os.environ, "DAGCTL_DAGS": str(dags), "DATABASE_URL": UNREACHABLE_DB}
    pod_env = {
        "DAGCTL_DAG": "etl",
        "DAGCTL_RUN_ID": "12",
        "DAGCTL_PARAMS": '{"region": "apac"}',
        "DAGCTL_LOGICAL_DATE": "2024-06-01T02:15:00+00:00",
    }
    argv = [DAGCTL, "run", "etl", "show.sh", "--run-id", "12", "--attempt", "3"]
    done = subprocess.run(
        argv, env={**env, **pod_env}, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout == "apac 3 2024-06-01T02:15:00+00:00 12\n"
    # The environment describes another run: the state database is asked (and unreachable).
    other = subprocess.run(
        [*argv[:-4], "--run-id", "13"], env={**env, **pod_env}, capture_output=True, text=True, timeout=30
    )
    assert other.returncode == 3, other.stderr
    # No --run-id: no database at all, as before.
    plain = subprocess.run(argv[:4], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert plain.returncode == 4 and plain.stdout.startswith("emea 1 ")


def test_without_the_client_a_one_line_error(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "kubernetes.py").write_text("raise ImportError('No module named kubernetes')\n")
    (tmp_path / "dags").mkdir()
    env = {**os.environ, "PYTHONPATH": str(shadow), "DAGCTL_DAGS": str(tmp_path / "dags")}
    done = subprocess.run(
        [DAGCTL, "schedule", "--manager", "kubernetes", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"dagctl: error: {MISSING_CLIENT}\n"


def test_validate_for_the_kubernetes_manager(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    (dags / "etl").mkdir(parents=True)
    (dags / "etl" / "workflow.yaml").write_text("description: d\n")
    (dags / "etl" / "a.sh").write_text("echo a\n")
    env = {**os.environ, "DAGCTL_DAGS": str(dags)}

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DAGCTL, "validate", *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    assert validate().returncode == 0
    done = validate("--manager", "kubernetes")
    assert done.returncode == 1
    assert done.stdout == (
        "dags/etl/a.sh:1: worker_config.kube_image is not set: the kubernetes manager needs the image"
        " to run the task in (set kube_image under worker_config in dagctl.yaml, workflow.yaml or the task"
        " header)\n"
    )
    (dags / "dagctl.yaml").write_text("worker_config: {kube_image: img}\n")
    assert validate("--manager", "kubernetes").returncode == 0
    unknown = validate("--manager", "kubernets")
    assert unknown.returncode == 2 and "did you mean 'kubernetes'" in unknown.stderr


def test_validate_refuses_what_a_cluster_would_refuse(tmp_path: Path) -> None:
    """The seven specs of issue 17, one per task, each reported at its task's file:line
    with the key to fix and where it is set; dagctl.yaml's own mistakes point there."""
    from tests.unit.test_kubevalidate import REFUSED

    dags = tmp_path / "dags"
    (dags / "etl").mkdir(parents=True)
    (dags / "dagctl.yaml").write_text("worker_config:\n  kube_image: img:1\n  kube_namespace: Data_Team\n")
    (dags / "etl" / "workflow.yaml").write_text("description: d\nworker_config: {kube_namespace: data}\n")
    (dags / "other").mkdir()
    (dags / "other" / "workflow.yaml").write_text("description: d\n")
    (dags / "other" / "x.sh").write_text("echo x\n")
    expected = []
    for index, (config, field, message) in enumerate(REFUSED[1:], start=1):
        key = next(iter(config))  # the requests-above-limits case names the request
        header = f"worker_config: {json.dumps(config)}"
        (dags / "etl" / f"t{index}.sh").write_text(f"#!/usr/bin/env bash\n# {header}\necho {index}\n")
        where = f"dags/etl/t{index}.sh:2"
        expected.append((where, field, message, f"(fix worker_config.{key} ({where}))"))
    env = {**os.environ, "DAGCTL_DAGS": str(dags)}
    done = subprocess.run(
        [DAGCTL, "validate", "--manager", "kubernetes"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 7, done.stdout
    for line, (where, field, message, fix) in zip(sorted(lines)[:6], expected, strict=True):
        assert line.startswith(f"{where}: kubernetes would refuse the pod: {field}: ")
        assert message in line and line.endswith(fix)
    (root,) = [line for line in lines if line.startswith("dags/other/x.sh:")]
    assert root.startswith(
        'dags/other/x.sh:1: kubernetes would refuse the pod: metadata.namespace: Invalid value: "Data_Team"'
    )
    assert root.endswith("(fix worker_config.kube_namespace (dags/dagctl.yaml:3))")


def test_a_running_pods_log_is_in_the_state_database_before_it_ends(cluster: Cluster) -> None:
    cluster.dag("tail", "description: d\n", work__sh="#!/usr/bin/env bash\nsleep 9\n")
    cluster.api.rule = lambda pod: Script(
        pending=0.05, run=3.0, progress=((0.1, "early line\n"),), log="late\n"
    )
    run_id = int(cluster.run("trigger", "tail").stdout)
    argv = [DAGCTL, "schedule", "--manager", "kubernetes", "--poll-interval", "0.05", "--until-idle"]
    scheduler = subprocess.Popen(argv, env=cluster.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline and scheduler.poll() is None
            attempts = cluster.attempts(run_id)
            if attempts and cluster.log(attempts[("work.sh", 1)]["id"]) == "early line\n":
                break
            time.sleep(0.25)
        (pod,) = cluster.api.live()
        assert pod.exit_code is None  # still running
        _, stderr = scheduler.communicate(timeout=30)
        assert scheduler.returncode == 0, stderr
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.communicate()
    (attempt,) = cluster.attempts(run_id).values()
    assert attempt["status"] == "success"
    assert cluster.log(attempt["id"]) == "early line\nlate\n"  # each line once
