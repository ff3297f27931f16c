"""A fake Kubernetes API server on 127.0.0.1 for the kubernetes manager's tests.

It speaks the subset the manager uses, as plain JSON over HTTP (no TLS):

    POST   /api/v1/namespaces/NS/pods                       create (409 AlreadyExists)
    GET    /api/v1/namespaces/NS/pods?labelSelector=...     list (=, ==, !=, in, notin, exists)
    GET    /api/v1/namespaces/NS/pods/NAME                  read
    GET    /api/v1/namespaces/NS/pods/NAME/log              the container's output (text)
    DELETE /api/v1/namespaces/NS/pods/NAME                  delete (the pod is gone at once)

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


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float  # time.monotonic(), whatever the API's clock: the order of the requests
    status: int = 0


def _now_iso(delta: float = 0.0) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakePod:
    namespace: str
    body: dict[str, Any]
    script: Script
    clock: Callable[[], float] = time.monotonic
    created: float = field(default_factory=time.monotonic)
    output: bytearray = field(default_factory=bytearray)
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
        elif self.exit_code is None and now - self.started >= script.run:
            self.exit_code = script.exit_code
            self.output += script.log.encode()
            self.ended = now

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
            self.output += f"exec failed: {exc}\n".encode()
            self.exit_code, self.ended = 128, self.clock()
            return
        stream = self.process.stdout
        assert stream is not None

        def pump() -> None:
            with stream:
                for chunk in iter(lambda: stream.read1(65536), b""):
                    self.output += chunk

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
            self.requests.append(request)
            if self.fail_next:
                code = self.fail_next.pop(0)
                status, payload, ctype = code, _status_body(code, "ServiceUnavailable", "try again"), None
            else:
                status, payload, ctype = self._route(handler.command, url.path, query, body)
            request.status = status
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", ctype or "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, str | None]:
        found = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?", path)
        if not found:
            return 404, _status_body(404, "NotFound", f"no route {method} {path}"), None
        namespace, name, is_log = unquote(found.group(1)), found.group(2), bool(found.group(3))
        name = unquote(name) if name else None
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
            return 200, bytes(pod.output), "text/plain"
        if method == "GET":
            return 200, pod.as_json(), None
        if method == "DELETE":
            if self.on_delete is not None:
                self.on_delete(pod)
            pod.kill()
            pod.deleted = True
            del self.pods[(namespace, name)]
            return 200, pod.as_json(), None
        return 405, _status_body(405, "MethodNotAllowed", method), None

    def _create(self, namespace: str, body: Any) -> tuple[int, Any, str | None]:
        if not isinstance(body, dict) or body.get("kind") != "Pod":
            return 400, _status_body(400, "BadRequest", "not a Pod"), None
        name = body["metadata"].get("name", "")
        if (namespace, name) in self.pods:
            return 409, _status_body(409, "AlreadyExists", f'pods "{name}" already exists'), None
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
