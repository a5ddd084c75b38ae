"""How each simulated gateway gets its data to the cloud: Wi-Fi, cellular, or offline.

* **Wi-Fi / Ethernet**: every interval is uploaded as it is ready (the arrival model's
  latency and jitter).
* **Cellular**: the gateway uploads about every 6 hours in one batch (fact sheet §5, §7):
  an interval ready at ``t`` becomes visible at the next batch time after ``t``.
* **Offline**: the gateway was cut off for a while (a day, say); what it recorded then
  is backfilled oldest first over ``backfill_s`` after it comes back.

A :class:`FleetMix` assigns uplinks to a fleet deterministically from the seed: the
realistic mix of the fleet benchmark is ``FleetMix(cellular=0.15, offline=0.05)``.
"""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["FleetMix", "Uplink"]

HOUR_S = 3600.0


@attrs.frozen
class Uplink:
    """One gateway's uplink.

    Attributes:
        kind: ``"wifi"``, ``"cellular"`` or ``"offline"``.
        batch_period_s / phase_s: cellular batches happen at ``phase_s + k * batch_period_s``.
        offline_from / offline_until: epochs of the outage (offline kind).
        backfill_s: how long the backlog takes to arrive after the outage.
    """

    kind: str = "wifi"
    batch_period_s: float = 6 * HOUR_S
    phase_s: float = 0.0
    offline_from: float = 0.0
    offline_until: float = 0.0
    backfill_s: float = 4 * HOUR_S

    @property
    def connection_type(self) -> str:
        """What the systems list says (``"wifi"`` or ``"cellular"``)."""
        return "cellular" if self.kind == "cellular" else "wifi"

    def visible_at(self, ready_at: float, end_at: int) -> float:
        """When an interval ready to upload at ``ready_at`` (ending at ``end_at``) is seen."""
        if self.kind == "cellular":
            period = self.batch_period_s
            return self.phase_s + math.ceil((ready_at - self.phase_s) / period) * period
        if self.kind == "offline" and self.offline_from < ready_at:
            start, until = self.offline_from, self.offline_until
            if end_at <= until:
                share = max(0.0, end_at - start) / max(1.0, until - start)
                return max(ready_at, until + share * self.backfill_s)
        return ready_at


@attrs.frozen
class FleetMix:
    """Shares of the fleet on cellular and offline uplinks (the rest on Wi-Fi).

    ``offline_within_s``: each offline system's outage starts at a random time within
    this long after ``start`` and lasts ``offline_for_s``.
    """

    cellular: float = 0.0
    offline: float = 0.0
    batch_period_s: float = 6 * HOUR_S
    offline_within_s: float = 3 * 86_400.0
    offline_for_s: float = 86_400.0
    backfill_s: float = 4 * HOUR_S

    def __attrs_post_init__(self) -> None:
        if min(self.cellular, self.offline) < 0 or self.cellular + self.offline > 1:
            raise ValueError("cellular and offline shares must be >= 0 and add up to <= 1")

    def uplink_for(self, seed: int, system_id: int, start: float) -> Uplink:
        """The uplink of one system (deterministic for the seed and the system id)."""
        rng = random.Random(f"uplink:{seed}:{system_id}")
        draw = rng.random()
        if draw < self.cellular:
            return Uplink(
                "cellular",
                batch_period_s=self.batch_period_s,
                phase_s=start + rng.uniform(0, self.batch_period_s),
            )
        if draw < self.cellular + self.offline:
            begins = start + rng.uniform(0, self.offline_within_s)
            return Uplink(
                "offline",
                offline_from=begins,
                offline_until=begins + self.offline_for_s,
                backfill_s=self.backfill_s,
            )
        return Uplink("wifi")
