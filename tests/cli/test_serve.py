"""``enphase-battery serve`` against the simulator: a real Prometheus scrapes ``/metrics``
and its HTTP API shows the series; ``/healthz`` goes 503 when the simulator stops
answering and 200 when it is back; SIGTERM and SIGINT finish, save and exit 0 in seconds."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.cli import SimulatorThread, subprocess_env
from tests.support.servers import Prometheus, binary, free_port
from tests.support.sinks import SINCE, cli_values


class Serve:
    """A ``serve`` process and its two routes."""

    def __init__(self, values: dict[str, str], tmp_path: Path, *extra: str) -> None:
        self.port = free_port()
        self.db = tmp_path / "serve.db"
        out = [] if "--out" in extra else ["--out", f"sqlite:///{self.db}", "--relist-every", "1s"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "enphase_battery", "serve", "--all-systems",
             "--since", SINCE, "--listen", f"127.0.0.1:{self.port}", *out, *extra],
            env=subprocess_env(values), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.process.poll() is None, self.err
            assert time.monotonic() < deadline, f"not {what} after {timeout} s"
            time.sleep(0.2)

    def healthz(self) -> int:
        try:
            return self.get("/healthz")[0]
        except OSError:
            return 0

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, float]:
        started = time.monotonic()
        self.process.send_signal(signum)
        self.process.wait(timeout=30)
        took = time.monotonic() - started
        self._reader.join(timeout=10)
        return self.process.returncode, self.err, took


@pytest.fixture
def serve_env(late_simulator: SimulatorThread, tmp_path: Path) -> dict[str, str]:
    return cli_values(late_simulator.sim, tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_healthz_follows_the_api_and_a_stop_signal_exits_0(
    late_simulator: SimulatorThread, serve_env: dict[str, str], tmp_path: Path, signum: int
) -> None:
    serve = Serve(serve_env, tmp_path, "--stall-after", "3")
    try:
        serve.wait_for(lambda: "INFO caught up: " in serve.err, "caught up")
        assert serve.healthz() == 200
        # The simulator stops answering (every request a 503).
        late_simulator.call(late_simulator.sim.faults.fail_next, 1_000_000, 503)
        serve.wait_for(lambda: serve.healthz() == 503, "unhealthy")
        _, line = serve.get("/healthz")
        assert line.startswith("stalled: no API answer for ")
        assert len(line.strip().splitlines()) == 1
        late_simulator.call(late_simulator.sim.faults.clear)
        serve.wait_for(lambda: serve.healthz() == 200, "healthy again")
        code, err, took = serve.stop(signum)
    finally:
        serve.process.kill()
    assert code == 0, err
    assert took < 10, err
    assert "Traceback" not in err
    assert "INFO serving http://127.0.0.1:" in err
    assert "INFO caught up: " in err
    assert "INFO stopped: " in err
    # One line per event, not per request.
    assert len(err.splitlines()) < 20, err


def test_prometheus_scrapes_the_series_and_the_totals_match_the_table(
    late_simulator: SimulatorThread, serve_env: dict[str, str], tmp_path: Path
) -> None:
    executable = binary("ENPHASE_TEST_PROMETHEUS", "prometheus")
    serve = Serve(serve_env, tmp_path)
    prometheus: Prometheus | None = None
    try:
        serve.wait_for(lambda: "INFO caught up: " in serve.err, "caught up")
        prometheus = Prometheus(executable, tmp_path / "prometheus", [f"127.0.0.1:{serve.port}"])
        sim = late_simulator.sim
        streams = {
            (str(system), source)
            for system in sim.system_ids
            for source in ("battery", *late_simulator.call(sim.encharge_serials, system))
        }
        found: list[dict[str, object]] = []

        def scraped() -> bool:
            nonlocal found
            assert prometheus is not None
            found = prometheus.query("enphase_battery_soc_percent")
            return {(r["metric"]["system_id"], r["metric"]["source"]) for r in found} == streams  # type: ignore[index]

        serve.wait_for(scraped, "scraped by Prometheus", timeout=90)
        for name in ("enphase_battery_interval_end_timestamp_seconds",
                     "enphase_battery_charge_wh_total", "enphase_battery_discharge_wh_total",
                     "enphase_battery_api_requests_total", "enphase_battery_quota_used_requests",
                     "enphase_battery_systems", "enphase_battery_healthy"):  # fmt: skip
            assert prometheus.query(name), name
        # The counters equal the table's sums once nothing is left to deliver.
        time.sleep(3)
        _, text = serve.get("/metrics")
        totals = {
            line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("enphase_battery_charge_wh_total{")
        }
        conn = sqlite3.connect(serve.db)
        try:
            sums = conn.execute(
                "SELECT system_id, source, sum(charge_wh), max(end_at) FROM battery_interval"
                " GROUP BY 1, 2"
            ).fetchall()
        finally:
            conn.close()
        for system_id, source, charge, newest in sums:
            assert totals[f'source="{source}",system_id="{system_id}"'] == charge
            assert datetime.fromisoformat(newest)
        code, err, _ = serve.stop()
        assert code == 0, err
    finally:
        serve.process.kill()
        if prometheus is not None:
            prometheus.stop()


def test_two_serve_processes_share_the_systems_through_postgres(
    late_simulator: SimulatorThread,
    serve_env: dict[str, str],
    tmp_path: Path,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    """``serve --out postgresql://``: two processes split the systems (leases), each
    interval lands once in ``battery_interval`` with its checkpoint, and both stop with 0."""
    import asyncio

    import asyncpg

    from tests.support.sinks import Rows, check_against_truth

    async def read() -> Rows:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            found = await conn.fetch(f'SELECT * FROM "{pg_schema}".battery_interval')
        finally:
            await conn.close()
        return {
            (r["system_id"], r["source"], int(r["end_at"].timestamp())): (
                r["charge_wh"],
                r["discharge_wh"],
                r["soc_percent"],
                r["partial"],
                r["revision"],
            )
            for r in found
        }

    serves = [
        Serve(serve_env, tmp_path / f"w{i}", "--out", postgres_dsn, "--pg-schema", pg_schema)
        for i in range(2)
    ]
    try:
        for serve in serves:
            serve.wait_for(lambda serve=serve: serve.healthz() == 200, "healthy")

        last: list[BaseException] = []

        def complete() -> bool:
            try:
                check_against_truth(late_simulator, asyncio.run(read()))
            except Exception as err:  # not there yet: no table, or rows missing
                last[:] = [err]
                return False
            return True

        try:
            serves[0].wait_for(complete, "every interval in the table", timeout=120)
        except AssertionError:
            raise AssertionError((last, serves[0].err, serves[1].err)) from None
        codes = [serve.stop() for serve in serves]
    finally:
        for serve in serves:
            serve.process.kill()
    for code, err, took in codes:
        assert code == 0, err
        assert took < 10, err
        assert "Traceback" not in err
