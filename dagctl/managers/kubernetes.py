"""The kubernetes manager: one pod per task attempt, through the official client.

    dagctl schedule --manager kubernetes        # needs: pip install 'dagctl[kubernetes]'

Each claimed attempt becomes a pod (see `pod_manifest`) whose container runs
`dagctl run DAG TASK --run-id RUN --attempt N` in the image named by `kube_image`. That
command only runs the task: the run's params and logical date arrive as environment
variables (DAGCTL_PARAMS, DAGCTL_LOGICAL_DATE), so a pod needs no state database. The
scheduler keeps the lease, and this manager turns what the pod did into the attempt's
outcome: phase Succeeded is success, Failed is failed with the container's exit code.

The manager never blocks the loop for long: it lists its pods by label selector at most
once per `poll_interval` (0.5 s), one request per namespace, and `next_wakeup()` says
when the next list is due; there are no watch threads. Each API request has a timeout;
an unreachable API only delays news (nothing fails because of it, except a pod that
cannot even be created within `kube_pending_timeout`).

Lifecycle of a pod:
- created at `launch()`; a name already taken (HTTP 409) means the pod exists (the pod
  name is derived from the state database, DAG, task, run and attempt), and it is
  watched instead: a pod is never started twice for one attempt;
- the pod is checked first as an API server would (kubevalidate.py): a pod a cluster
  would refuse fails the attempt with the API server's message, before any request;
- a create refused for a full ResourceQuota (403 "exceeded quota"), throttled (429,
  after its Retry-After) or unanswered is tried again with a growing delay, until
  `kube_pending_timeout` (default 300 s) after the launch;
- a pod still Pending `kube_pending_timeout` after the launch, whatever it waits for
  (an image pull error, unschedulable, ContainerCreating on a volume that never
  mounts), fails the attempt: its logs are read, the pod deleted, the error names the
  reason;
- while a pod runs, its new log lines are read every TAIL_INTERVAL_S (2 s) and handed
  to the scheduler as LogChunks (kubelogs.py), so `dagctl logs -f` follows it;
- a pod whose node stopped reporting (phase Unknown, NodeLost) for
  `kube_pending_timeout` fails the attempt (it is run again elsewhere), and the task
  timeout counts on through it; an evicted pod fails as "the pod was evicted: ...";
- a running pod past the task's timeout, a cancelled one, and those still running
  when the scheduler's shutdown grace ends: logs read, pod deleted, attempt failed;
- a pod that ended: its logs are read (capped and masked like the worker's) into the
  Outcome; the pod is deleted only when the scheduler calls `discard()`, after the
  outcome and its logs are committed to the state database; a failed one is kept for
  a post-mortem when its task says `kube_keep_failed_pods: true` (delete them with
  `kubectl delete pod -l app.kubernetes.io/managed-by=dagctl,dagctl.io/dag=DAG`).

Adoption (see `dagctl.managers.base.AdoptingManager`): `found()` lists the pods of this
installation (labelled with the state database's installation id) that this manager
is not watching. The scheduler takes over those whose attempt's lease expired (their
scheduler died) and launches them again, which watches the existing pod instead of
creating one; pods of attempts that already ended are discarded.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagctl.execution.attempt import FAILED, INTERRUPTED, SUCCESS, Attempt, LogChunk, Outcome, PollResult
from dagctl.managers.kubeadopt import PodAdoption
from dagctl.managers.kubeapi import (
    ApiUnavailable,
    KubeApi,
    api_message,
    is_quota_refusal,
    is_transient,
    require_client,
    require_cluster_configuration,
    retry_after,
)
from dagctl.managers.kubelogs import TAIL_INTERVAL_S, LogTail
from dagctl.managers.kubepod import (
    LABEL_INSTANCE,
    LABEL_TASK_RUN,
    SELECTOR_CHUNK,
    SHUTDOWN_KILLED,
    SHUTDOWN_NOT_STARTED,
    PodPlace,
    PodSpecError,
    in_cluster_for,
    instance_label,
    keep_failed_pods,
    pending_timeout,
    pod_manifest,
)
from dagctl.managers.kubestatus import (
    container_status,
    failure,
    node_lost,
    pending_reason,
    seconds_since,
    seconds_text,
)
from dagctl.managers.kubevalidate import pod_causes

log = logging.getLogger("dagctl.kubernetes")

MAX_CREATE_DELAY_S = 30.0  # the longest wait between two tries to create a pod


@dataclass(slots=True)
class _Pod:
    attempt: Attempt
    place: PodPlace
    manifest: dict[str, Any]
    pending_timeout: float
    timeout: float | None
    launched: float
    tail: LogTail
    created: bool = False
    adopted: bool = False  # found existing (409): its times come from its status
    create_at: float = 0.0  # no try to create it before this (backoff)
    create_tries: int = 0
    refusal: str = ""  # why the last try to create it did not
    running_since: float | None = None
    lost_since: float | None = None
    next_tail: float = 0.0
    stop_reason: str | None = None


def _poll_interval_from_env() -> float:
    """DAGCTL_KUBE_POLL_SECONDS (see dagctl.config)."""
    from dagctl.config import tuning

    return tuning().kube_poll_seconds


class KubernetesManager(PodAdoption):
    """Runs attempts as pods; see the module docstring.

    Outcome fields: `status` SUCCESS/FAILED; `exit_code` the container's exit code
    (`dagctl run` exits with the task's code, 128+N when the task died from signal N),
    None when no container ended (stuck, timed out, cancelled, vanished, evicted);
    `error` None on success, else "exit code N", "exit code 137 (OOMKilled)", "timed
    out after Ns", "the pod did not start within Ns: ErrImagePull: ...", "the pod was
    evicted: ...", "kubernetes would refuse the pod: FIELD: ...", the cancel reason, or
    "killed at scheduler shutdown"; `log` the pod's log not yet handed over as
    LogChunks, capped and masked like the worker's.

    `clock` (seconds, monotonic) and `sleep` measure every interval and timeout (poll
    interval, pending timeout, task timeout, shutdown grace, log tail); tests pass their own.
    """

    name = "kubernetes"

    def __init__(
        self,
        concurrency: int | None = None,
        *,
        kubeconfig: str | None = None,
        poll_interval: float | None = None,
        log_cap_bytes: int | None = None,
        owner: str | None = None,
        installation: str | None = None,
        tail_interval: float = TAIL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        require_client()
        self._clock = clock
        self._sleep = sleep
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self.poll_interval = poll_interval if poll_interval is not None else _poll_interval_from_env()
        self.tail_interval = tail_interval
        self.log_cap_bytes = log_cap_bytes
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.instance = instance_label(installation or "standalone")
        self._api = KubeApi(kubeconfig)
        self._pods: dict[int, _Pod] = {}  # in flight: created, or being created
        self._ended: dict[int, PodPlace] = {}  # outcome reported; deleted by discard()
        self._kept: set[int] = set()  # failed pods kube_keep_failed_pods keeps for a post-mortem
        self._foreign: dict[int, PodPlace] = {}  # seen by the last found()
        self._doomed: dict[int, PodPlace] = {}  # deletions to retry
        self._done: list[Outcome] = []
        self._logs: list[LogChunk] = []
        self._next_list = 0.0
        self._trouble: str | None = None  # the API problem last logged
        self._places: dict[str, tuple[str, frozenset[tuple[bool, str]]]] = {}
        # The schema check (~15 ms) once per task definition: what differs between its
        # attempts (names, env values) never changes the pod's shape.
        self._shapes_ok: set[tuple[str, str, str]] = set()
        self._closed = False

    @property
    def kubeconfig(self) -> str | None:
        return self._api.kubeconfig

    # ------------------------------------------------------------ Manager protocol

    def launch(self, attempt: Attempt) -> None:
        """Create the attempt's pod and return; if it exists (found() saw it, or the
        create answers 409), watch it instead. A no_op succeeds without a pod; a
        configuration that cannot make a pod, or makes one a cluster would refuse,
        fails the attempt (reported by the next poll)."""
        key = attempt.task_run_id
        if self._closed:
            raise RuntimeError("the kubernetes manager has been shut down")
        if key in self._pods:
            raise ValueError(f"task run {key} is already launched")
        if attempt.task.type == "no_op":
            self._done.append(Outcome(key, SUCCESS))
            return
        try:
            pod = self._new_pod(attempt)
        except PodSpecError as exc:
            self._done.append(Outcome(key, FAILED, error=str(exc)))
            return
        self._pods[key] = pod
        if self._foreign.pop(key, None) == pod.place:
            # found() saw this very pod: the scheduler is adopting it, nothing to create.
            pod.created = pod.adopted = True
            self._next_list = 0.0
            return
        self._create(pod)

    def _new_pod(self, attempt: Attempt) -> _Pod:
        from dagctl.execution.environment import secret_values

        config = attempt.dag.worker_config_for(attempt.task)
        manifest = pod_manifest(attempt, owner=self.owner, instance=self.instance)
        shape = (attempt.dag.name, attempt.dag.fingerprint, attempt.task.name)
        causes = pod_causes(manifest, schema=shape not in self._shapes_ok)
        if causes:
            raise PodSpecError("kubernetes would refuse the pod: " + "; ".join(c.render() for c in causes))
        self._shapes_ok.add(shape)
        now = self._clock()
        return _Pod(
            attempt,
            PodPlace(in_cluster_for(config), manifest["metadata"]["namespace"], manifest["metadata"]["name"]),
            manifest,
            pending_timeout(config),
            attempt.dag.timeout_for(attempt.task) or None,
            now,
            LogTail(self.log_cap_bytes, secret_values(attempt.dag, attempt.context)),
            next_tail=now + self.tail_interval,
        )

    def poll(self) -> PollResult:
        """Outcomes of pods that ended (and of attempts that failed to start), and new
        log lines of running pods. Talks to the API at most once per poll_interval; in
        between it only hands over news."""
        now = self._clock()
        if now >= self._next_list:
            self._next_list = now + self.poll_interval
            self._tick(now)
        result = PollResult(finished=self._done, logs=self._logs)
        self._done, self._logs = [], []
        return result

    def running(self) -> int:
        """Pods in flight (being created, pending or running): they count against
        --concurrency, adopted ones included."""
        return len(self._pods)

    def wait_fds(self) -> Sequence[int]:
        return []

    def next_wakeup(self) -> float | None:
        if self._done or self._logs:
            return 0.0
        if self._pods or self._doomed:
            return max(0.0, self._next_list - self._clock())
        return None

    def cancel(self, task_run_id: int, reason: str) -> None:
        """The pod is deleted (its logs read first) at the next poll, which is due at
        once; the attempt fails with `reason`. Unknown ids are ignored."""
        pod = self._pods.get(task_run_id)
        if pod is None:
            return
        if not pod.created:
            self._fail_unstarted(pod, reason)
            self._delete(task_run_id, pod.place)  # in case a create whose answer was lost landed
            return
        pod.stop_reason = reason
        self._next_list = 0.0

    def shutdown(self, grace_seconds: float) -> PollResult:
        """Wait up to `grace_seconds` for the pods in flight to end, then delete the rest
        (logs read first; they end INTERRUPTED with "killed at scheduler shutdown", run
        again without counting against retries, as with the worker manager). Ended pods
        stay until discard(), which still works afterwards; launch() raises."""
        self._closed = True
        result = PollResult()
        deadline = self._clock() + max(0.0, grace_seconds)
        while self._pods:
            now = self._clock()
            if now >= deadline:
                break
            if now >= self._next_list:
                self._next_list = now + self.poll_interval
                self._tick(now)
                continue
            self._sleep(max(0.0, min(self._next_list, deadline) - now))
        for pod in list(self._pods.values()):
            if pod.created:
                self._stop(pod, SHUTDOWN_KILLED, INTERRUPTED)
            else:
                del self._pods[pod.attempt.task_run_id]
                self._delete(pod.attempt.task_run_id, pod.place)  # a create may have landed
                self._done.append(Outcome(pod.attempt.task_run_id, INTERRUPTED, error=SHUTDOWN_NOT_STARTED))
        result.finished, result.logs = self._done, self._logs
        self._done, self._logs = [], []
        return result

    # ------------------------------------------------------------ internals

    def _note_trouble(self, what: str) -> None:
        if self._trouble != what:
            log.warning("kubernetes API: %s (will retry)", what)
            self._trouble = what

    def _create(self, pod: _Pod) -> None:
        now = self._clock()
        pod.create_tries += 1
        try:
            self._api.create(pod.place, pod.manifest)
        except ApiUnavailable as exc:
            self._fail_unstarted(pod, str(exc))
            return
        except Exception as exc:
            if getattr(exc, "status", None) == 409:
                # The name is this attempt's (see pod_name): its pod exists already, made
                # by a scheduler that died or by an earlier try whose answer was lost.
                log.info("pod %s already exists: watching it", pod.place.name)
                pod.created = pod.adopted = True
                return
            message = pod.refusal = api_message(exc)
            if not is_transient(exc):
                if getattr(exc, "status", None) is None:  # the client's own check
                    self._fail_unstarted(pod, f"invalid pod: {message}")
                else:
                    self._fail_unstarted(pod, f"kubernetes refused the pod: {message}")
                return
            if now - pod.launched >= pod.pending_timeout:
                self._fail_unstarted(
                    pod, f"could not create the pod within {seconds_text(pod.pending_timeout)}s: {message}"
                )
                return
            # Quota and throttling are waits, not outages: they are not "trouble".
            if not is_quota_refusal(exc) and getattr(exc, "status", None) != 429:
                self._note_trouble(f"creating pod {pod.place.name}: {message}")
            else:
                log.info("pod %s not created yet: %s", pod.place.name, message)
            backoff = min(MAX_CREATE_DELAY_S, self.poll_interval * 2 ** (pod.create_tries - 1))
            pod.create_at = now + max(backoff, retry_after(exc) or 0.0)
            return
        pod.created = True
        log.debug(
            "created pod %s/%s for task run %d", pod.place.namespace, pod.place.name, pod.attempt.task_run_id
        )

    def _fail_unstarted(self, pod: _Pod, error: str) -> None:
        del self._pods[pod.attempt.task_run_id]
        self._done.append(Outcome(pod.attempt.task_run_id, FAILED, error=error))

    def _list(self, in_cluster: bool, namespace: str, selector: str) -> list[dict[str, Any]] | None:
        """The pods matching `selector`, as plain JSON; None when the API cannot say."""
        try:
            items = self._api.list(in_cluster, namespace, selector)
        except Exception as exc:
            self._note_trouble(f"listing pods in {namespace}: {api_message(exc)}")
            wait = retry_after(exc)
            if wait:  # throttled (429): the next list waits as long as the API asked
                self._next_list = max(self._next_list, self._clock() + wait)
            return None
        self._trouble = None
        return items

    def _tick(self, now: float) -> None:
        for key, place in list(self._doomed.items()):
            del self._doomed[key]
            self._delete(key, place)
        groups: dict[tuple[bool, str], list[_Pod]] = {}
        for pod in list(self._pods.values()):
            if not pod.created and now >= pod.create_at:
                self._create(pod)
            elif not pod.created and now - pod.launched >= pod.pending_timeout:
                self._fail_unstarted(
                    pod,
                    f"could not create the pod within {seconds_text(pod.pending_timeout)}s: {pod.refusal}",
                )
            if pod.created:
                groups.setdefault((pod.place.in_cluster, pod.place.namespace), []).append(pod)
        for (in_cluster, namespace), pods in groups.items():
            seen: dict[str, dict[str, Any]] = {}
            failed = False
            for start in range(0, len(pods), SELECTOR_CHUNK):
                ids = ",".join(str(p.attempt.task_run_id) for p in pods[start : start + SELECTOR_CHUNK])
                items = self._list(
                    in_cluster, namespace, f"{LABEL_INSTANCE}={self.instance},{LABEL_TASK_RUN} in ({ids})"
                )
                if items is None:
                    failed = True
                    break
                seen.update({str((i.get("metadata") or {}).get("name")): i for i in items})
            if failed:
                continue  # no news is not bad news: try again at the next tick
            for pod in pods:
                self._check(pod, seen.get(pod.place.name), now)

    def _check(self, pod: _Pod, state: Mapping[str, Any] | None, now: float) -> None:
        if pod.stop_reason is not None:
            self._stop(pod, pod.stop_reason)
            return
        key = pod.attempt.task_run_id
        if state is None:
            del self._pods[key]
            self._done.append(
                Outcome(
                    key,
                    FAILED,
                    error=f"pod {pod.place.name} disappeared before it ended (deleted outside dagctl?)",
                )
            )
            return
        phase = (state.get("status") or {}).get("phase")
        if phase == "Succeeded":
            self._finish(pod, SUCCESS, 0, None)
        elif phase == "Failed":
            code, error = failure(state)
            self._finish(pod, FAILED, code, error)
        elif phase == "Running" or (phase == "Unknown" and pod.running_since is not None):
            self._check_running(pod, state, now)
        elif now - pod.launched >= pod.pending_timeout:  # Pending, whatever for
            reason = pending_reason(state)
            self._stop(pod, f"the pod did not start within {seconds_text(pod.pending_timeout)}s: {reason}")

    def _check_running(self, pod: _Pod, state: Mapping[str, Any], now: float) -> None:
        if pod.running_since is None:
            # Our own pods: from when we first see them run (startedAt has whole
            # seconds only). Adopted ones may have run for long: from startedAt.
            elapsed = None
            if pod.adopted:
                started = (container_status(state).get("state") or {}).get("running") or {}
                elapsed = seconds_since(started.get("startedAt"))
            pod.running_since = now - (elapsed or 0.0)
        if pod.timeout is not None and now - pod.running_since >= pod.timeout:
            self._stop(pod, f"timed out after {seconds_text(pod.timeout)}s")
            return
        lost = node_lost(state)
        if lost is None:
            pod.lost_since = None
        else:
            if pod.lost_since is None:
                pod.lost_since = now
                log.warning("pod %s: its node stopped reporting: %s", pod.place.name, lost)
            if now - pod.lost_since >= pod.pending_timeout:
                self._stop(
                    pod, f"the pod's node stopped reporting for {seconds_text(pod.pending_timeout)}s: {lost}"
                )
                return
            return  # no log to read from a lost node
        if now >= pod.next_tail:
            pod.next_tail = now + self.tail_interval
            self._read_log(pod, final=False)
            text = pod.tail.buffer.take_new()
            if text:
                self._logs.append(LogChunk(pod.attempt.task_run_id, text))

    def _finish(self, pod: _Pod, status: str, exit_code: int | None, error: str | None) -> None:
        key = pod.attempt.task_run_id
        text, truncated = self._last_log(pod)
        del self._pods[key]
        self._ended[key] = pod.place
        if status == FAILED and keep_failed_pods(pod.attempt.dag.worker_config_for(pod.attempt.task)):
            self._kept.add(key)
        self._done.append(
            Outcome(key, status, exit_code=exit_code, error=error, log=text, log_truncated_bytes=truncated)
        )

    def _stop(self, pod: _Pod, reason: str, status: str = FAILED) -> None:
        """Logs first, then delete: the attempt ends `status` (failed) with `reason`."""
        key = pod.attempt.task_run_id
        text, truncated = self._last_log(pod)
        del self._pods[key]
        self._delete(key, pod.place)
        self._done.append(Outcome(key, status, error=reason, log=text, log_truncated_bytes=truncated))

    def _last_log(self, pod: _Pod) -> tuple[str, int]:
        """What is left of the log (the lines since the last tail), capped and masked;
        "" when there is none (it never started)."""
        self._read_log(pod, final=True)
        return pod.tail.buffer.finish(), pod.tail.buffer.truncated_bytes

    def _read_log(self, pod: _Pod, *, final: bool) -> None:
        """The container's new log lines into the pod's LogTail. A failed read while it
        runs is tried again at the next tail (same window); a failed last read is noted
        in the log itself."""
        try:
            response = self._api.read_log(pod.place, pod.tail.window())
            try:
                pod.tail.feed(response.stream(64 * 1024))
            finally:
                response.release_conn()
        except Exception as exc:
            if not final:
                pod.tail.rewind()
                return
            if getattr(exc, "status", None) != 400:  # 400: the container never started, so it has no log
                pod.tail.buffer.feed(
                    f"\n[dagctl: could not read the pod's log: {api_message(exc)}]\n".encode()
                )

    def _delete(self, key: int, place: PodPlace) -> None:
        try:
            self._api.delete(place)
        except ApiUnavailable:
            return
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return
            self._note_trouble(f"deleting pod {place.name}: {api_message(exc)}")
            self._doomed[key] = place
            return
        log.debug("deleted pod %s/%s", place.namespace, place.name)


__all__ = ["KubernetesManager", "require_client", "require_cluster_configuration"]
