"""The benchmarks still run (a smoke run of each), and the table they share adds up.

Goals are judged from the full ``make bench`` run, never here: these tests assert only
that every script runs, emits its rows and that the table says what the rows say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from benchtable import ROWS_ENV, Row, emit, format_table, read_rows  # noqa: E402


@pytest.mark.slow
def test_smoke_run_of_every_benchmark_prints_one_table() -> None:
    scripts = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))
    assert "bench_client.py" in scripts
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--smoke", "--quiet", "--timeout", "300"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("| figure")]
    assert len(header) == 1, done.stdout  # one table, not one per script
    body = [line for line in lines[header[0] + 2 :] if line.startswith("|")]
    # Every script contributed: its topic names the rows (``client: ...``, ``simulator: ...``).
    assert len(body) >= len(scripts)
    assert any("client: week of telemetry" in line for line in body)
    assert any("simulator: a week" in line for line in body)
    assert any("import enphase_battery" in line for line in body)
    assert all("(smoke run)" in line or "n/a" in line for line in body), body


def test_row_ratio_and_goal_on_ratio() -> None:
    row = Row("x", 120.0, "us", baseline=100.0, goal_op="<=", goal_value=1.2)
    assert row.ratio == pytest.approx(1.2)
    assert row.met is True
    slower = Row("x", 121.0, "us", baseline=100.0, goal_op="<=", goal_value=1.2)
    assert slower.met is False
    assert slower.cells()[3:] == ("1.21x", "<= 1.2x", "NO")


def test_row_goal_on_the_sdk_figure() -> None:
    fast = Row("t", 120_000.0, "intervals/s", goal_op=">=", goal_value=100_000, goal_on="sdk")
    assert fast.met is True
    assert fast.cells()[4:] == (">= 100,000 intervals/s", "yes")
    assert Row("t", 99_999.5, "/s", goal_op=">=", goal_value=100_000, goal_on="sdk").met is False


def test_row_that_could_not_be_measured_says_why() -> None:
    row = Row("orjson", None, "us", goal_op="<=", goal_value=1.2, note="orjson not installed")
    assert row.met is None
    assert row.cells()[-1] == "n/a: orjson not installed"


def test_bad_goal_is_refused() -> None:
    with pytest.raises(ValueError, match="goal_op"):
        Row("x", 1.0, "s", goal_op="<")
    with pytest.raises(ValueError, match="goal_value"):
        Row("x", 1.0, "s", goal_op="<=")


def test_emit_appends_json_rows_for_run_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "rows.jsonl"
    monkeypatch.setenv(ROWS_ENV, str(target))
    rows = [Row("a", 1.5, "ms", goal_op="<=", goal_value=2, goal_on="sdk"), Row("b", 3.0, "ms")]
    emit(rows)
    emit(rows[:1], smoke=True)
    first = json.loads(target.read_text().splitlines()[0])
    assert first["figure"] == "a"
    assert "script" in first
    pairs = read_rows(target)
    assert [row.figure for _, row in pairs] == ["a", "b", "a"]
    assert [row.smoke for _, row in pairs] == [False, False, True]
    table = format_table([row for _, row in pairs]).splitlines()
    assert table[0].split("|")[1].strip() == "figure"
    assert len({len(line) for line in table}) == 1  # aligned columns
    assert "yes" in table[2]
    assert "(smoke run)" in table[4]


def test_emit_prints_the_table_when_run_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROWS_ENV, raising=False)
    emit([Row("alone", 2.5, "ms", baseline=2.0, goal_op="<=", goal_value=1.3)])
    out = capsys.readouterr().out
    assert "| alone" in out
    assert "1.25x" in out
    assert os.environ.get(ROWS_ENV) is None
