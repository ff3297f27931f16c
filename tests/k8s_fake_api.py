"""A fake Kubernetes API server on 127.0.0.1 for the kubernetes manager's tests.

It speaks the subset the manager uses, as plain JSON over HTTP (no TLS):

    POST   /api/v1/namespaces/NS/pods                       create (409 AlreadyExists)
    GET    /api/v1/namespaces/NS/pods?labelSelector=...     list (=, ==, !=, in, notin, exists)
    GET    /api/v1/namespaces/NS/pods/NAME                  read
    GET    /api/v1/namespaces/NS/pods/NAME/log              the container's output (text)
    DELETE /api/v1/namespaces/NS/pods/NAME                  delete (graceful: Terminating for
                                                             `deletion_grace` seconds, then gone)

Like a real API server it refuses what a real one refuses: a pod failing the official
schema or the API server's format rules (422 Invalid, with a Status body naming the
fields: the same checks as dagctl/managers/kubevalidate.py), a namespace that does not
exist (404, when `namespaces` is set), a pod over the namespace's quota (403 "exceeded
quota", when `quota_pods` is set), and requests while throttled (429 with Retry-After,
`throttle_next`). Logs honour `timestamps` and `sinceSeconds`.

Every request is recorded (`requests`). What a pod does is decided when it is created,
by `rule(pod) -> Script`, which the test sets: how long it stays Pending, then either
stuck (an image pull error, unschedulable) or Running for a while and ending with an
exit code and a log, or, with `execute=True`, the container's command (command + args)
really run here as a subprocess with the pod's env on top of `image_env`, its output
being the log and its exit code the container's. Phases are computed from the clock
at each request, so they advance by themselves: on `time.monotonic`, or on a
`FakeClock` shared with the manager under test, which moves only when the test says.

    api = FakeKubeApi(rule=lambda pod: Script(run=0.2, exit_code=3, log="boom\\n"))
    api.start()
    api.write_kubeconfig(tmp_path / "kubeconfig")   # then KUBECONFIG=that file
    ...
    api.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dagctl.managers.kubevalidate import Cause, pod_causes


class FakeClock:
    """A monotonic clock that moves only when told to. Give it to the fake API and to
    the manager (`clock=clock, sleep=clock.sleep`): pods then advance exactly as far as
    the test moves the time, however slow the machine."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@dataclass
class Script:
    pending: float = 0.1  # seconds in Pending (ContainerCreating) before anything else
    run: float = 0.2  # seconds Running (scripted mode)
    exit_code: int = 0
    log: str = ""
    reason: str | None = None  # terminated reason; default Completed / Error
    waiting_reason: str | None = None  # e.g. ErrImagePull: stays Pending with it, forever
    waiting_message: str = ""
    unschedulable: bool = False  # stays Pending, PodScheduled False / Unschedulable
    execute: bool = False  # really run command + args here
    progress: tuple[tuple[float, str], ...] = ()  # (seconds after start, text) printed while running
    evicted: bool = False  # at the end of `run`: Failed, reason Evicted (no exit code of the task's)
    node_lost: bool = False  # after `run`: phase Unknown, reason NodeLost, forever


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float  # time.monotonic(), whatever the API's clock: the order of the requests
    status: int = 0
    clock_at: float = 0.0  # the API's clock (a FakeClock's time in tests that share one)


