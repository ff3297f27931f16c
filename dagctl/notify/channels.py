"""Alert channels: `slack`, `email`, `webhook`, `command`, as declared under `channels:`
of dagctl.yaml. `${NAME}` references are read from the environment when a channel is
used; each value read is registered as a secret, so it is masked in every log and
message (dagctl/secrets.py). Every send has a timeout: delivery never hangs."""

from __future__ import annotations

import json
import re
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from dagctl import secrets

DEFAULT_TIMEOUT_S = 10.0
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ChannelError(Exception):
    """A delivery to one channel failed; the message is masked and one line."""


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    spec: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.spec.get("type"))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeout") or DEFAULT_TIMEOUT_S)

    def send(self, payload: Mapping[str, Any], text: str, environ: Mapping[str, str]) -> None:
        """Deliver one event; ChannelError when it did not arrive."""
        try:
            sender = _SENDERS[self.kind]
            sender(self, payload, text, environ)
        except ChannelError:
            raise
        except (OSError, smtplib.SMTPException, subprocess.SubprocessError, ValueError) as exc:
            raise ChannelError(secrets.mask(f"{type(exc).__name__}: {exc}")) from None


def expand(value: str, environ: Mapping[str, str]) -> str:
    """`value` with each `${NAME}` replaced from `environ`, each value registered as a secret."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ChannelError(f"environment variable {name} is not set (referenced as ${{{name}}})")
        secrets.register(environ[name])
        return environ[name]

    return _REFERENCE.sub(one, value)


def register_secrets(channels: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]) -> None:
    """Register every value the channels reference (`${NAME}`, URL passwords) as a
    secret up front, so that a message built before any send is masked already."""
    for spec in channels.values():
        for value in _strings(spec):
            for name in _REFERENCE.findall(value):
                secrets.register(environ.get(name))
            secrets.register_url(value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _post(channel: Channel, url: str, body: bytes, headers: Mapping[str, str]) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout) as response:  # noqa: S310
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"HTTP {exc.code} from {_host(url)}") from None


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2] or "?"


def _send_webhook(
    channel: Channel, payload: Mapping[str, Any], text: str, environ: Mapping[str, str]
) -> None:
    url = expand(str(channel.spec["url"]), environ)
    headers = {k: expand(str(v), environ) for k, v in (channel.spec.get("headers") or {}).items()}
    headers.setdefault("Content-Type", "application/json")
    headers["Idempotency-Key"] = str(payload["idempotency_key"])
    _post(channel, url, json.dumps(payload).encode(), headers)


def _send_slack(channel: Channel, payload: Mapping[str, Any], text: str, environ: Mapping[str, str]) -> None:
    url = expand(str(channel.spec["url"]), environ)
    secrets.register(urlsplit(url).path)  # an incoming-webhook URL's path is its token
    _post(channel, url, json.dumps({"text": text}).encode(), {"Content-Type": "application/json"})


def _send_email(channel: Channel, payload: Mapping[str, Any], text: str, environ: Mapping[str, str]) -> None:
    url = urlsplit(expand(str(channel.spec["url"]), environ))
    if url.scheme not in ("smtp", "smtps"):
        raise ChannelError(f"channel {channel.name}: url must start with smtp:// or smtps://")
    message = EmailMessage()
    message["From"] = expand(str(channel.spec["from"]), environ)
    message["To"] = ", ".join(expand(str(a), environ) for a in channel.spec["to"])
    message["Subject"] = str(payload["summary"])
    message["Message-ID"] = f"<{payload['idempotency_key']}@dagctl>"
    message.set_content(text)
    host, port = url.hostname or "localhost", url.port
    smtp: smtplib.SMTP
    if url.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(
            host, port or 465, timeout=channel.timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(host, port or 587, timeout=channel.timeout)
    with smtp:
        smtp.ehlo()
        if url.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if url.username:
            password = unquote(url.password or "")
            secrets.register(password)
            smtp.login(unquote(url.username), password)
        smtp.send_message(message)


def _send_command(
    channel: Channel, payload: Mapping[str, Any], text: str, environ: Mapping[str, str]
) -> None:
    argv = [expand(str(a), environ) for a in channel.spec["command"]]
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=channel.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChannelError(f"command {argv[0]} timed out after {channel.timeout:g} s") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ChannelError(secrets.mask(f"command {argv[0]} exited with {done.returncode}: {tail[0][:300]}"))


_SENDERS = {"webhook": _send_webhook, "slack": _send_slack, "email": _send_email, "command": _send_command}

__all__ = ["Channel", "ChannelError", "expand", "register_secrets"]
