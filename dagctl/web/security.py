"""Who may act: the token (DAGCTL_UI_TOKEN), the browser session derived from it, and the
CSRF token every action form carries.

The session cookie holds an HMAC of the token, never the token itself; the CSRF token is
an HMAC of the session, so a page of another site can neither read nor forge it. Every
comparison is constant time (hmac.compare_digest)."""

from __future__ import annotations

import hashlib
import hmac

SESSION_COOKIE = "dagctl_session"


class Guard:
    def __init__(self, token: str | None, allow_actions: bool) -> None:
        self.allow_actions = allow_actions and token is not None
        self._token = (token or "").encode()

    def _mac(self, message: str) -> str:
        return hmac.new(self._token, message.encode(), hashlib.sha256).hexdigest()

    def token_matches(self, given: str | None) -> bool:
        if not self.allow_actions or not given:
            return False
        return hmac.compare_digest(given.encode(), self._token)

    def session_value(self) -> str:
        return self._mac("dagctl-session")

    def session_ok(self, cookie: str | None) -> bool:
        if not self.allow_actions or not cookie:
            return False
        return hmac.compare_digest(cookie, self.session_value())

    def csrf_token(self) -> str:
        return self._mac("dagctl-csrf:" + self.session_value())

    def csrf_ok(self, given: str | None) -> bool:
        if not self.allow_actions or not given:
            return False
        return hmac.compare_digest(given, self.csrf_token())

    def bearer_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return self.token_matches(header.removeprefix("Bearer ").strip())
