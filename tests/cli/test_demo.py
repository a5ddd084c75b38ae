"""``make demo`` stays working: a short run ends on a summary, and ``--json`` prints valid,
duplicate-free JSON lines."""

from __future__ import annotations

import json
import re

import pytest

from enphase_battery.cli.demo import main


def test_demo_ends_on_a_short_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "3"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) < 20  # not one line per interval
    assert not any(line.startswith("{") for line in lines)
    summary = lines[lines.index("summary") + 1 :]
    streams = [line.split() for line in summary if re.match(r"\s+(battery|\d{12})\s+\d+", line)]
    assert streams[0][0] == "battery"
    assert len(streams) == 3  # the battery and two Encharges
    assert all(int(row[1]) > 0 for row in streams)
    text = captured.out
    assert re.search(r"\d+ intervals in [\d.]+ s, each delivered once", text)
    assert re.search(r"requests: \d+ by the poller, \d+ sent in all", text)
    assert re.search(r"quota \(partner\): \d+ used, [\d,]+ left this month", text)
    assert "--json" in lines[-1]  # it ends by saying how to see every interval


def test_demo_json_prints_each_interval_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "3", "--json"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records
    keys = [(r["system_id"], r["source"], r["end_at"], r["revision"]) for r in records]
    assert len(keys) == len(set(keys))
    assert {r["source"] for r in records} >= {"battery"}
    assert len({r["source"] for r in records}) == 3  # the battery and two Encharges
    assert "summary" in captured.err  # stdout stays data
    total = re.search(r"(\d+) intervals in", captured.err)
    assert total is not None
    assert int(total[1]) == sum(1 for r in records if r["revision"] == 0)
