"""The one results table every benchmark contributes to.

Each ``benchmarks/bench_*.py`` script measures what it measures, prints whatever detail
helps, and ends with ``emit(rows)``: one :class:`Row` per goal (or per figure worth a line).
``make bench`` (``benchmarks/run_all.py``) runs every ``bench_*.py`` it finds, collects the
rows and prints them as one table::

    figure | SDK | baseline | ratio | goal | met

Contract for a benchmark script (so a new one plugs in by being added, nothing else):

* it is named ``benchmarks/bench_<topic>.py`` and runs as ``python benchmarks/bench_<topic>.py``;
* it accepts ``--smoke``: a few iterations only, finishing in seconds; ``make test`` runs
  every script that way (tests/benchmarks/test_run_all.py) and asserts only that it runs and
  emits its rows, so goals are judged from the full run, never in a timed test;
* it calls :func:`emit` once with its rows.  Standalone, ``emit`` prints the script's own
  table; under ``run_all.py`` (environment variable ``ENPHASE_BENCH_ROWS`` set to a file)
  it appends the rows to that file as JSON lines instead, one object per row with the
  fields of :class:`Row` plus ``"script"``;
* a figure it cannot measure here (an optional extra not installed, a service not
  running) is still a row, with ``sdk=None`` and the reason in ``note``: the table then
  says so instead of silently losing the line.

A goal is on the ratio SDK / baseline (``goal_on="ratio"``, e.g. at most 1.2x a bare
``aiohttp`` call) or on the SDK figure itself (``goal_on="sdk"``, e.g. at most 2 ms, at
least 50,000 intervals/s); ``goal_op`` is ``"<="`` or ``">="``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ROWS_ENV", "Row", "emit", "format_table", "is_smoke", "read_rows"]

#: Where run_all.py asks scripts to append their rows (JSON lines).
ROWS_ENV = "ENPHASE_BENCH_ROWS"
HEADERS = ("figure", "SDK", "baseline", "ratio", "goal", "met")


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, what it is compared with, and its goal."""

    figure: str
    #: The SDK's figure in ``unit`` (None: could not be measured here, see ``note``).
    sdk: float | None
    unit: str
    #: The same figure for the baseline it is compared with, in the same unit.
    baseline: float | None = None
    #: ``"<="`` or ``">="``; None for a figure shown without a goal.
    goal_op: str | None = None
    goal_value: float | None = None
    #: ``"ratio"`` (SDK / baseline) or ``"sdk"`` (the SDK figure itself).
    goal_on: str = "ratio"
    note: str = ""
    #: Set by run_all.py --smoke: the figures come from a few iterations only.
    smoke: bool = False

    def __post_init__(self) -> None:
        if self.goal_op not in (None, "<=", ">="):
            raise ValueError(f"goal_op must be '<=' or '>=', not {self.goal_op!r}")
        if self.goal_on not in ("ratio", "sdk"):
            raise ValueError(f"goal_on must be 'ratio' or 'sdk', not {self.goal_on!r}")
        if self.goal_op is not None and self.goal_value is None:
            raise ValueError("a goal needs goal_value")

    @property
    def ratio(self) -> float | None:
        """SDK / baseline, when both were measured."""
        if self.sdk is None or not self.baseline:
            return None
        return self.sdk / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None: no goal, or nothing to judge)."""
        if self.goal_op is None or self.goal_value is None:
            return None
        value = self.ratio if self.goal_on == "ratio" else self.sdk
        if value is None:
            return None
        return value <= self.goal_value if self.goal_op == "<=" else value >= self.goal_value

    def cells(self) -> tuple[str, ...]:
        """The row as the table's text cells."""
        ratio = self.ratio
        if self.goal_op is None:
            goal = ""
        elif self.goal_on == "ratio":
            goal = f"{self.goal_op} {self.goal_value:g}x"
        else:
            goal = f"{self.goal_op} {_number(self.goal_value)} {self.unit}"
        met = self.met
        if self.sdk is None:
            verdict = f"n/a: {self.note}" if self.note else "n/a"
        elif self.smoke:
            verdict = "(smoke run)"
        elif met is None:
            verdict = ""
        else:
            verdict = "yes" if met else "NO"
        return (
            self.figure,
            _with_unit(self.sdk, self.unit),
            _with_unit(self.baseline, self.unit),
            "" if ratio is None else f"{ratio:.2f}x",
            goal,
            verdict,
        )


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _with_unit(value: float | None, unit: str) -> str:
    return "" if value is None else f"{_number(value)} {unit}".rstrip()


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal and in the README)."""
    lines = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(HEADERS), rule, *(render(line) for line in lines[1:])])


def is_smoke(argv: Sequence[str] | None = None) -> bool:
    """Whether the script was asked for a smoke run (``--smoke``)."""
    return "--smoke" in (sys.argv[1:] if argv is None else argv)


def emit(rows: Iterable[Row], *, smoke: bool = False) -> None:
    """Hand the script's rows to run_all.py, or print them as a table when run alone."""
    rows = [Row(**{**asdict(row), "smoke": smoke}) for row in rows]
    target = os.environ.get(ROWS_ENV)
    if target:
        script = Path(sys.argv[0]).name
        with open(target, "a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps({"script": script, **asdict(row)}) + "\n")
        return
    print()
    print(format_table(rows))


def read_rows(path: Path) -> list[tuple[str, Row]]:
    """The ``(script, row)`` pairs scripts appended to ``path``."""
    pairs: list[tuple[str, Row]] = []
    if not path.exists():
        return pairs
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            fields = json.loads(line)
            script = fields.pop("script")
            pairs.append((script, Row(**fields)))
    return pairs
