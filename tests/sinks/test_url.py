"""``--out`` URLs: SQLAlchemy's SQLite spelling, PostgreSQL DSNs, InfluxDB with no
credentials on the command line, files left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.sinks import parse_sink_url


def test_sqlite_relative_and_absolute() -> None:
    relative = parse_sink_url("sqlite:///battery.db")
    absolute = parse_sink_url("sqlite:////var/lib/enphase/battery.db")
    assert relative is not None
    assert relative.kind == "sqlite"
    assert relative.path == Path("battery.db")
    assert absolute is not None
    assert absolute.path == Path("/var/lib/enphase/battery.db")


def test_postgresql_keeps_the_dsn() -> None:
    for dsn in ("postgresql://u@h:5432/db", "postgres://h/db"):
        target = parse_sink_url(dsn)
        assert target is not None
        assert (target.kind, target.dsn) == ("postgresql", dsn)


def test_influxdb_host_port_database() -> None:
    target = parse_sink_url("influxdb://127.0.0.1:8086/enphase")
    assert target is not None
    assert (target.kind, target.host, target.port, target.database) == (
        "influxdb", "127.0.0.1", 8086, "enphase",
    )  # fmt: skip
    assert target.base_url == "http://127.0.0.1:8086"
    tls = parse_sink_url("influxdbs://influx.example/db")
    assert tls is not None
    assert tls.base_url == "https://influx.example:8086"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://battery.db",
        "sqlite:///",
        "influxdb://user:secret@h:8086/db",
        "influxdb://h:8086/",
        "influxdb://h:8086/a/b",
        "mysql://h/db",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_sink_url(url)
    assert "secret" not in str(caught.value)


def test_files_are_not_sinks() -> None:
    for path in ("battery.jsonl", "/tmp/out.csv", "./x:y.jsonl", "-"):
        assert parse_sink_url(path) is None
