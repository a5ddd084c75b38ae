"""Fault injection: make the next responses fail the ways real networks and APIs do.

Armed from Python (``sim.faults.fail_next(2, 503)``) or over HTTP
(``POST /__admin/faults``).  One-shot faults are consumed in the order they were armed,
one per matching request; ``path`` limits a fault to request paths containing it.
Faults hit ``/api/v4`` routes only, unless :attr:`Faults.include_token_endpoint` is set.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["FaultKind", "FaultRule", "Faults"]


class FaultKind(enum.Enum):
    """What a one-shot fault does to the response."""

    #: Answer with this status and the API's error envelope.
    STATUS = "status"
    #: 200 with a body that is not valid JSON.
    MALFORMED = "malformed"
    #: Headers promise the full body; half arrives, then the connection closes.
    TRUNCATED = "truncated"
    #: Close the connection without any response.
    DROP = "drop"


@attrs.define
class FaultRule:
    """One armed fault; ``remaining`` counts down as requests consume it."""

    kind: FaultKind
    remaining: int
    status: int = 500
    path: str | None = None
    details: str | None = None

    def matches(self, path: str) -> bool:
        """Whether this fault applies to a request for ``path``."""
        return self.remaining > 0 and (self.path is None or self.path in path)


def _noop() -> None:
    return None


class Faults:
    """The simulator's fault switchboard."""

    def __init__(
        self,
        *,
        on_revoke_tokens: Callable[[], None] = _noop,
        on_exhaust_quota: Callable[[], None] = _noop,
    ) -> None:
        self._rules: list[FaultRule] = []
        self._on_revoke_tokens = on_revoke_tokens
        self._on_exhaust_quota = on_exhaust_quota
        #: Added to every matching response, in real seconds.
        self.latency_s = 0.0
        #: When set, latency applies only to paths containing it.
        self.latency_path: str | None = None
        #: Whether ``/oauth/token`` is subject to faults too.
        self.include_token_endpoint = False
        #: How many injected faults have fired, by kind value.
        self.fired: dict[str, int] = {}

    # -- arming -----------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        path: str | None = None,
        details: str | None = None,
    ) -> None:
        """The next ``count`` matching requests get ``status`` with the error envelope."""
        self._arm(FaultRule(FaultKind.STATUS, count, status=status, path=path, details=details))

    def malform_next(self, count: int = 1, *, path: str | None = None) -> None:
        """The next ``count`` matching responses are 200 with invalid JSON."""
        self._arm(FaultRule(FaultKind.MALFORMED, count, path=path))

    def truncate_next(self, count: int = 1, *, path: str | None = None) -> None:
        """The next ``count`` matching responses stop halfway through the body."""
        self._arm(FaultRule(FaultKind.TRUNCATED, count, path=path))

    def drop_next(self, count: int = 1, *, path: str | None = None) -> None:
        """The next ``count`` matching requests see the connection closed, no response.

        aiohttp clients retry an idempotent request once, silently, when the server
        disconnects: arm two drops to make one GET fail.
        """
        self._arm(FaultRule(FaultKind.DROP, count, path=path))

    def set_latency(self, seconds: float, *, path: str | None = None) -> None:
        """Delay every matching response by ``seconds`` (real time) until cleared."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency_s = float(seconds)
        self.latency_path = path

    def revoke_tokens(self) -> None:
        """Kill every access and refresh token: API calls get 401, refreshes invalid_grant."""
        self._on_revoke_tokens()

    def exhaust_monthly_quota(self) -> None:
        """Spend the rest of the simulated month's quota: every call gets 429 ``month``."""
        self._on_exhaust_quota()

    def clear(self) -> None:
        """Disarm every one-shot fault and remove the latency."""
        self._rules.clear()
        self.latency_s = 0.0
        self.latency_path = None

    @property
    def pending(self) -> tuple[FaultRule, ...]:
        """Armed one-shot faults that still have requests to hit."""
        return tuple(rule for rule in self._rules if rule.remaining > 0)

    # -- used by the server -----------------------------------------------------------

    def latency_for(self, path: str) -> float:
        """Seconds to delay a request for ``path``."""
        if self.latency_s and (self.latency_path is None or self.latency_path in path):
            return self.latency_s
        return 0.0

    def take(self, path: str) -> FaultRule | None:
        """Consume and return the first armed fault matching ``path``."""
        for rule in self._rules:
            if rule.matches(path):
                rule.remaining -= 1
                self.fired[rule.kind.value] = self.fired.get(rule.kind.value, 0) + 1
                self._rules = [r for r in self._rules if r.remaining > 0]
                return rule
        return None

    def configure(self, spec: dict[str, Any]) -> None:
        """Arm a fault from its JSON form (the ``/__admin/faults`` body).

        ``{"kind": "status"|"malformed"|"truncated"|"drop"|"latency"|"revoke_tokens"|
        "exhaust_quota"|"clear", "count": 1, "status": 503, "path": "telemetry",
        "seconds": 0.5, "include_token_endpoint": true}``
        """
        if "include_token_endpoint" in spec:
            self.include_token_endpoint = bool(spec["include_token_endpoint"])
        kind = spec.get("kind")
        if kind is None:
            return
        count = int(spec.get("count", 1))
        path = spec.get("path")
        if path is not None and not isinstance(path, str):
            raise ValueError("path must be a string")
        if kind == "status":
            self.fail_next(
                count, int(spec.get("status", 500)), path=path, details=spec.get("details")
            )
        elif kind == "malformed":
            self.malform_next(count, path=path)
        elif kind == "truncated":
            self.truncate_next(count, path=path)
        elif kind == "drop":
            self.drop_next(count, path=path)
        elif kind == "latency":
            self.set_latency(float(spec.get("seconds", 0.0)), path=path)
        elif kind == "revoke_tokens":
            self.revoke_tokens()
        elif kind == "exhaust_quota":
            self.exhaust_monthly_quota()
        elif kind == "clear":
            self.clear()
        else:
            raise ValueError(f"unknown fault kind {kind!r}")

    def _arm(self, rule: FaultRule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be >= 1")
        if rule.kind is FaultKind.STATUS and not 100 <= rule.status <= 599:
            raise ValueError("status must be an HTTP status code")
        self._rules.append(rule)
