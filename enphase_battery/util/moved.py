"""The import paths of the flat layout (before 0.2), kept for one release.

One table of old module paths and one of names that left a module still in place.  An
old path imports (``import enphase_battery.poller``, ``from enphase_battery.checkpoint
import StreamState``) and answers with the objects of the new one, with a
:class:`DeprecationWarning` naming the new path, once per old path and process.

This module holds the paths as strings and imports them only when an old path is used,
so it sits at the bottom of the package like the rest of ``util``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "attribute", "install"]

#: Old module path -> its new one.
MOVED_MODULES: Final[Mapping[str, str]] = {
    "enphase_battery._json": "enphase_battery.util.json_decoder",
    "enphase_battery._lazy": "enphase_battery.util.lazy",
    "enphase_battery._slots": "enphase_battery.util.slots",
    "enphase_battery.batch": "enphase_battery.poll.batch",
    "enphase_battery.checkpoint": "enphase_battery.store.checkpoint",
    "enphase_battery.clock": "enphase_battery.util.clock",
    "enphase_battery.delivery": "enphase_battery.poll.delivery",
    "enphase_battery.demo": "enphase_battery.cli.demo",
    "enphase_battery.endpoints": "enphase_battery.client.endpoints",
    "enphase_battery.endpoints.base": "enphase_battery.client.endpoints.base",
    "enphase_battery.endpoints.battery_data": "enphase_battery.client.endpoints.battery_data",
    "enphase_battery.endpoints.configuration": "enphase_battery.client.endpoints.configuration",
    "enphase_battery.endpoints.discovery": "enphase_battery.client.endpoints.discovery",
    "enphase_battery.endpoints.realtime": "enphase_battery.client.endpoints.realtime",
    "enphase_battery.engine": "enphase_battery.poll.engine",
    "enphase_battery.environment": "enphase_battery.client.environment",
    "enphase_battery.fleet": "enphase_battery.poll.fleet",
    "enphase_battery.fleet_system": "enphase_battery.poll.followed",
    "enphase_battery.fleet_views": "enphase_battery.poll.views",
    "enphase_battery.fleet_workers": "enphase_battery.poll.workers",
    "enphase_battery.front": "enphase_battery.poll.front",
    "enphase_battery.governor": "enphase_battery.quota.governor",
    "enphase_battery.governor_file": "enphase_battery.quota.file_backend",
    "enphase_battery.governor_state": "enphase_battery.quota.state",
    "enphase_battery.http_errors": "enphase_battery.http.errors",
    "enphase_battery.limits": "enphase_battery.quota.limits",
    "enphase_battery.pacing": "enphase_battery.poll.pacing",
    "enphase_battery.poll_settings": "enphase_battery.poll.settings",
    "enphase_battery.poller": "enphase_battery.poll.poller",
    "enphase_battery.postgres.fleet": "enphase_battery.poll.leased_fleet",
    "enphase_battery.ready_queue": "enphase_battery.poll.ready_queue",
    "enphase_battery.redaction": "enphase_battery.util.redaction",
    "enphase_battery.retry": "enphase_battery.http.retry",
    "enphase_battery.routes": "enphase_battery.http.routes",
    "enphase_battery.scheduler": "enphase_battery.poll.scheduler",
    "enphase_battery.sender": "enphase_battery.http.wire",
    "enphase_battery.sqlite_checkpoint": "enphase_battery.store.sqlite",
    "enphase_battery.sse": "enphase_battery.http.sse",
    "enphase_battery.streams": "enphase_battery.poll.stream_log",
    "enphase_battery.token_endpoint": "enphase_battery.auth.endpoint",
    "enphase_battery.token_refresher": "enphase_battery.auth.refresher",
    "enphase_battery.tokens": "enphase_battery.auth.tokens",
    "enphase_battery.transport": "enphase_battery.http.calls",
    "enphase_battery.validation": "enphase_battery.models.validation",
    "enphase_battery.window": "enphase_battery.poll.window",
    "enphase_battery.write_turn": "enphase_battery.poll.write_turn",
}

#: (module, name) -> the module the name is imported from now, for names that left a
#: module still in place (the package top kept about 45 names; LeasedFleet moved up to
#: ``poll``, ``open_store`` to the engine).
MOVED_NAMES: Final[Mapping[tuple[str, str], str]] = {
    ("enphase_battery", "AccessTokenProvider"): "enphase_battery.auth",
    ("enphase_battery", "Address"): "enphase_battery.models",
    ("enphase_battery", "BATTERY"): "enphase_battery.models",
    ("enphase_battery", "BatteryInterval"): "enphase_battery.models",
    ("enphase_battery", "BatteryLifetime"): "enphase_battery.models",
    ("enphase_battery", "BatteryNow"): "enphase_battery.live",
    ("enphase_battery", "BatteryState"): "enphase_battery.models",
    ("enphase_battery", "CheckpointInUseError"): "enphase_battery.exceptions",
    ("enphase_battery", "Clock"): "enphase_battery.util.clock",
    ("enphase_battery", "DEFAULT_AUTHORIZE_URL"): "enphase_battery.auth",
    ("enphase_battery", "DEFAULT_BASE_URL"): "enphase_battery.client",
    ("enphase_battery", "DEFAULT_REDIRECT_URI"): "enphase_battery.auth",
    ("enphase_battery", "DEFAULT_TOKEN_URL"): "enphase_battery.auth",
    ("enphase_battery", "Device"): "enphase_battery.models",
    ("enphase_battery", "DeviceGroups"): "enphase_battery.models",
    ("enphase_battery", "EnchargeInterval"): "enphase_battery.models",
    ("enphase_battery", "EnchargeTelemetry"): "enphase_battery.models",
    ("enphase_battery", "EnergyReading"): "enphase_battery.models",
    ("enphase_battery", "FileGovernorBackend"): "enphase_battery.quota",
    ("enphase_battery", "GatewayNotReportingError"): "enphase_battery.live",
    ("enphase_battery", "GridState"): "enphase_battery.models",
    ("enphase_battery", "GridStatus"): "enphase_battery.models",
    ("enphase_battery", "LatestDevice"): "enphase_battery.models",
    ("enphase_battery", "LifetimeDay"): "enphase_battery.models",
    ("enphase_battery", "LifetimeMeta"): "enphase_battery.models",
    ("enphase_battery", "LiveBudgetExhaustedError"): "enphase_battery.live",
    ("enphase_battery", "LiveDurationError"): "enphase_battery.live",
    ("enphase_battery", "LiveFrame"): "enphase_battery.models",
    ("enphase_battery", "LiveLedger"): "enphase_battery.live",
    ("enphase_battery", "LiveServerError"): "enphase_battery.live",
    ("enphase_battery", "LiveSource"): "enphase_battery.models",
    ("enphase_battery", "LiveSpend"): "enphase_battery.live",
    ("enphase_battery", "LiveStats"): "enphase_battery.live",
    ("enphase_battery", "LiveUnsupportedError"): "enphase_battery.live",
    ("enphase_battery", "LoadCircuit"): "enphase_battery.models",
    ("enphase_battery", "LoadControl"): "enphase_battery.models",
    ("enphase_battery", "LoadControlMode"): "enphase_battery.models",
    ("enphase_battery", "MeterReading"): "enphase_battery.models",
    ("enphase_battery", "ROUTES"): "enphase_battery.http",
    ("enphase_battery", "Reconciliation"): "enphase_battery.reconcile",
    ("enphase_battery", "Route"): "enphase_battery.http",
    ("enphase_battery", "SYSTEM_CLOCK"): "enphase_battery.util.clock",
    ("enphase_battery", "SettingsError"): "enphase_battery.exceptions",
    ("enphase_battery", "SocReading"): "enphase_battery.models",
    ("enphase_battery", "SpanCheck"): "enphase_battery.reconcile",
    ("enphase_battery", "StatisticPoint"): "enphase_battery.statistics",
    ("enphase_battery", "StorageMeterReadings"): "enphase_battery.models",
    ("enphase_battery", "StormGuard"): "enphase_battery.models",
    ("enphase_battery", "StreamState"): "enphase_battery.store",
    ("enphase_battery", "SystemDevices"): "enphase_battery.models",
    ("enphase_battery", "SystemProgress"): "enphase_battery.poll",
    ("enphase_battery", "SystemSummary"): "enphase_battery.models",
    ("enphase_battery", "Verdict"): "enphase_battery.reconcile",
    ("enphase_battery", "background_work"): "enphase_battery.quota",
    ("enphase_battery.postgres", "LeasedFleet"): "enphase_battery.poll",
    ("enphase_battery.checkpoint", "open_store"): "enphase_battery.poll",
    ("enphase_battery.checkpoint", "SqliteCheckpoint"): "enphase_battery.store",
}

_warned: set[str] = set()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package, so that the warning
    points at the user's import line; :func:`warnings.warn` skips the import machinery's
    own frames, so they are not counted."""
    frame = sys._getframe(1)  # _warn, stacklevel 1
    level = 1
    while (frame := frame.f_back) is not None:  # type: ignore[assignment]
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            continue
        level += 1
        if not name.startswith(_PACKAGE_DIR):
            break
    return level


