"""``stream --since`` is remembered as soon as it is known valid, and only then.

A rerun without ``--since`` starts the streams the checkpoint has no position for from
the remembered one; were it remembered only once the poller is built, a run stopped or
failing before that would leave the rerun starting at the system's current day, and the
history asked for would be skipped without a word.
"""

from __future__ import annotations

import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import SINCE as HISTORY_SINCE
from tests.support.cli import Run, SimulatorThread, keys, one_error_line, read_jsonl

#: The first day of the simulator's 2-day history: well before the local midnight a
#: stream started without --since begins at.
SINCE = "2026-05-30T06:00:00+00:00"


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_since_survives_a_run_that_fails_before_the_poller_is_built(
    cli: Run,
    env: dict[str, str],
    sim: EnphaseSimulator,
    tmp_path: Path,
    system_id: int,
    config_dir: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    args = ["stream", "--system", str(system_id), "--out", str(out)]
    # The API cannot be reached: the run fails on its first request, the devices list
    # that checks --encharge, before the poller exists.
    (serial,) = sim.encharge_serials(system_id)
    code, _, err = cli(
        "--base-url", _dead_url(), *args, "--encharge", serial, "--since", SINCE,
        "--until-caught-up",
    )  # fmt: skip
    assert code == 1, err
    assert "cannot reach the API" in one_error_line(err)
    sidecar = config_dir / f"stream-{system_id}.sqlite.since"
    assert sidecar.read_text(encoding="utf-8") == SINCE + "\n"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert not list(config_dir.glob(".stream-*"))  # no temporary file left behind

    # The rerun, without --since, starts there: everything from SINCE, once each.
    code, _, err = cli(*args, "--until-caught-up")
    assert code == 0, err
    resumed = keys(read_jsonl(out))
    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--out", str(reference),
        "--checkpoint", str(tmp_path / "reference.sqlite"), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    assert len(resumed) == len(set(resumed))
    assert sorted(resumed) == sorted(keys(read_jsonl(reference)))
    assert min(end_at for _, end_at in resumed) < "2026-05-31"


def test_an_invalid_since_is_remembered_on_no_path(
    cli: Run,
    env: dict[str, str],
    simulator: SimulatorThread,
    sim: EnphaseSimulator,
    tmp_path: Path,
    system_id: int,
    config_dir: Path,
) -> None:
    too_old = (datetime.now(UTC) - timedelta(days=900)).isoformat()
    for where in (
        ["--system", str(system_id)],
        ["--all-systems"],
        ["--system", str(system_id), "--system", str(system_id + 1)],
        ["--system", str(system_id), "--checkpoint", str(tmp_path / "named.sqlite")],
    ):
        code, _, err = cli("stream", *where, "--since", too_old, "--until-caught-up")
        assert code == 2, (where, err)
        assert "two years back" in one_error_line(err)
    assert simulator.call(lambda: sim.request_count) == 0
    assert not list(config_dir.glob("*.since"))
    assert not list(tmp_path.glob("*.since"))


def test_since_on_a_checkpoint_with_a_position_is_not_ignored_silently(
    cli: Run, env: dict[str, str], system_id: int, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.sqlite"
    sidecar = tmp_path / "cp.sqlite.since"
    out = tmp_path / "out.jsonl"
    base = ("stream", "--system", str(system_id), "--checkpoint", str(checkpoint),
            "--out", str(out), "--poll-interval", "0")  # fmt: skip
    code, _, first = cli(*base, "--since", HISTORY_SINCE, "--max-intervals", "1")
    assert code == 0, first
    assert "already has a position" not in first
    remembered = sidecar.read_text(encoding="utf-8")

    later = "2026-05-31T18:00:00+00:00"
    code, _, err = cli(*base, "--since", later, "--max-intervals", "3")
    assert code == 0, err
    assert "already has a position" in err
    assert "--since only applies to streams it has not seen" in err
    assert f"keeping the --since remembered for this checkpoint, {HISTORY_SINCE}" in err
    assert sidecar.read_text(encoding="utf-8") == remembered
    # And the stream resumed where it was: nothing repeated, nothing skipped to `later`.
    written = keys(read_jsonl(out))
    assert len(written) == len(set(written)) == 4
    assert first.strip().splitlines()[-1].startswith("done: 1 interval written,")
