"""Throwaway InfluxDB 1.x and Prometheus servers for the tests, on free loopback ports in
temporary directories, stopped at the end.

The binaries come from ``scripts/with-servers.sh`` (``make test``), which installs
Debian's ``influxdb`` and ``prometheus`` packages when they are missing and exports
``ENPHASE_TEST_INFLUXD`` and ``ENPHASE_TEST_PROMETHEUS``; found on ``PATH`` otherwise.
Without them the tests that need them are skipped, except under ``CI=true``, where they
fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def binary(variable: str, name: str) -> str:
    path = os.environ.get(variable) or shutil.which(name)
    if not path:
        reason = f"no {name} binary ({variable} unset and not on PATH; run `make test`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI these tests must run", pytrace=False)
        pytest.skip(reason)
    return path


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Influx:
    """An ``influxd`` of its own: started, restarted, stopped; queried over HTTP."""

    def __init__(self, influxd: str, directory: Path) -> None:
        self.influxd = influxd
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "influxdb.conf"
        self.config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{directory}/meta"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            "[subscriber]\n  enabled = false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.directory / "influxd.log").open("ab")
        self.process = subprocess.Popen(
            [self.influxd, "-config", str(self.config)], stdout=log, stderr=log
        )
        wait_http(f"{self.url}/ping")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def query(self, database: str, q: str) -> list[dict[str, Any]]:
        """The rows of ``q`` (times in epoch seconds), as dicts with tags."""
        params = urllib.parse.urlencode({"db": database, "q": q, "epoch": "s"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=30) as response:
            body = json.load(response)
        rows: list[dict[str, Any]] = []
        for result in body.get("results", []):
            assert "error" not in result, result
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows


@pytest.fixture
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    """A throwaway ``influxd`` of this test's own (a test may restart it)."""
    server = Influx(binary("ENPHASE_TEST_INFLUXD", "influxd"), tmp_path_factory.mktemp("influxdb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Prometheus:
    """A ``prometheus`` of its own scraping ``targets`` every second; its HTTP API queried."""

    def __init__(self, prometheus: str, directory: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: enphase-battery\n"
            f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
        )
        log = (directory / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=log,
        )
        wait_http(f"{self.url}/-/ready")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` selects now."""
        params = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
