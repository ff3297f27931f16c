"""The checks a Kubernetes API server makes on a Pod, made before anything is sent.

Two layers, as in the API server: the object's shape against the official schema
(`kubernetes-validate`, which ships the OpenAPI schemas of every Kubernetes version,
strict: a misspelt field is an error), and the format rules the schema cannot express,
written after the API server's own validation (k8s.io/apimachinery validation, and
pkg/apis/core/validation): DNS-1123 names, label keys and values, quantities, env var
names, requests <= limits, tolerations. Messages are the API server's, with the field
path it would name, so what `validate --manager kubernetes` prints is what a cluster
would have answered with 422.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = rf"({QUALIFIED_NAME})?"
ENV_VAR_NAME = r"[-._a-zA-Z][-._a-zA-Z0-9]*"
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_LABEL = re.compile(DNS1123_LABEL)
_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN)
_QUALIFIED = re.compile(QUALIFIED_NAME)
_LABEL_VALUE = re.compile(LABEL_VALUE)
_ENV_NAME = re.compile(ENV_VAR_NAME)
_QUANTITY = re.compile(
    r"([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?"
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage"})
_TOLERATION_EFFECTS = frozenset({"", "NoSchedule", "PreferNoSchedule", "NoExecute"})
_PULL_POLICIES = frozenset({"Always", "IfNotPresent", "Never"})


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason the API server would refuse the pod: the field and its message."""

    field: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}"


def _invalid(field: str, value: Any, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return Cause(field, f"Invalid value: {shown}: {why}")


def dns_label_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL.fullmatch(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
            " and must start and end with an alphanumeric character (e.g. 'my-name', or"
            f" '123-abc', regex used for validation is '{DNS1123_LABEL}')"
        )
    return None


def dns_subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _SUBDOMAIN.fullmatch(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
            " '-' or '.', and must start and end with an alphanumeric character (e.g."
            f" 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
        )
    return None


def qualified_name_error(value: str) -> str | None:
    """A label or annotation key: an optional DNS subdomain prefix and a name."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns_subdomain_error(prefix)):
        return "prefix part " + (dns_subdomain_error(prefix) or "must be non-empty")
    if not name or len(name) > 63 or not _QUALIFIED.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start"
            " and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or"
            f" '123-abc', regex used for validation is '{QUALIFIED_NAME}'), at most 63 characters"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.fullmatch(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-',"
            " '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',"
            f" or 'my_value', or '12345', regex used for validation is '{LABEL_VALUE}')"
        )
    return None


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`500m`, `1.5Gi`, `2`, `1e3`) as a number, None if it is not one."""
    text = str(value).strip() if isinstance(value, (str, int, float)) else None
    if text is None or isinstance(value, bool):
        return None
    match = _QUANTITY.fullmatch(text)
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))


def _metadata(metadata: Mapping[str, Any], out: list[Cause]) -> None:
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and (why := dns_label_error(namespace)):
        out.append(_invalid("metadata.namespace", namespace, why))
    name = metadata.get("name")
    if isinstance(name, str) and (why := dns_subdomain_error(name)):
        out.append(_invalid("metadata.name", name, why))
    for key, value in (metadata.get("labels") or {}).items():
        if why := qualified_name_error(str(key)):
            out.append(_invalid("metadata.labels", key, why))
        if not isinstance(value, str) or (why := label_value_error(value)):
            out.append(_invalid(f"metadata.labels[{key}]", value, why or "must be a string"))
    for key in metadata.get("annotations") or {}:
        if why := qualified_name_error(str(key)):
            out.append(_invalid("metadata.annotations", key, why))


