"""The API plan's limits and the quota governor: one per API key, the per-minute spacing
and the month's count, kept in memory, in a JSON file (the CLI's ``usage.json``) or, with
:class:`~enphase_battery.postgres.PostgresGovernorBackend`, in PostgreSQL.

May import ``util`` and ``exceptions``.
"""

from __future__ import annotations

from enphase_battery.quota.file_backend import FileGovernorBackend
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.limits import MonthlyQuota, RateLimits
from enphase_battery.quota.state import (
    Admission,
    GovernorBackend,
    GovernorState,
    MemoryGovernorBackend,
    Outcome,
    QuotaUsage,
    background_work,
)

__all__ = [
    "Admission",
    "FileGovernorBackend",
    "GovernorBackend",
    "GovernorState",
    "MemoryGovernorBackend",
    "MonthlyQuota",
    "Outcome",
    "QuotaGovernor",
    "QuotaUsage",
    "RateLimits",
    "background_work",
]
