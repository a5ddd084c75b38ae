"""The pollers: every 15-minute interval exactly once.

From the pure parts up: one stream's log (:mod:`.stream_log`) and one request's window
(:mod:`.window`); the fleet's schedule (:mod:`.scheduler`), a followed system
(:mod:`.followed`) and the workers (:mod:`.workers`); delivery and batches
(:mod:`.delivery`, :mod:`.batch`, :mod:`.ready_queue`, :mod:`.write_turn`); the engine and
its settings (:mod:`.engine`, :mod:`.settings`, :mod:`.pacing`); the consumer's front
(:mod:`.front`); and the pollers composed from them: :class:`TelemetryPoller`,
:class:`FleetPoller`, and :class:`LeasedFleet` (several workers over PostgreSQL).

May import every lower room: ``util`` up to ``client``, ``store`` and ``postgres``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enphase_battery.util import lazy as _lazy

if TYPE_CHECKING:
    from enphase_battery.models.validation import MAX_BACKFILL as MAX_BACKFILL
    from enphase_battery.poll.batch import Batch as Batch
    from enphase_battery.poll.batch import BatchIterator as BatchIterator
    from enphase_battery.poll.engine import open_store as open_store
    from enphase_battery.poll.fleet import FleetPoller as FleetPoller
    from enphase_battery.poll.leased_fleet import LeasedFleet as LeasedFleet
    from enphase_battery.poll.poller import PollerProgress as PollerProgress
    from enphase_battery.poll.poller import TelemetryPoller as TelemetryPoller
    from enphase_battery.poll.settings import DEFAULT_REVISE_FOR as DEFAULT_REVISE_FOR
    from enphase_battery.poll.views import FleetProgress as FleetProgress
    from enphase_battery.poll.views import SystemProblem as SystemProblem
    from enphase_battery.poll.views import SystemProgress as SystemProgress

__all__, _load, __dir__ = _lazy.exports(__name__)


def __getattr__(name: str) -> Any:
    return _load(name)