def _resources(field: str, resources: Mapping[str, Any], out: list[Cause]) -> None:
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("limits", "requests"):
        for name, value in (resources.get(kind) or {}).items():
            where = f"{field}.{kind}[{name}]"
            if "/" not in name and name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
                out.append(_invalid(where, name, "must be a standard resource type or fully qualified"))
                continue
            if "/" in name and (why := qualified_name_error(name)):
                out.append(_invalid(where, name, why))
                continue
            quantity = parse_quantity(value)
            if quantity is None:
                out.append(
                    _invalid(where, value, f"quantities must match the regular expression '{QUANTITY}'")
                )
                continue
            if quantity < 0:
                out.append(_invalid(where, value, "must be greater than or equal to 0"))
                continue
            if "/" in name and quantity != quantity.to_integral_value():
                out.append(_invalid(where, value, "must be an integer"))
                continue
            parsed.setdefault(kind, {})[name] = quantity
    limits = parsed.get("limits", {})
    for name, request in parsed.get("requests", {}).items():
        where = f"{field}.requests[{name}]"
        shown = (resources.get("requests") or {})[name]
        limit = limits.get(name)
        if limit is not None and request > limit:
            limit_text = (resources.get("limits") or {})[name]
            out.append(
                _invalid(where, str(shown), f"must be less than or equal to {name} limit of {limit_text}")
            )
        elif "/" in name and "kubernetes.io/" not in name and limit is None:
            out.append(_invalid(where, str(shown), f"{name} must have a limit equal to its request"))
        elif "/" in name and limit is not None and limit != request:
            out.append(_invalid(where, str(shown), f"must be equal to {name} limit of {limit}"))


def _container(field: str, container: Mapping[str, Any], volumes: set[str], out: list[Cause]) -> None:
    name = container.get("name")
    if isinstance(name, str) and (why := dns_label_error(name)):
        out.append(_invalid(f"{field}.name", name, why))
    if not container.get("image"):
        out.append(Cause(f"{field}.image", "Required value"))
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        out.append(
            Cause(
                f"{field}.imagePullPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "IfNotPresent", "Never"',
            )
        )
    for index, variable in enumerate(container.get("env") or []):
        env_name = variable.get("name") if isinstance(variable, Mapping) else None
        if isinstance(env_name, str) and not _ENV_NAME.fullmatch(env_name):
            out.append(
                _invalid(
                    f"{field}.env[{index}].name",
                    env_name,
                    "a valid environment variable name must consist of alphabetic characters, digits,"
                    " '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name', or"
                    f" 'MY_ENV.NAME', or 'MyEnvName1', regex used for validation is '{ENV_VAR_NAME}')",
                )
            )
    for index, mount in enumerate(container.get("volumeMounts") or []):
        mount_name = mount.get("name") if isinstance(mount, Mapping) else None
        if mount_name not in volumes:
            out.append(Cause(f"{field}.volumeMounts[{index}].name", f'Not found: "{mount_name}"'))
    resources = container.get("resources")
    if isinstance(resources, Mapping):
        _resources(f"{field}.resources", resources, out)


def _toleration_text(toleration: Mapping[str, Any]) -> str:
    """A toleration as the API server prints it in this message: core.Toleration{...}."""
    fields = ", ".join(f"{k.capitalize()}:{v!r}" for k, v in toleration.items())
    return f"core.Toleration{{{fields}}}"


