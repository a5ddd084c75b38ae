"""The CLI against the simulator: :class:`SimulatorThread` (an ``EnphaseSimulator`` serving
from a thread of its own, since ``main(argv)`` runs its own event loop) and the fixtures the
CLI tests share: ``simulator`` (a module overrides it for another simulator), ``sim``,
``env`` (credentials, URLs and a config directory under ``tmp_path``, a saved token),
``system_id`` and ``cli`` (``main(argv)`` -> exit code, stdout, stderr); helpers for
subprocesses and the files the CLI writes."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from enphase_battery import FileTokenStore
from enphase_battery.cli import main
from enphase_battery.simulator import EnphaseSimulator

_T = TypeVar("_T")


#: The simulator's "now" is 2026-06-01 00:00 UTC; these lie inside its 2-day history.
SINCE = "2026-05-31T12:00:00+00:00"


ROOT = Path(__file__).resolve().parents[2]


class SimulatorThread:
    """An :class:`EnphaseSimulator` serving from its own event loop in a daemon thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> EnphaseSimulator:
            sim = EnphaseSimulator(**kwargs)
            await sim.start()
            return sim

        self.sim = self.run(start())

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn`` on the simulator's loop (its state is not thread-safe)."""

        async def wrapper() -> _T:
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        self.run(self.sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=3, systems=1, encharges=1, plan="partner", history=timedelta(days=2)
    )
    yield thread
    thread.close()


@pytest.fixture
def sim(simulator: SimulatorThread) -> EnphaseSimulator:
    return simulator.sim


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config" / "enphase-battery"


@pytest.fixture
def token_path(config_dir: Path) -> Path:
    return config_dir / "token.json"


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: EnphaseSimulator, token_path: Path
) -> dict[str, str]:
    """Credentials and URLs in the environment, config under tmp_path, a saved token."""
    for name in list(os.environ):
        if name.startswith("ENPHASE_"):
            monkeypatch.delenv(name)
    values = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        "ENPHASE_API_KEY": sim.api_key,
        "ENPHASE_CLIENT_ID": sim.client_id,
        "ENPHASE_CLIENT_SECRET": sim.client_secret,
        "ENPHASE_BASE_URL": sim.base_url,
        "ENPHASE_TOKEN_URL": sim.token_url,
        "ENPHASE_AUTHORIZE_URL": sim.authorize_url,
        # The fastest plan: its limiter spaces requests 0.2 s apart.
        "ENPHASE_PLAN": "partner",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    FileTokenStore(token_path).save_sync(sim.token)
    return values


@pytest.fixture
def system_id(sim: EnphaseSimulator) -> int:
    return sim.system_ids[0]


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``main(argv)``; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("enphase-battery: error: ")
    assert "Traceback" not in err
    return lines[0]


def subprocess_env(values: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    base.update(values)
    base["PYTHONPATH"] = str(ROOT)
    return base


#: What coverage's ``patch = subprocess`` (pyproject.toml) hands a child to measure it.
_COVERAGE_VARS = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def without_coverage(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a child that must start as a user's would:
    coverage in the child imports modules (sqlite3...) before the program does, which the
    tests of what a start-up imports, or of a Ctrl-C at a module's first import, watch."""
    base = dict(os.environ if env is None else env)
    for name in _COVERAGE_VARS:
        base.pop(name, None)
    return base


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keys(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["source"], r["end_at"]) for r in records]
