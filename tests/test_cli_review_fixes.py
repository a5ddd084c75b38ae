"""Defects a review found in the CLI, each shown on the simulator: ``simulate --plan``
that gated nothing, ``check`` from a future start "adding up", ``stream --since`` ignored
silently on a checkpoint that has a position, and "1 requests"."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import (
    SINCE,
    Run,
    SimulatorThread,
    keys,
    one_error_line,
    read_jsonl,
    subprocess_env,
)


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


def test_check_from_a_future_start_is_refused_before_any_request(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int
) -> None:
    code, out, err = cli("check", "--system", str(system_id), "--since", "2999-01-01")
    assert code == 2, out
    assert "in the future" in one_error_line(err)
    assert "adds up" not in out
    assert simulator.call(lambda: simulator.sim.request_count) == 0


def test_check_that_checked_nothing_says_so(cli: Run, env: dict[str, str], system_id: int) -> None:
    # After the simulator's newest meter reading (its clock is at 2026-06-01 00:00Z), yet
    # not in the future: no span has readings at both ends.
    code, out, err = cli("check", "--system", str(system_id), "--since", "2026-06-02")
    assert code == 0, err
    assert "every span adds up" not in out
    assert "nothing was checked" in out
    # One request (the newest reading) and the grammar for it.
    assert out.rstrip().endswith("; 1 request)")


def test_since_on_a_checkpoint_with_a_position_is_not_ignored_silently(
    cli: Run, env: dict[str, str], system_id: int, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.sqlite"
    sidecar = tmp_path / "cp.sqlite.since"
    out = tmp_path / "out.jsonl"
    base = ("stream", "--system", str(system_id), "--checkpoint", str(checkpoint),
            "--out", str(out), "--poll-interval", "0")  # fmt: skip
    code, _, first = cli(*base, "--since", SINCE, "--max-intervals", "1")
    assert code == 0, first
    assert "already has a position" not in first
    remembered = sidecar.read_text(encoding="utf-8")

    later = "2026-05-31T18:00:00+00:00"
    code, _, err = cli(*base, "--since", later, "--max-intervals", "3")
    assert code == 0, err
    assert "already has a position" in err
    assert "--since only applies to streams it has not seen" in err
    assert f"keeping the --since remembered for this checkpoint, {SINCE}" in err
    assert sidecar.read_text(encoding="utf-8") == remembered
    # And the stream resumed where it was: nothing repeated, nothing skipped to `later`.
    written = keys(read_jsonl(out))
    assert len(written) == len(set(written)) == 4
    assert first.strip().splitlines()[-1].startswith("done: 1 interval written,")


def test_plural_is_singular_for_one() -> None:
    from enphase_battery.cli.output import _plural

    assert _plural(1, "request") == "1 request"
    assert [_plural(n, "interval") for n in (0, 2)] == ["0 intervals", "2 intervals"]