def _tolerations(tolerations: Sequence[Any], out: list[Cause]) -> None:
    for index, toleration in enumerate(tolerations):
        if not isinstance(toleration, Mapping):
            continue
        field = f"spec.tolerations[{index}]"
        key, operator, value = (
            toleration.get("key") or "",
            toleration.get("operator") or "",
            toleration.get("value"),
        )
        if key and (why := qualified_name_error(str(key))):
            out.append(_invalid(f"{field}.key", key, why))
        if not key and operator != "Exists":
            out.append(
                _invalid(
                    f"{field}.operator",
                    operator,
                    "operator must be Exists when `key` is empty,"
                    ' which means "match all values and all keys"',
                )
            )
        if operator == "Exists" and value:
            out.append(
                _invalid(f"{field}.operator", toleration, "value must be empty when `operator` is 'Exists'")
            )
        elif operator not in ("", "Equal", "Exists"):
            out.append(
                Cause(
                    f"{field}.operator",
                    f'Unsupported value: "{operator}": supported values: "Equal", "Exists"',
                )
            )
        elif operator in ("", "Equal") and value is not None and (why := label_value_error(str(value))):
            out.append(_invalid(f"{field}.value", value, why))
        effect = toleration.get("effect") or ""
        if effect not in _TOLERATION_EFFECTS:
            out.append(
                Cause(
                    f"{field}.effect",
                    f'Unsupported value: "{effect}": supported values:'
                    ' "NoSchedule", "PreferNoSchedule", "NoExecute"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(
                _invalid(
                    f"{field}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"
                )
            )


def _names(field: str, items: Any, out: list[Cause]) -> None:
    for index, item in enumerate(items or []):
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and (why := dns_subdomain_error(name)):
            out.append(_invalid(f"{field}[{index}].name", name, why))


def format_causes(pod: Mapping[str, Any]) -> list[Cause]:
    """The API server's format rules for the fields dagctl and its users set."""
    out: list[Cause] = []
    _metadata(pod.get("metadata") or {}, out)
    spec = pod.get("spec") or {}
    for key in ("serviceAccountName", "priorityClassName"):
        value = spec.get(key)
        if isinstance(value, str) and value and (why := dns_subdomain_error(value)):
            out.append(_invalid(f"spec.{key}", value, why))
    for key, value in (spec.get("nodeSelector") or {}).items():
        if why := qualified_name_error(str(key)):
            out.append(_invalid("spec.nodeSelector", key, why))
        if not isinstance(value, str) or (why := label_value_error(value)):
            out.append(_invalid(f"spec.nodeSelector[{key}]", value, why or "must be a string"))
    _tolerations(spec.get("tolerations") or [], out)
    _names("spec.imagePullSecrets", spec.get("imagePullSecrets"), out)
    volumes: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") if isinstance(volume, Mapping) else None
        if isinstance(name, str) and (why := dns_label_error(name)):
            out.append(_invalid(f"spec.volumes[{index}].name", name, why))
        elif name in volumes:
            out.append(Cause(f"spec.volumes[{index}].name", f'Duplicate value: "{name}"'))
        volumes.add(str(name))
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            if isinstance(container, Mapping):
                _container(f"spec.{kind}[{index}]", container, volumes, out)
    return out


@lru_cache(maxsize=1)
def _schema_version() -> str | None:
    try:
        import kubernetes_validate
    except ImportError:
        return None
    return str(kubernetes_validate.latest_version())


def schema_causes(pod: Mapping[str, Any]) -> list[Cause]:
    """The pod against the official Pod schema (strict), when kubernetes-validate is
    installed (it comes with dagctl[kubernetes]); [] without it."""
    version = _schema_version()
    if version is None:
        return []
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(pod), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in exc.path).replace(".[", "[")
        return [Cause(where or "<pod>", str(exc.message))]
    return []


def pod_causes(pod: Mapping[str, Any], *, schema: bool = True) -> list[Cause]:
    """Everything an API server would refuse in `pod`: the schema first (a wrong shape
    makes the format rules moot), then the format rules."""
    causes = schema_causes(pod) if schema else []
    return causes or format_causes(pod)


# The "restricted" Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-standards),
# what a namespace labelled pod-security.kubernetes.io/enforce=restricted admits.
_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Why a namespace enforcing the restricted Pod Security Standard would refuse
    `pod` (its baseline and restricted controls), [] when it would admit it."""
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    out: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"{flag}=true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            out.append(f"volume {volume.get('name')!r} uses {', '.join(sorted(kinds - _RESTRICTED_VOLUMES))}")
    if pod_context.get("runAsUser") == 0:
        out.append("runAsUser=0")
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for container in containers:
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("privileged"):
            out.append(f"container {name!r}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            out.append(f"container {name!r}: allowPrivilegeEscalation != false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            out.append(f"container {name!r}: capabilities.drop does not include ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"container {name!r}: capabilities.add beyond NET_BIND_SERVICE")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            out.append(f"container {name!r}: runAsNonRoot != true")
        if context.get("runAsUser") == 0:
            out.append(f"container {name!r}: runAsUser=0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"container {name!r}: seccompProfile.type is not RuntimeDefault or Localhost")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            out.append(f"container {name!r}: hostPort")
    return out
