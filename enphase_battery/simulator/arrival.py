"""When each reported interval becomes visible through the API.

A device's interval ending at ``end_at`` is visible from ``end_at + reporting_latency +
jitter + lag (+ late_delay if that interval is late)``, where

* ``jitter`` is a small fixed per-device offset (0..90 s, from the seed): gateways do not
  upload in lockstep;
* ``lag`` is set per device with :meth:`ArrivalModel.set_lag` (a cellular gateway) and
  applies to intervals ending after the call, so data already visible never disappears;
* a late interval (chosen with ``late_probability`` as the physics steps) shows up
  ``late_delay`` after the device's later intervals: out-of-order backfill.

* the device's gateway :class:`~.uplink.Uplink` (cellular batches, an outage's
  backfill) decides when an interval that is ready is uploaded.

A system interval is visible once any of its devices' is; its ``devices_reporting``
grows until every device has reported.
"""

from __future__ import annotations

import bisect
import math
import random

from enphase_battery.simulator.battery import Encharge
from enphase_battery.simulator.uplink import Uplink

__all__ = ["ArrivalModel"]

_MAX_JITTER_S = 90


class ArrivalModel:
    """Visibility times of every device interval; deterministic for a seed."""

    def __init__(self, *, seed: int, latency_s: float, late_delay_s: float) -> None:
        self.seed = seed
        self.latency_s = latency_s
        self.late_delay_s = late_delay_s
        self._jitter: dict[str, int] = {}
        # serial -> parallel sorted lists: from which end_at (exclusive) a lag applies.
        self._lag_from: dict[str, list[int]] = {}
        self._lag_s: dict[str, list[float]] = {}
        # serial -> its gateway's uplink; Wi-Fi devices (the common case) have none.
        self._uplinks: dict[str, Uplink] = {}

    def set_uplink(self, serial: str, uplink: Uplink) -> None:
        """The device uploads through ``uplink`` (cellular, offline); Wi-Fi needs none."""
        if uplink.kind == "wifi":
            self._uplinks.pop(serial, None)
        else:
            self._uplinks[serial] = uplink

    def jitter_s(self, serial: str) -> int:
        """The device's fixed upload offset in seconds."""
        jitter = self._jitter.get(serial)
        if jitter is None:
            jitter = random.Random(f"jitter:{self.seed}:{serial}").randrange(_MAX_JITTER_S + 1)
            self._jitter[serial] = jitter
        return jitter

    def set_lag(self, serial: str, lag_s: float, *, from_end_at: int) -> None:
        """Extra delay for the device's intervals ending after ``from_end_at``."""
        starts = self._lag_from.setdefault(serial, [])
        lags = self._lag_s.setdefault(serial, [])
        position = bisect.bisect_right(starts, from_end_at)
        # A later setting supersedes anything scheduled after its own start.
        del starts[position:], lags[position:]
        starts.append(from_end_at)
        lags.append(lag_s)

    def lag_s(self, serial: str, end_at: int) -> float:
        """The lag that applies to the device's interval ending at ``end_at``."""
        starts = self._lag_from.get(serial)
        if not starts:
            return 0.0
        position = bisect.bisect_left(starts, end_at) - 1
        return self._lag_s[serial][position] if position >= 0 else 0.0

    def visible_at(self, device: Encharge, i: int) -> float:
        """Epoch from which interval ``i`` of ``device`` is served."""
        end_at = device.first_end_at + i * 900
        delay = self.latency_s + self.jitter_s(device.serial) + self.lag_s(device.serial, end_at)
        if device.late[i]:
            delay += self.late_delay_s
        uplink = self._uplinks.get(device.serial)
        if uplink is not None:
            return uplink.visible_at(end_at + delay, end_at)
        return end_at + delay

    def surely_visible_until(self, device: Encharge, now: float) -> int:
        """Index of the device's last interval visible at ``now`` whatever its own delays
        (late or not, any lag); every interval before it is visible too."""
        lags = self._lag_s.get(device.serial)
        worst_s = (
            self.latency_s
            + self.jitter_s(device.serial)
            + max(0.0, self.late_delay_s)
            + (max(0.0, *lags) if lags else 0.0)
        )
        # end_at + worst_s <= now, with a second to spare for float rounding (end_at
        # values are whole multiples of 900 s, so the margin costs nothing).
        return device.index(math.floor(now - worst_s) - 1)

    def visible_mask(self, device: Encharge, first: int, last: int, now: float) -> list[bool]:
        """Visibility of intervals ``first..last`` (indices, inclusive) at ``now``.

        The hot path of every telemetry request: the old intervals are visible whatever
        their delays and are not looked at one by one; only the recent tail is.
        """
        sure = min(last, self.surely_visible_until(device, now))
        if sure >= first:
            mask = [True] * (sure - first + 1)
            first = sure + 1
        else:
            mask = []
        serial = device.serial
        if serial in self._uplinks:
            return [self.visible_at(device, i) <= now for i in range(first, last + 1)]
        base = self.latency_s + self.jitter_s(serial)
        late = device.late
        late_delay = self.late_delay_s
        has_lag = bool(self._lag_from.get(serial))
        end_at = device.first_end_at + first * 900
        append = mask.append
        for i in range(first, last + 1):
            delay = base
            if has_lag:
                delay += self.lag_s(serial, end_at)
            if late[i]:
                delay += late_delay
            append(end_at + delay <= now)
            end_at += 900
        return mask
