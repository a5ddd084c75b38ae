"""What a live session reports about itself: :class:`LiveStats`."""

from __future__ import annotations

import attrs

from enphase_battery.models.live import LiveSource

__all__ = ["LiveStats"]


@attrs.frozen
class LiveStats:
    """How a session has fared (``session.stats``)."""

    source: LiveSource
    #: Why the session is on ``latest`` (``None`` while live).
    fallback_reason: str | None
    connections: int
    reconnects: int
    live_frames: int
    latest_frames: int
    #: Events the stream cut off before their end (discarded, never half-parsed).
    cut_events: int
    #: Comment lines (keep-alives) received.
    keepalives: int
    #: Events that were not a frame the SDK could read (logged, skipped).
    bad_events: int
    #: Seconds from a stream's end to the next stream's answer, the most recent last.
    reconnect_gaps_s: tuple[float, ...]
