"""``make demo`` stays working: a short run prints valid, duplicate-free JSON lines."""

from __future__ import annotations

import json

import pytest

from enphase_battery.demo import main


def test_demo_prints_each_interval_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "3", "--json"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records
    keys = [(r["system_id"], r["source"], r["end_at"]) for r in records]
    assert len(keys) == len(set(keys))
    assert {r["source"] for r in records} >= {"battery"}
    assert len({r["source"] for r in records}) == 3  # the battery and two Encharges
    assert "summary" in captured.err
