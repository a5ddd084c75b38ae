"""A quota-governor backend in a JSON file: the CLI's ``usage.json``.

Each CLI run is a new process; the file carries the month's count from one run to the
next, and between runs at the same time.  Every update holds an exclusive ``flock`` on
a lock file beside it, reads, applies, and replaces the file atomically (mode 0600), so
two processes on one key never lose each other's counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from enphase_battery.quota.state import GovernorState

__all__ = ["FileGovernorBackend"]

_T = TypeVar("_T")


class FileGovernorBackend:
    """Governor state per key in one JSON file (``{key: state}``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileGovernorBackend({str(self.path)!r})"

    def describe(self) -> str:
        """``"in <path>"``."""
        return f"in {self.path}"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # Missing or unreadable: start counting afresh rather than lock the user out.
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # A short critical section (read, compute, replace): blocking is fine.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def transact(
        self, key: str, update: Callable[[GovernorState | None], tuple[GovernorState, _T]]
    ) -> _T:
        """Read, apply ``update`` and write, under the file lock."""
        with self._locked():
            data = self._read()
            state, result = update(GovernorState.from_json(data.get(key)))
            data[key] = state.to_json()
            # A read-only directory must not stop the user's call; the count is then only
            # this process's (the next run starts from what the file held).
            with contextlib.suppress(OSError):
                self._write(data)
            return result

    async def delete(self, key: str) -> None:
        """Remove ``key``'s state (every plan's when ``key`` ends in ``:*``)."""
        with self._locked():
            data = self._read()
            if key.endswith(":*"):
                prefix = key[:-1]
                data = {k: v for k, v in data.items() if not k.startswith(prefix)}
            else:
                data.pop(key, None)
            self._write(data)

    def states(self) -> dict[str, GovernorState]:
        """Every state in the file, by key (for ``enphase-battery usage``)."""
        result: dict[str, GovernorState] = {}
        for key, value in self._read().items():
            state = GovernorState.from_json(value)
            if state is not None:
                result[key] = state
        return result
