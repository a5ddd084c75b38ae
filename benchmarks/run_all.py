"""Run every ``benchmarks/bench_*.py`` and print their rows as one table (``make bench``).

Each script runs in its own process (so one's imports, caches and event loop do not colour
another's figures), prints its detail as it goes, and hands its rows back through
``benchtable.emit`` (see benchtable.py for the contract).  The table comes last.

``--smoke`` passes ``--smoke`` to every script: a few iterations, to prove the scripts
still run (``make test`` does this); the ``met`` column then says ``(smoke run)``.
``--only client,import`` runs a subset; ``--quiet`` hides the scripts' detail.

Exit status: 0 when every script ran and emitted rows (whether goals are met is the
table's business, not the exit status's), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchtable import ROWS_ENV, Row, format_table, read_rows

HERE = Path(__file__).resolve().parent


def scripts(only: set[str] | None) -> list[Path]:
    """The benchmark scripts, in name order (``only``: topics after ``bench_``)."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [p for p in found if p.stem.removeprefix("bench_") in only]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few iterations per script")
    parser.add_argument("--only", default="", help="comma-separated topics, e.g. client,import")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed per script (default: none)"
    )
    args = parser.parse_args(argv)
    only = {t.strip() for t in args.only.split(",") if t.strip()} or None
    failures: list[str] = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts(only):
            rows_file = Path(tmp) / f"{script.stem}.jsonl"
            env = {**os.environ, ROWS_ENV: str(rows_file)}
            command = [sys.executable, str(script), *(["--smoke"] if args.smoke else [])]
            if not args.quiet:
                print(f"== {script.name}", flush=True)
            began = time.perf_counter()
            try:
                done = subprocess.run(
                    command,
                    env=env,
                    cwd=HERE.parent,
                    stdout=subprocess.DEVNULL if args.quiet else None,
                    timeout=args.timeout,
                    check=False,
                )
                status = done.returncode
            except subprocess.TimeoutExpired:
                status = -1
            produced = [row for _, row in read_rows(rows_file)]
            if status != 0 or not produced:
                why = f"exit status {status}" if status != 0 else "no rows emitted"
                failures.append(f"{script.name}: {why}")
            rows.extend(produced)
            if not args.quiet:
                print(f"   ({time.perf_counter() - began:.1f} s)\n", flush=True)
    print(format_table(rows))
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
