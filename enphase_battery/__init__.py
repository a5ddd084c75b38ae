"""enphase_battery: asyncio SDK for Enphase IQ Batteries (Enlighten Systems API v4).

What a user types in the first screens of the docs is importable from here; the rest
from its sub-package (``enphase_battery.models``, ``.live``, ``.store``, ``.poll``,
``.quota``, ``.auth``, ``.postgres``...).  The package's rooms, from the bottom up (a
module imports only from its own room or lower ones; ``tests/test_layers.py`` checks):

* ``util``: the clock, JSON decoding, redaction, lazy names: no domain.
* ``exceptions``: every error the SDK raises.
* ``models``: the API's answers, what the pollers deliver, argument checks.
* ``statistics``: hourly energy that adds up, from delivered intervals.
* ``quota``: plan limits and the quota governor with its backends.
* ``http``: the one choke point: routes, sending, retries, error mapping, SSE.
* ``auth``: OAuth2 tokens, their refresh and their storage.
* ``live``: the budgeted ``live_data`` stream and ``battery_now``.
* ``reconcile``: the hole check against the lifetime meters.
* ``client``: :class:`EnphaseClient`, its endpoint groups, settings from the environment.
* ``store``: the pollers' checkpoints: the protocol, memory and SQLite.
* ``postgres``: PostgreSQL: a checkpoint, leases and fencing, a governor backend.
* ``poll``: the pollers: stream logic, scheduling, delivery and batches, the engine,
  :class:`TelemetryPoller`, :class:`FleetPoller`, ``LeasedFleet``.
* ``simulator``: a faithful stand-in of the API on loopback HTTP.
* ``sinks``: delivered intervals and hourly rows into SQLite, PostgreSQL and InfluxDB
  tables, and the Prometheus exporter's metrics (same rung as ``simulator``).
* ``cli``: the ``enphase-battery`` command line and ``make demo``.

Names are imported on first use (module ``__getattr__``): ``import enphase_battery`` costs
next to nothing, and ``from enphase_battery import EnphaseClient`` loads the client and
what it needs, not the poller, SQLite, the simulator or the CLI.  The names are listed
once, in the ``TYPE_CHECKING`` block below (:mod:`enphase_battery.util.lazy` reads it).
Import paths of the flat layout before 0.2 still work for one release, with a
:class:`DeprecationWarning` naming the new one (:mod:`enphase_battery.util.moved`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enphase_battery.util import lazy as _lazy
from enphase_battery.util import moved as _moved
from enphase_battery.util.version import VERSION

if TYPE_CHECKING:
    from enphase_battery.auth import FileTokenStore as FileTokenStore
    from enphase_battery.auth import OAuth2Token as OAuth2Token
    from enphase_battery.auth import TokenManager as TokenManager
    from enphase_battery.auth import TokenStore as TokenStore
    from enphase_battery.client import EnphaseClient as EnphaseClient
    from enphase_battery.exceptions import ApiError as ApiError
    from enphase_battery.exceptions import AuthenticationError as AuthenticationError
    from enphase_battery.exceptions import CheckpointError as CheckpointError
    from enphase_battery.exceptions import EnphaseConnectionError as EnphaseConnectionError
    from enphase_battery.exceptions import EnphaseError as EnphaseError
    from enphase_battery.exceptions import InvalidRequestError as InvalidRequestError
    from enphase_battery.exceptions import NotFoundError as NotFoundError
    from enphase_battery.exceptions import NotSignedInError as NotSignedInError
    from enphase_battery.exceptions import PermissionDeniedError as PermissionDeniedError
    from enphase_battery.exceptions import QuotaExceededError as QuotaExceededError
    from enphase_battery.exceptions import RateLimitError as RateLimitError
    from enphase_battery.exceptions import ResponseFormatError as ResponseFormatError
    from enphase_battery.live import LiveBudget as LiveBudget
    from enphase_battery.live import LiveDataError as LiveDataError
    from enphase_battery.live import LiveSession as LiveSession
    from enphase_battery.live import battery_now as battery_now
    from enphase_battery.models import BatteryMode as BatteryMode
    from enphase_battery.models import BatterySettings as BatterySettings
    from enphase_battery.models import BatteryTelemetry as BatteryTelemetry
    from enphase_battery.models import Granularity as Granularity
    from enphase_battery.models import LatestTelemetry as LatestTelemetry
    from enphase_battery.models import System as System
    from enphase_battery.models import TelemetryInterval as TelemetryInterval
    from enphase_battery.poll import Batch as Batch
    from enphase_battery.poll import FleetPoller as FleetPoller
    from enphase_battery.poll import FleetProgress as FleetProgress
    from enphase_battery.poll import PollerProgress as PollerProgress
    from enphase_battery.poll import SystemProblem as SystemProblem
    from enphase_battery.poll import TelemetryPoller as TelemetryPoller
    from enphase_battery.quota import MonthlyQuota as MonthlyQuota
    from enphase_battery.quota import QuotaGovernor as QuotaGovernor
    from enphase_battery.quota import QuotaUsage as QuotaUsage
    from enphase_battery.quota import RateLimits as RateLimits
    from enphase_battery.statistics import HourlyEnergy as HourlyEnergy
    from enphase_battery.statistics import HourlyRow as HourlyRow
    from enphase_battery.statistics import hourly_rows as hourly_rows
    from enphase_battery.store import CheckpointStore as CheckpointStore
    from enphase_battery.store import MemoryCheckpoint as MemoryCheckpoint
    from enphase_battery.store import SqliteCheckpoint as SqliteCheckpoint

__version__ = VERSION

_moved.install()
_names, _load, __dir__ = _lazy.exports(__name__)
__all__ = ["__version__", *_names]


def __getattr__(name: str) -> Any:
    try:
        return _load(name)
    except AttributeError:
        return _moved.attribute(__name__, name)