def _now_iso(delta: float = 0.0) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakePod:
    namespace: str
    body: dict[str, Any]
    script: Script
    clock: Callable[[], float] = time.monotonic
    created: float = field(default_factory=time.monotonic)
    output: list[tuple[float, bytes]] = field(default_factory=list)  # (wall time, line)
    printed: int = 0  # of script.progress
    deleted_at: float | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None
    exit_code: int | None = None
    ended: float | None = None
    deleted: bool = False
    pump: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body["metadata"].get("labels") or {})

    @property
    def env(self) -> dict[str, str]:
        return {e["name"]: e.get("value", "") for e in self.body["spec"]["containers"][0].get("env") or []}

    def argv(self) -> list[str]:
        container = self.body["spec"]["containers"][0]
        return [*(container.get("command") or []), *(container.get("args") or [])]

    # ------------------------------------------------------------ the kubelet's part

    def advance(self, image_env: Mapping[str, str]) -> None:
        now = self.clock()
        script = self.script
        if script.waiting_reason or script.unschedulable or now - self.created < script.pending:
            return
        if self.started is None:
            self.started = self.created + script.pending
            if script.execute:
                self._start_process(image_env)
        if script.execute:
            if self.process is not None and self.exit_code is None and self.process.poll() is not None:
                self.exit_code = self.process.returncode
                self.ended = now
            return
        while self.printed < len(script.progress) and now - self.started >= script.progress[self.printed][0]:
            self.write(script.progress[self.printed][1].encode())
            self.printed += 1
        if self.exit_code is None and now - self.started >= script.run and not script.node_lost:
            self.exit_code = 137 if script.evicted else script.exit_code
            self.write(script.log.encode())
            self.ended = now

    def write(self, data: bytes) -> None:
        """Output as the kubelet stores it: lines, each with the time it was written."""
        now = time.time()
        self.output.extend((now, line) for line in data.splitlines(keepends=True))

    def log_text(self, timestamps: bool, since_seconds: float | None) -> bytes:
        since = time.time() - since_seconds if since_seconds is not None else None
        out = bytearray()
        for when, line in self.output:
            if since is not None and when < since:
                continue
            if timestamps:
                out += datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()
            out += line
        return bytes(out)

    def _start_process(self, image_env: Mapping[str, str]) -> None:
        env = {**image_env, **self.env}
        try:
            self.process = subprocess.Popen(
                self.argv(),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self.write(f"exec failed: {exc}\n".encode())
            self.exit_code, self.ended = 128, self.clock()
            return
        stream = self.process.stdout
        assert stream is not None

        def pump() -> None:
            with stream:
                for line in iter(stream.readline, b""):
                    self.write(line)

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_output(self) -> None:
        """Let the pump thread drain a finished process's pipe."""
        if self.pump is not None:
            self.pump.join(timeout=2)

    # ------------------------------------------------------------ the API's part

    def as_json(self) -> dict[str, Any]:
        body = json.loads(json.dumps(self.body))
        body["metadata"].setdefault("namespace", self.namespace)
        if self.deleted_at is not None:
            body["metadata"]["deletionTimestamp"] = _now_iso(self.clock() - self.deleted_at)
        body["metadata"]["uid"] = f"uid-{self.name}"
        body["metadata"]["creationTimestamp"] = _now_iso(self.clock() - self.created)
        body["status"] = self.status()
        return body

    def status(self) -> dict[str, Any]:
        script, now = self.script, self.clock()
        if script.unschedulable:
            return {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient cpu.",
                    }
                ],
            }
        if self.started is None or script.waiting_reason:
            reason = script.waiting_reason or "ContainerCreating"
            waiting = {"reason": reason}
            if script.waiting_message:
                waiting["message"] = script.waiting_message
            return {
                "phase": "Pending",
                "containerStatuses": [{"name": "task", "ready": False, "state": {"waiting": waiting}}],
            }
        started_at = _now_iso(now - self.started)
        if script.node_lost and now - self.started >= script.run:
            return {
                "phase": "Unknown",
                "reason": "NodeLost",
                "message": f"Node worker-3 which was running pod {self.name} is unresponsive",
                "startTime": started_at,
                "containerStatuses": [
                    {"name": "task", "ready": True, "state": {"running": {"startedAt": started_at}}}
                ],
            }
        if script.evicted and self.exit_code is not None:
            return {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 5Mi.",
                "startTime": started_at,
                "containerStatuses": [
                    {
                        "name": "task",
                        "ready": False,
                        "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}},
                    }
                ],
            }
        if self.exit_code is None:
            return {
                "phase": "Running",
                "startTime": started_at,
                "containerStatuses": [
                    {"name": "task", "ready": True, "state": {"running": {"startedAt": started_at}}}
                ],
            }
        code = self.exit_code
        reason = script.reason or ("Completed" if code == 0 else "Error")
        return {
            "phase": "Succeeded" if code == 0 else "Failed",
            "startTime": started_at,
            "containerStatuses": [
                {
                    "name": "task",
                    "ready": False,
                    "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started_at}},
                }
            ],
        }


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics for the forms the manager uses (and a few more)."""
    for term in _split_selector(selector):
        found = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if found:
            key, op, values = found.group(1), found.group(2), {v.strip() for v in found.group(3).split(",")}
            if (op == "in") != (key in labels and labels[key] in values):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _invalid_body(name: str, causes: list[Cause]) -> dict[str, Any]:
    """What a real API server answers for an invalid pod (422, reason Invalid)."""
    body = _status_body(422, "Invalid", f'Pod "{name}" is invalid: ' + ", ".join(c.render() for c in causes))
    reasons = {"Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired"}
    body["details"] = {
        "name": name,
        "kind": "Pod",
        "causes": [
            {
                "reason": next(
                    (r for k, r in reasons.items() if c.message.startswith(k)), "FieldValueNotSupported"
                ),
                "message": c.message,
                "field": c.field,
            }
            for c in causes
        ],
    }
    return body


def _status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubeApi:
    def __init__(
        self,
        rule: Callable[[dict[str, Any]], Script] | None = None,
        image_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rule: Callable[[dict[str, Any]], Script] = rule or (lambda pod: Script())
        self.clock = clock  # what pod phases are computed from
        self.image_env = dict(image_env or {})
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.requests: list[Request] = []
        self.on_delete: Callable[[FakePod], None] | None = None
        self.fail_next: list[int] = []  # statuses to answer the next requests with (e.g. 503)
        self.namespaces: set[str] | None = None  # None: every namespace exists
        self.quota_pods: int | None = None  # pods per namespace (not Terminating) the quota allows
        self.throttle_next: list[float] = []  # answer 429 with these Retry-After seconds
        self.deletion_grace = 0.0  # seconds a deleted pod stays Terminating
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ running

    def start(self) -> int:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                api._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client going away mid-connection (a killed scheduler) is no news

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self.lock:
            for pod in self.pods.values():
                pod.kill()

    def write_kubeconfig(self, path: Path, namespace: str | None = None) -> Path:
        context: dict[str, Any] = {"cluster": "fake", "user": "tester"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": context}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # ------------------------------------------------------------ what tests look at

    def calls(self, method: str | None = None, suffix: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (suffix is None or r.path.endswith(suffix))
            ]

    def created(self) -> list[dict[str, Any]]:
        """Bodies of the pods created (accepted or not), in order."""
        return [r.body for r in self.calls("POST")]

    def live(self) -> list[FakePod]:
        with self.lock:
            return list(self.pods.values())

    # ------------------------------------------------------------ HTTP

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        request = Request(handler.command, url.path, query, body, time.monotonic())
        with self.lock:
            request.clock_at = self.clock()
            self.requests.append(request)
            headers: dict[str, str] = {}
            if self.fail_next:
                code = self.fail_next.pop(0)
                status, payload, ctype = code, _status_body(code, "ServiceUnavailable", "try again"), None
            elif self.throttle_next:
                headers["Retry-After"] = f"{self.throttle_next.pop(0):g}"
                message = "the server has received too many requests and has asked us to try again later"
                status, payload, ctype = 429, _status_body(429, "TooManyRequests", message), None
            else:
                status, payload, ctype = self._route(handler.command, url.path, query, body)
            request.status = status
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", ctype or "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, str | None]:
        found = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?", path)
        if not found:
            return 404, _status_body(404, "NotFound", f"no route {method} {path}"), None
        namespace, name, is_log = unquote(found.group(1)), found.group(2), bool(found.group(3))
        name = unquote(name) if name else None
        if self.namespaces is not None and namespace not in self.namespaces:
            return 404, _status_body(404, "NotFound", f'namespaces "{namespace}" not found'), None
        self._expire()
        if name is None:
            if method == "POST":
                return self._create(namespace, body)
            if method == "GET":
                return self._list(namespace, query.get("labelSelector", ""))
            return 405, _status_body(405, "MethodNotAllowed", method), None
        pod = self.pods.get((namespace, name))
        if pod is None:
            return 404, _status_body(404, "NotFound", f'pods "{name}" not found'), None
        pod.advance(self.image_env)
        if is_log and method == "GET":
            if pod.started is None:
                why = "trying and failing to pull image" if pod.script.waiting_reason else "ContainerCreating"
                message = f'container "task" in pod "{name}" is waiting to start: {why}'
                return 400, _status_body(400, "BadRequest", message), None
            if pod.exit_code is not None:
                pod.wait_output()
            since = query.get("sinceSeconds")
            text = pod.log_text(query.get("timestamps") == "true", float(since) if since else None)
            return 200, text, "text/plain"
        if method == "GET":
            return 200, pod.as_json(), None
        if method == "DELETE":
            if pod.deleted_at is None:
                if self.on_delete is not None:
                    self.on_delete(pod)
                pod.kill()
                pod.deleted = True
                pod.deleted_at = self.clock()
            body = pod.as_json()
            self._expire()
            return 200, body, None
        return 405, _status_body(405, "MethodNotAllowed", method), None

    def _expire(self) -> None:
        """Pods deleted more than `deletion_grace` ago are gone (the kubelet confirmed)."""
        now = self.clock()
        for key, pod in list(self.pods.items()):
            if pod.deleted_at is not None and now - pod.deleted_at >= self.deletion_grace:
                del self.pods[key]

    def _create(self, namespace: str, body: Any) -> tuple[int, Any, str | None]:
        if not isinstance(body, dict) or body.get("kind") != "Pod":
            return 400, _status_body(400, "BadRequest", "not a Pod"), None
        name = body["metadata"].get("name", "")
        causes = pod_causes(body)
        if causes:
            return 422, _invalid_body(name, causes), None
        if (namespace, name) in self.pods:
            return 409, _status_body(409, "AlreadyExists", f'pods "{name}" already exists'), None
        if self.quota_pods is not None:
            used = sum(1 for (ns, _), p in self.pods.items() if ns == namespace and p.deleted_at is None)
            if used >= self.quota_pods:
                message = (
                    f'pods "{name}" is forbidden: exceeded quota: compute-resources, requested: pods=1,'
                    f" used: pods={used}, limited: pods={self.quota_pods}"
                )
                return 403, _status_body(403, "Forbidden", message), None
        pod = FakePod(namespace, body, self.rule(body), clock=self.clock, created=self.clock())
        self.pods[(namespace, name)] = pod
        return 201, pod.as_json(), None

    def _list(self, namespace: str, selector: str) -> tuple[int, Any, str | None]:
        items = []
        for (ns, _), pod in sorted(self.pods.items()):
            if ns == namespace and matches(selector, pod.labels):
                pod.advance(self.image_env)
                items.append(pod.as_json())
        return (
            200,
            {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items},
            None,
        )
