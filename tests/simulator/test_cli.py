"""``enphase-battery simulate`` as a user runs it: a real process, its ``export`` lines, and
the plan it is given gating what the commands pointed at it may call."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import one_error_line, subprocess_env


def _exports_of(server: subprocess.Popen[str]) -> dict[str, str]:
    """The ``export`` lines ``enphase-battery simulate`` prints before "Press Ctrl-C"."""
    assert server.stdout is not None
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line or line.startswith("Press Ctrl-C"):
            break
        if match := re.match(r"\s*export (ENPHASE_\w+)=(\S+)$", line):
            exports[match[1]] = match[2].strip("'")
    assert "ENPHASE_BASE_URL" in exports, "the simulator printed no exports"
    return exports


@pytest.mark.slow
def test_simulate_on_the_watt_plan_refuses_what_watt_cannot_call(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    server = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "simulate", "--port", "0", "--plan", "watt",
         "--systems", "1", "--token-file", str(tmp_path / "sim-token.json")],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        run_env = subprocess_env({**home, **_exports_of(server)})

        def run(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "enphase_battery", *argv],
                env=run_env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        # Site-level data is the Watt plan's: served.
        assert run("systems").returncode == 0
        # Configuration routes are Megawatt and up: the API's 403, as EnphaseSimulator(
        # plan="watt", enforce_plan_access=True) answers in Python.
        refused = run("settings", "show")
        assert refused.returncode == 1, refused.stdout
        assert "HTTP 403: not authorized to access get_system_battery_settings" in (
            one_error_line(refused.stderr)
        )
    finally:
        server.terminate()
        server.communicate(timeout=30)
