"""This month's request count per API key, kept in ``usage.json`` between runs."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..client import EnphaseClient
from .settings import _write_private_json

_LOGGER = logging.getLogger(__name__)


class _UsageLedger:
    """This month's request count per API key, kept in ``usage.json`` between runs.

    Each CLI run is a new process whose client would otherwise believe the whole monthly
    quota is left.  Keyed by a hash of the API key (the quota is per app), never the key.
    Runs add their own requests to the stored count, so concurrent runs do not overwrite
    each other's.
    """

    def __init__(self, path: Path, api_key: str) -> None:
        self.path = path
        self.key = hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self._synced = 0

    @staticmethod
    def _month() -> str:
        return datetime.now(UTC).strftime("%Y-%m")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def used(self) -> int:
        """Requests counted this month by earlier runs."""
        entry = self._read().get(self.key)
        if isinstance(entry, dict) and entry.get("month") == self._month():
            used = entry.get("used")
            if isinstance(used, int) and used >= 0:
                self._synced = used
                return used
        self._synced = 0
        return 0

    def sync(self, client: EnphaseClient) -> None:
        """Add the requests ``client`` sent since the last sync to the stored count."""
        delta = client.quota_used - self._synced
        if delta <= 0:
            return
        data = self._read()
        entry = data.get(self.key)
        month = self._month()
        stored = 0
        if isinstance(entry, dict) and entry.get("month") == month:
            used = entry.get("used")
            stored = used if isinstance(used, int) else 0
        data[self.key] = {"month": month, "used": stored + delta}
        try:
            _write_private_json(self.path, data)
        except OSError as err:
            _LOGGER.debug("cannot record usage in %s: %s", self.path, err)
            return
        self._synced = client.quota_used
