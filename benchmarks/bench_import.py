"""Start-up cost: ``import enphase_battery`` and ``enphase-battery --help`` vs ``import aiohttp``.

Each command runs as a fresh interpreter, many times, interleaved so that load on the
machine hits every command alike; the figure is the median wall time of a whole process
(interpreter start-up included, as a user sees it).  Bytecode is compiled once into a
private cache first (``PYTHONPYCACHEPREFIX``), for aiohttp and for this package alike, so
the figures are those of an installed package, not of compiling sources on every run
(``PYTHONDONTWRITEBYTECODE`` in the environment would otherwise make the comparison
unfair to whichever side ships without ``.pyc`` files).

Goals: ``import enphase_battery`` <= 1.3x ``import aiohttp``, and so is ``from
enphase_battery import EnphaseClient, TelemetryPoller`` (the package loads its names on
first use, so the bare import says little on its own); ``enphase-battery --help`` <= 2x
``import aiohttp``.

Run: ``.venv/bin/python benchmarks/bench_import.py [--runs N] [--smoke]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchtable import Row, emit, is_smoke


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("enphase-battery")
    if script.exists():
        return [str(script), "--help"]
    return [sys.executable, "-m", "enphase_battery", "--help"]


COMMANDS: dict[str, list[str]] = {
    "python (empty)": [sys.executable, "-c", "pass"],
    "import aiohttp": [sys.executable, "-c", "import aiohttp"],
    "import enphase_battery": [sys.executable, "-c", "import enphase_battery"],
    # What a service does: the names load their modules on first use, so the bare import
    # alone would flatter the package.
    "client + poller": [
        sys.executable,
        "-c",
        "from enphase_battery import EnphaseClient, TelemetryPoller",
    ],
    "enphase-battery --help": _cli(),
}


def _time(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def measure(runs: int) -> dict[str, float]:
    """Median seconds per command."""
    cache = tempfile.mkdtemp(prefix="enphase-bench-pyc-")
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for command in COMMANDS.values():  # compile into the cache; not timed
            _time(command, env)
        samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
        names = list(COMMANDS)
        for i in range(runs):
            # Rotate the order so no command always runs right after another.
            for name in names[i % len(names) :] + names[: i % len(names)]:
                samples[name].append(_time(COMMANDS[name], env))
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="timed runs per command")
    parser.add_argument("--smoke", action="store_true", help="two runs per command")
    args = parser.parse_args()
    smoke = is_smoke()
    medians = measure(2 if smoke else args.runs)
    for name, seconds in medians.items():
        print(f"  {name:<24} {seconds * 1000:7.1f} ms (median)")
    aiohttp_ms = medians["import aiohttp"] * 1000
    emit(
        [
            Row(
                "import enphase_battery (process)",
                medians["import enphase_battery"] * 1000,
                "ms",
                baseline=aiohttp_ms,
                goal_op="<=",
                goal_value=1.3,
                note="baseline: python -c 'import aiohttp'",
            ),
            Row(
                "from enphase_battery import EnphaseClient, TelemetryPoller",
                medians["client + poller"] * 1000,
                "ms",
                baseline=aiohttp_ms,
                goal_op="<=",
                goal_value=1.3,
                note="baseline: python -c 'import aiohttp'",
            ),
            Row(
                "enphase-battery --help (process)",
                medians["enphase-battery --help"] * 1000,
                "ms",
                baseline=aiohttp_ms,
                goal_op="<=",
                goal_value=2.0,
                note="baseline: python -c 'import aiohttp'",
            ),
        ],
        smoke=smoke,
    )


if __name__ == "__main__":
    main()