def _warn(old: str, new: str) -> None:
    if old in _warned:
        return
    _warned.add(old)
    warnings.warn(
        f"{old} is deprecated and goes away in the next release; use {new}",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )


def attribute(module: str, name: str) -> Any:
    """``name`` of ``module`` where it lives now, for a module's ``__getattr__``.

    Raises :class:`AttributeError` for a name that never was there.
    """
    new = MOVED_NAMES.get((module, name))
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    _warn(f"{module}.{name}", f"{new}.{name}")
    return getattr(importlib.import_module(new), name)


class _OldPaths:
    """Finds an old module path and makes it a stand-in of the new module: a meta path
    finder and its loader (the protocols, not ``importlib.abc``'s classes, whose import
    would cost ``import enphase_battery`` more than all the rest)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, cast("Loader", self), is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a plain module, filled by exec_module

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        new = MOVED_MODULES[old]
        _warn(old, new)
        target = importlib.import_module(new)

        def getattr_(name: str) -> Any:
            if (old, name) in MOVED_NAMES:
                return attribute(old, name)
            return getattr(target, name)

        module.__getattr__ = getattr_  # type: ignore[method-assign]
        module.__dir__ = lambda: dir(target)  # type: ignore[method-assign]
        module.__doc__ = f"Deprecated: use {new}."
        if hasattr(target, "__all__"):
            setattr(module, "__all__", list(target.__all__))  # noqa: B010 - a ModuleType has no declared __all__


_FINDER = _OldPaths()


def install() -> None:
    """Let the old module paths import (idempotent; ``enphase_battery`` calls it)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
