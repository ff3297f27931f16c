"""The kubernetes manager's access to the API: clients per configuration (in-cluster or
kubeconfig), and the four requests it makes (create, list, read the log, delete), each
with a timeout, answering plain JSON values or raising with the API's own message.

Nothing here decides what a pod's state means (kubestatus.py) or what to do about it
(kubernetes.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagctl.errors import UsageError
from dagctl.managers.kubepod import CONTAINER, MISSING_CLIENT, PodPlace

REQUEST_TIMEOUT = (5.0, 15.0)  # (connect, read) seconds for every API request
LOG_REQUEST_TIMEOUT = (5.0, 60.0)
# HTTP statuses worth retrying; anything else in 4xx is a refusal (but see is_transient).
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


class ApiUnavailable(Exception):
    """The API could not be configured or reached; the message says why."""


def require_client() -> None:
    """Raise a one-line UsageError when the kubernetes client is not installed."""
    try:
        import kubernetes.client  # noqa: F401
    except ImportError:
        raise UsageError(MISSING_CLIENT) from None


def require_cluster_configuration(environ: Mapping[str, str] | None = None) -> None:
    """A scheduler with no way at all to reach a cluster is misconfigured, not waiting
    for an API: refuse to start (UsageError, exit 2). Once some configuration exists,
    an unreachable API is an outage the manager rides out ("will retry")."""
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST"):
        return  # in a pod: the in-cluster configuration
    configured = env.get("KUBECONFIG")
    candidates = [p for p in configured.split(os.pathsep) if p] if configured else []
    if not configured:
        candidates = [os.path.join(env.get("HOME") or os.path.expanduser("~"), ".kube", "config")]
    if any(os.path.isfile(os.path.expanduser(p)) for p in candidates):
        return
    where = f"KUBECONFIG={configured}" if configured else f"{candidates[0]}"
    raise UsageError(
        f"no Kubernetes cluster configuration: no kubeconfig ({where} does not exist) and not in a cluster",
        "set KUBECONFIG to your kubeconfig file, or run the scheduler in a pod of the cluster",
    )


def api_message(exc: Exception) -> str:
    """The API's own message for a refused request, else the exception in one line."""
    body = getattr(exc, "body", None)
    if isinstance(body, (str, bytes)):
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return f"{getattr(exc, 'status', '')} {message}".strip()
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if status is not None:
        return f"{status} {reason or ''}".strip()
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def is_quota_refusal(exc: Exception) -> bool:
    """403 "exceeded quota": the namespace's ResourceQuota is full for now; it frees up
    as other pods end, so this is a wait, not a refusal."""
    return getattr(exc, "status", None) == 403 and "exceeded quota" in api_message(exc)


def is_transient(exc: Exception) -> bool:
    status = getattr(exc, "status", None)
    if status is None:
        # A connection error, a timeout: no answer from the API.
        return not isinstance(exc, ValueError)
    return int(status) in TRANSIENT_STATUSES or is_quota_refusal(exc)


def retry_after(exc: Exception) -> float | None:
    """Seconds the API asked us to wait (429/503 Retry-After), or None."""
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(slots=True)
class _Client:
    core: Any = None
    error: str | None = None


class KubeApi:
    """CoreV1Api clients for in-cluster or kubeconfig credentials, made on first use."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self._clients: dict[bool, _Client] = {}

    def core(self, in_cluster: bool) -> Any:
        """Raises ApiUnavailable with the reason when the configuration cannot be loaded."""
        client = self._clients.get(in_cluster)
        if client is None:
            client = self._clients[in_cluster] = self._connect(in_cluster)
        if client.error is not None:
            raise ApiUnavailable(client.error)
        return client.core

    def _connect(self, in_cluster: bool) -> _Client:
        try:
            import kubernetes.client
            import kubernetes.config

            # Typed as Any: the client's own annotations differ between its versions.
            client: Any = kubernetes.client
            config: Any = kubernetes.config
            configuration = client.Configuration()
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
            # No retries inside the client: urllib3 would sleep through a 429's Retry-After
            # (or retry an unreachable API) inside the scheduler's loop; the manager
            # retries at its own pace instead, and every request stays short.
            configuration.retries = False
            return _Client(core=client.CoreV1Api(client.ApiClient(configuration)))
        except Exception as exc:
            which = "in-cluster configuration" if in_cluster else "kubeconfig"
            return _Client(
                error=f"cannot load the {which}: {' '.join(str(exc).split()) or type(exc).__name__}"
            )

    def create(self, place: PodPlace, manifest: Mapping[str, Any]) -> None:
        # Strict: a misspelt field (kube_security_context: {runAsUsr: 1}) is refused,
        # not silently dropped (newer clients refuse it themselves, as ValueError).
        self.core(place.in_cluster).create_namespaced_pod(
            place.namespace,
            manifest,
            field_validation="Strict",
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def list(self, in_cluster: bool, namespace: str, selector: str) -> list[dict[str, Any]]:
        response = self.core(in_cluster).list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
        return list(json.loads(response.data).get("items") or [])

    def delete(self, place: PodPlace) -> None:
        self.core(place.in_cluster).delete_namespaced_pod(
            place.name, place.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )

    def read_log(self, place: PodPlace, since_seconds: int | None) -> Any:
        """The container's log of the last `since_seconds` (all of it when None), each
        line prefixed by its RFC 3339 timestamp: a streaming response to read and release.
        (The client has no sinceTime; a relative window is measured on one clock, so it
        does not suffer from clock skew between us and the node.)"""
        options: dict[str, Any] = {}
        if since_seconds is not None:
            options["since_seconds"] = max(1, since_seconds)
        return self.core(place.in_cluster).read_namespaced_pod_log(
            place.name,
            place.namespace,
            container=CONTAINER,
            timestamps=True,
            _preload_content=False,
            _request_timeout=LOG_REQUEST_TIMEOUT,
            **options,
        )
