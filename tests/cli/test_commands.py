"""The ``enphase-battery`` CLI against the simulator.

``main(argv)`` runs its own event loop (``asyncio.run``), so the simulator serves from a
background thread with a loop of its own; a few tests run the CLI as a real subprocess
(``python -m enphase_battery``) where a signal or a blocking listener is involved.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from enphase_battery import FileTokenStore, OAuth2Token
from enphase_battery.auth import DEFAULT_REDIRECT_URI
from enphase_battery.cli import main
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import (
    SINCE,
    Run,
    SimulatorThread,
    keys,
    one_error_line,
    read_jsonl,
    subprocess_env,
)


def secrets_of(sim: EnphaseSimulator, token_path: Path) -> list[str]:
    values = [sim.api_key, sim.client_secret]
    token = FileTokenStore(token_path).load()
    if token is not None:
        values += [token.access_token, token.refresh_token]
    return values


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


# -- read-only commands ----------------------------------------------------------------------


def test_systems_table_and_json(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    code, out, err = cli("systems")
    assert code == 0, err
    assert out.splitlines()[0].split()[:2] == ["SYSTEM", "NAME"]
    assert str(sim.system_ids[0]) in out

    code, out, _ = cli("systems", "--json")
    assert code == 0
    systems = json.loads(out)
    assert [s["system_id"] for s in systems] == list(sim.system_ids)
    assert systems[0]["last_report_at"].endswith("+00:00")
    assert_no_secrets(out + err, secrets_of(sim, token_path))


def test_common_options_before_or_after_the_command(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    code_after, out_after, _ = cli("grid-status", "--system", str(system_id), "--json")
    code_before, out_before, _ = cli("--json", "grid-status", "--system", str(system_id))
    assert code_after == code_before == 0
    assert json.loads(out_after)["grid_state"] == json.loads(out_before)["grid_state"] == "On Grid"


def test_devices_lists_the_encharges(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    serials = sim.encharge_serials(system_id)
    code, out, err = cli("devices", "--system", str(system_id))
    assert code == 0, err
    encharge_rows = [line for line in out.splitlines() if line.startswith("encharges")]
    assert [row.split()[1] for row in encharge_rows] == list(serials)

    code, out, _ = cli("devices", "--system", str(system_id), "--json")
    data = json.loads(out)
    assert [d["serial_number"] for d in data["devices"]["encharges"]] == list(serials)


def test_settings_show_and_set(cli: Run, env: dict[str, str], system_id: int) -> None:
    code, out, err = cli(
        "settings", "set", "--system", str(system_id),
        "--profile", "self consumption", "--reserve", "35", "--energy-independence", "off",
    )  # fmt: skip
    assert code == 0, err
    assert "35 %" in out

    code, out, _ = cli("settings", "show", "--system", str(system_id), "--json")
    assert code == 0
    settings = json.loads(out)
    assert settings["battery_mode"] == "Self-consumption"
    assert settings["reserve_soc"] == 35
    assert settings["energy_independence"] is False

    code, out, err = cli("settings", "set", "--system", str(system_id))
    assert code == 2
    assert "--profile" in one_error_line(err)

    code, _, err = cli("settings", "set", "--system", str(system_id), "--profile", "turbo")
    assert code == 2
    assert "unknown battery profile" in one_error_line(err)


def test_storm_guard_on_off_show(cli: Run, env: dict[str, str], system_id: int) -> None:
    assert cli("storm-guard", "on", "--system", str(system_id))[0] == 0
    code, out, _ = cli("storm-guard", "--system", str(system_id), "--json")
    assert code == 0
    assert json.loads(out)["storm_guard_status"] is True
    code, out, _ = cli("storm-guard", "off", "--system", str(system_id))
    assert code == 0
    # What was asked, then what the API answered.
    assert [line.split() for line in out.splitlines()[:3]] == [
        ["asked"],
        ["storm", "guard", "off"],
        ["API", "answered"],
    ]


def test_grid_status_table(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int
) -> None:
    simulator.call(simulator.sim.set_grid_outage, system_id, True)
    code, out, err = cli("grid-status", "--system", str(system_id))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["grid", "Off", "Grid"]


def test_load_control_show_and_set(cli: Run, env: dict[str, str], system_id: int) -> None:
    code, out, err = cli("load-control", "show", "--system", str(system_id))
    assert code == 0, err
    assert out.splitlines()[1].startswith("NC1")

    code, out, err = cli(
        "load-control", "set", "--system", str(system_id), "--name", "NC1",
        "--mode", "Advanced_BatteryPowered", "--soc-low", "40", "--start", "06:00",
        "--end", "22:30", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["asked"] == {
        "name": "NC1", "mode": "Advanced_BatteryPowered", "soc_low": 40,
        "essential_start_time": 21_600, "essential_end_time": 81_000,
    }  # fmt: skip
    circuit = next(c for c in report["answer"]["load_control_data"] if c["name"] == "NC1")
    assert circuit["mode"] == "Advanced_BatteryPowered"
    assert circuit["soc_low"] == 40
    assert (circuit["essential_start_time"], circuit["essential_end_time"]) == (21_600, 81_000)

    code, _, err = cli("load-control", "set", "--system", str(system_id), "--name", "NC1",
                       "--start", "25:00")  # fmt: skip
    assert code == 2
    assert "HH:MM" in one_error_line(err) or "time of day" in err


def test_lifetime(cli: Run, env: dict[str, str], system_id: int) -> None:
    code, out, err = cli(
        "lifetime", "--system", str(system_id), "--since", "2026-05-30", "--until", "2026-05-31"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("2026-05-30")
    assert lines[-1].startswith("total")

    code, out, _ = cli("lifetime", "--system", str(system_id), "--since", "2026-05-30", "--json")
    days = json.loads(out)["days"]
    assert days[0]["date"] == "2026-05-30"
    assert {"charge_wh", "discharge_wh"} <= set(days[0])


def test_telemetry_matches_the_ground_truth(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int
) -> None:
    sim = simulator.sim
    since = datetime(2026, 5, 31, 0, 0, tzinfo=UTC)
    until = datetime(2026, 5, 31, 6, 0, tzinfo=UTC)
    code, out, err = cli(
        "telemetry", "--system", str(system_id), "--since", since.isoformat(),
        "--until", until.isoformat(), "--json",
    )  # fmt: skip
    assert code == 0, err
    got = json.loads(out)
    truth = simulator.call(sim.ground_truth_battery, system_id, since, until)
    assert len(got) == len(truth) == 24
    for record, expected in zip(got, truth, strict=True):
        assert datetime.fromisoformat(record["end_at"]).timestamp() == expected.end_at
        assert (record["charge_wh"], record["discharge_wh"], record["soc_percent"]) == (
            expected.charge_wh,
            expected.discharge_wh,
            expected.soc_percent,
        )

    serial = sim.encharge_serials(system_id)[0]
    code, out, err = cli(
        "telemetry", "--system", str(system_id), "--since", "2026-05-31", "--until",
        until.isoformat(), "--encharge", serial, "--granularity", "day",
    )  # fmt: skip
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert len(rows) == 24
    assert all(row.split()[2] == serial for row in rows)


def test_telemetry_before_the_first_interval_starts_at_it(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    # The system has two days of history; asking for more starts at its first interval.
    code, out, err = cli("telemetry", "--system", str(system_id), "--since", "2026-05-01", "--json")
    assert code == 0, err
    intervals = json.loads(out)
    assert intervals[0]["end_at"] == "2026-05-30T00:15:00+00:00"
    ends = [iv["end_at"] for iv in intervals]
    assert ends == sorted(set(ends))


def test_telemetry_of_a_period_before_the_data_says_where_it_starts(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    code, out, err = cli(
        "telemetry", "--system", str(system_id), "--since", "2026-05-01",
        "--until", "2026-05-08",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[1:] == []  # the header only
    assert "no intervals in that period; its data starts at 2026-05-30 00:15Z" in err


# -- usage and credentials -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["systems", "--bogus"], "unrecognized arguments: --bogus"),
        (["storm-guard", "sideways", "--system", "1"], "invalid choice"),
        (["devices", "--system", "abc"], "--system"),
        ([], "required"),
        (["telemetry", "--system", "1", "--since", "yesterday"], "YYYY-MM-DD"),
        # Out of range: the message names the flag the user typed, not the SDK's argument.
        (
            ["settings", "set", "--system", "1", "--reserve", "150"],
            "argument --reserve: expected 0-100",
        ),
        (
            ["load-control", "set", "--system", "1", "--name", "NC1", "--soc-low", "95"],
            "argument --soc-low: expected 10-90",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    cli: Run, env: dict[str, str], argv: list[str], expected: str
) -> None:
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert expected in one_error_line(err)


def test_help_and_version(cli: Run) -> None:
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("auth", "systems", "settings", "storm-guard", "stream", "simulate"):
        assert command in out
    code, out, _ = cli("--version")
    assert code == 0
    assert out.startswith("enphase-battery ")


@pytest.mark.parametrize(
    ("unset", "flag", "variable"),
    [
        ("ENPHASE_API_KEY", "--api-key", "ENPHASE_API_KEY"),
        ("ENPHASE_CLIENT_ID", "--client-id", "ENPHASE_CLIENT_ID"),
        ("ENPHASE_CLIENT_SECRET", "--client-secret", "ENPHASE_CLIENT_SECRET"),
    ],
)
def test_missing_credentials_name_the_flag_and_variable(
    cli: Run,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sim: EnphaseSimulator,
    token_path: Path,
    unset: str,
    flag: str,
    variable: str,
) -> None:
    monkeypatch.delenv(unset)
    code, out, err = cli("systems")
    assert code == 2
    line = one_error_line(err)
    assert flag in line
    assert variable in line
    assert_no_secrets(out + err, secrets_of(sim, token_path))


def test_credentials_from_flags_and_config_file(
    cli: Run,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sim: EnphaseSimulator,
    config_dir: Path,
) -> None:
    for name in ("ENPHASE_API_KEY", "ENPHASE_CLIENT_ID", "ENPHASE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    code, _, err = cli(
        "systems", "--api-key", sim.api_key, "--client-id", sim.client_id,
        "--client-secret", sim.client_secret,
    )  # fmt: skip
    assert code == 0, err

    config = config_dir / "config.json"
    config.write_text(
        json.dumps({"api_key": sim.api_key, "client_id": sim.client_id, "client_secret": "wrong"})
    )
    config.chmod(0o600)
    # The flag wins over the config file.
    code, _, err = cli("systems", "--client-secret", sim.client_secret)
    assert code == 0, err
    assert err == ""

    config.write_text(
        json.dumps(
            {"api_key": sim.api_key, "client_id": sim.client_id, "client_secret": sim.client_secret}
        )
    )
    config.chmod(0o644)
    code, out, err = cli("auth", "status")
    assert code == 0
    assert "chmod 600" in err
    assert "client secret  set (config.json)" in out
    assert sim.client_secret not in out + err


def test_not_signed_in_exits_3(cli: Run, env: dict[str, str], token_path: Path) -> None:
    token_path.unlink()
    code, _, err = cli("systems")
    assert code == 3
    assert "enphase-battery auth login" in one_error_line(err)


# -- auth --------------------------------------------------------------------------------------


def authorize(sim: EnphaseSimulator, redirect_uri: str = DEFAULT_REDIRECT_URI) -> str:
    """Approve as the homeowner; returns the redirect Location (carrying ?code=)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    query = urlencode(
        {
            "response_type": "code",
            "client_id": sim.client_id,
            "redirect_uri": redirect_uri,
            "state": "s1",
        }
    )
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(f"{sim.authorize_url}?{query}", timeout=10)
    assert caught.value.code == 302
    return str(caught.value.headers["Location"])


def test_login_with_pasted_redirect_url(
    cli: Run,
    env: dict[str, str],
    sim: EnphaseSimulator,
    token_path: Path,
    config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_path.unlink()
    location = authorize(sim)
    code, out, err = cli("auth", "login", "--code", location, "--save-credentials")
    assert code == 0, err
    assert "Signed in" in out
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    token = FileTokenStore(token_path).load()
    assert token is not None
    assert token.access_token != sim.token.access_token
    config = config_dir / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["client_secret"] == sim.client_secret
    assert_no_secrets(out + err, secrets_of(sim, token_path))

    # Credentials now come from config.json alone.
    for name in ("ENPHASE_API_KEY", "ENPHASE_CLIENT_ID", "ENPHASE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    code, out, err = cli("systems", "--json")
    assert code == 0, err


def test_login_prompts_for_the_code_on_stdin(
    cli: Run,
    env: dict[str, str],
    sim: EnphaseSimulator,
    token_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_path.unlink()
    location = authorize(sim)
    code_value = parse_qs(urlsplit(location).query)["code"][0]
    read, write = os.pipe()
    os.write(write, (code_value + "\n").encode())
    os.close(write)
    with os.fdopen(read) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        code, out, err = cli("auth", "login", "--json")
    assert code == 0, err
    assert json.loads(out)["signed_in"] is True
    url = next(line.strip() for line in err.splitlines() if line.strip().startswith("http"))
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [sim.client_id]
    assert query["redirect_uri"] == [DEFAULT_REDIRECT_URI]
    assert len(query["state"][0]) >= 16
    assert token_path.exists()


def test_login_refuses_a_redirect_with_an_error(
    cli: Run, env: dict[str, str], token_path: Path
) -> None:
    code, _, err = cli("auth", "login", "--code", f"{DEFAULT_REDIRECT_URI}?error=access_denied")
    assert code == 3
    assert "access_denied" in one_error_line(err)


def test_login_with_a_used_code_fails_cleanly(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator
) -> None:
    location = authorize(sim)
    assert cli("auth", "login", "--code", location)[0] == 0
    code, _, err = cli("auth", "login", "--code", location)
    assert code == 3
    assert "invalid_grant" in one_error_line(err)


def read_url_from(stream: Any, deadline: float) -> str:
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.strip().startswith("http"):
            return str(line.strip())
    raise AssertionError("the CLI printed no authorize URL")


def test_login_listening_on_loopback_end_to_end(
    env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    token_path.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "auth", "login", "--listen", "0",
         "--timeout", "20"],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = read_url_from(process.stderr, time.monotonic() + 15)
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        assert redirect_uri.startswith("http://127.0.0.1:")
        assert redirect_uri.endswith("/callback")
        # The browser: the simulator's authorize page redirects to the loopback listener.
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b"Signed in" in page.read()
        out, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Signed in" in out
    assert FileTokenStore(token_path).load() is not None
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600


def test_login_against_the_simulator_says_what_to_open(
    env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    token_path.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "auth", "login", "--listen", "0",
         "--timeout", "20"],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        said: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("curl" in line for line in said):
            said.append(process.stderr.readline())
        text = "".join(said)
        assert "approves at once" in text
        (curl_line,) = [line for line in said if line.strip().startswith("curl ")]
        words = shlex.split(curl_line)
        assert words[:2] == ["curl", "-sL"]
        # What the curl line does: follow the simulator's redirect to the listener.
        with urllib.request.urlopen(words[2], timeout=10) as page:
            assert b"Signed in" in page.read()
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert FileTokenStore(token_path).load() is not None


def test_login_by_pasting_against_the_simulator_says_how_to_get_the_url(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli("auth", "login")
    assert code == 2  # nothing pasted
    assert "approves at once" in err
    assert "%{redirect_url}" in err
    assert sim.authorize_url in err


def test_verbose_logs_the_requests_and_not_other_libraries_debug(
    env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "enphase_battery", "-v", "systems"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any("GET /api/v4/systems -> 200" in line for line in lines), lines
    assert all(line.startswith("enphase_battery") for line in lines), lines
    assert_no_secrets(done.stdout + done.stderr, secrets_of(sim, token_path))


def test_ctrl_c_while_the_cli_loads_is_interrupted_not_a_traceback(
    env: dict[str, str],
) -> None:
    # Ctrl-C lands while aiohttp is being imported (the first half second of every run):
    # raised here from an import hook so the moment is certain.
    code = (
        "import sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'aiohttp':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        "from enphase_battery.cli import main\n"
        "sys.exit(main(['systems']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == "enphase-battery: interrupted"


def test_login_listener_rejects_a_foreign_state(
    env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    token_path.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "auth", "login", "--listen", "0",
         "--timeout", "20"],
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = read_url_from(process.stderr, time.monotonic() + 15)
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{redirect_uri}?code=abc&state=forged", timeout=10)
        assert caught.value.code == 400
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 3
    # After the URL and the waiting notice comes exactly one error line.
    errors = [line for line in err.splitlines() if line.startswith("enphase-battery:")]
    assert len(errors) == 1, err
    assert "state does not match" in one_error_line(errors[0])
    assert not token_path.exists()


def test_auth_status_and_logout(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, token_path: Path
) -> None:
    code, out, err = cli("auth", "status")
    assert code == 0, err
    assert "expires" in out
    assert_no_secrets(out, secrets_of(sim, token_path))

    code, out, _ = cli("auth", "status", "--json")
    status = json.loads(out)
    assert status["signed_in"] is True
    assert status["expired"] is False
    assert status["credentials"]["client_secret"] == "ENPHASE_CLIENT_SECRET"
    assert_no_secrets(out, secrets_of(sim, token_path))

    expired = OAuth2Token(
        access_token="a" * 20,
        refresh_token="r" * 20,
        expires_at=datetime.now(UTC) - timedelta(hours=2),
    )
    FileTokenStore(token_path).save_sync(expired)
    code, out, _ = cli("auth", "status")
    assert code == 0
    assert "expired" in out
    assert "a" * 20 not in out

    code, out, _ = cli("auth", "logout")
    assert code == 0
    assert not token_path.exists()
    code, out, _ = cli("auth", "status")
    assert code == 3
    assert "auth login" in out


def test_dead_refresh_token_says_sign_in_again(
    cli: Run,
    env: dict[str, str],
    simulator: SimulatorThread,
    token_path: Path,
) -> None:
    sim = simulator.sim
    # An expired access token and a refresh token the server has revoked (as after 30
    # days unused): the refresh is refused.
    stale = OAuth2Token(
        access_token=sim.token.access_token,
        refresh_token=sim.token.refresh_token,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    FileTokenStore(token_path).save_sync(stale)
    simulator.call(sim.faults.revoke_tokens)
    code, out, err = cli("systems")
    assert code == 3
    line = one_error_line(err)
    assert "enphase-battery auth login" in line
    assert_no_secrets(out + err, [sim.api_key, sim.client_secret, stale.refresh_token])


def test_refused_access_token_is_refreshed_and_saved(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, token_path: Path
) -> None:
    before = FileTokenStore(token_path).load()
    simulator.call(simulator.sim.expire_access_tokens)
    code, _, err = cli("systems")
    assert code == 0, err
    after = FileTokenStore(token_path).load()
    assert before is not None
    assert after is not None
    # The rotated refresh token reached the file: the next run can still refresh.
    assert after.refresh_token != before.refresh_token


def test_quota_spent_exits_4(cli: Run, env: dict[str, str], simulator: SimulatorThread) -> None:
    simulator.call(simulator.sim.faults.exhaust_monthly_quota)
    code, _, err = cli("systems")
    assert code == 4
    assert "quota" in one_error_line(err)


def test_usage_is_counted_between_runs(
    cli: Run, env: dict[str, str], config_dir: Path, sim: EnphaseSimulator
) -> None:
    assert cli("systems")[0] == 0
    assert cli("systems")[0] == 0
    usage = json.loads((config_dir / "usage.json").read_text())
    (entry,) = usage.values()
    assert entry["used"] == 2
    assert sim.api_key not in json.dumps(usage)


# -- stream ------------------------------------------------------------------------------------


def test_stream_interrupted_and_resumed_loses_and_repeats_nothing(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int, config_dir: Path
) -> None:
    out = tmp_path / "stream.jsonl"
    # From the first day of the simulator's history: earlier than the local midnight the
    # API would pick for a stream started without --since.
    since = "2026-05-30T06:00:00+00:00"
    args = ["stream", "--system", str(system_id), "--out", str(out)]
    code, stdout, err = cli(*args, "--since", since, "--max-intervals", "10")
    assert code == 0, err
    assert stdout == ""
    assert len(read_jsonl(out)) == 10
    assert (config_dir / f"stream-{system_id}.sqlite").exists()

    # The rerun need not repeat --since: streams the first run never reached still
    # start there.
    code, _, err = cli(*args, "--until-caught-up")
    assert code == 0, err
    assert "left this month" in err
    resumed = keys(read_jsonl(out))

    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", since, "--out", str(reference),
        "--checkpoint", str(tmp_path / "reference.sqlite"), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    uninterrupted = keys(read_jsonl(reference))

    assert len(resumed) == len(set(resumed))
    assert sorted(resumed) == sorted(uninterrupted)
    # Two streams (the system battery and its one Encharge) of about 42 hours each, minus
    # what the simulator's 15-minute reporting latency still hides.
    assert {source for source, _ in resumed} == {"battery", env_serial(resumed)}
    assert len(resumed) >= 2 * 160

    # Nothing new has arrived: a third run writes nothing.
    code, _, err = cli(*args, "--until-caught-up")
    assert code == 0, err
    assert keys(read_jsonl(out)) == resumed


def env_serial(records: list[tuple[str, str]]) -> str:
    return next(source for source, _ in records if source != "battery")


def test_stream_csv_to_stdout_then_appended_file(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    code, out, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--format", "csv",
        "--max-intervals", "3", "--checkpoint", str(tmp_path / "a.sqlite"),
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("system_id,source,end_at,charge_wh")
    assert len(lines) == 4

    target = tmp_path / "out.csv"
    for _ in range(2):
        code, _, err = cli(
            "stream", "--system", str(system_id), "--since", SINCE, "--format", "csv",
            "--max-intervals", "3", "--out", str(target), "--checkpoint",
            str(tmp_path / "b.sqlite"),
        )  # fmt: skip
        assert code == 0, err
    rows = target.read_text().splitlines()
    assert sum(row.startswith("system_id,") for row in rows) == 1
    assert len(rows) == 7
    assert len(set(rows)) == 7


def test_stream_stops_gracefully_on_sigint_and_resumes(
    env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    out = tmp_path / "live.jsonl"
    argv = [sys.executable, "-m", "enphase_battery", "stream", "--system", str(system_id),
            "--since", SINCE, "--out", str(out), "--poll-interval", "3600"]  # fmt: skip
    process = subprocess.Popen(
        argv, env=subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # Wait for the backfill to finish: the poller then sleeps until the next poll.
        deadline = time.monotonic() + 20
        assert process.stderr is not None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if line.startswith("live:") or not line:
                break
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    first = keys(read_jsonl(out))
    assert first

    code = main(["stream", "--system", str(system_id), "--since", SINCE, "--out", str(out),
                 "--until-caught-up"])  # fmt: skip
    assert code == 0
    after = keys(read_jsonl(out))
    assert after == first  # everything was delivered and checkpointed before the signal


def test_subprocess_help_and_a_command(env: dict[str, str], sim: EnphaseSimulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "enphase_battery", "--help"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "usage: enphase-battery" in result.stdout

    result = subprocess.run(
        [sys.executable, "-m", "enphase_battery", "systems", "--json"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert [s["system_id"] for s in json.loads(result.stdout)] == list(sim.system_ids)

    result = subprocess.run(
        [sys.executable, "-m", "enphase_battery", "devices"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_simulate_is_wired_in(cli: Run) -> None:
    code, out, _ = cli("simulate", "--help")
    assert code == 0
    assert "--speed" in out


def test_stream_on_the_watt_plan_follows_the_system_battery_only(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    code, out, err = cli(
        "stream", "--system", str(system_id), "--plan", "watt", "--since", SINCE,
        "--until-caught-up", "--checkpoint", str(tmp_path / "w.sqlite"),
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records
    assert {r["source"] for r in records} == {"battery"}
    assert "left this month" in err

    code, _, err = cli("stream", "--system", str(system_id), "--plan", "watt", "--no-battery")
    assert code == 2
    assert "Watt" in one_error_line(err)


def test_stream_goes_live_and_picks_up_new_intervals(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    out = tmp_path / "live.jsonl"
    args = ["stream", "--system", str(system_id), "--since", SINCE, "--out", str(out)]
    code, _, err = cli(*args, "--until-caught-up")
    assert code == 0, err
    backfill = keys(read_jsonl(out))
    newest = max(end_at for _, end_at in backfill)

    # While the next run waits between polls, an hour passes on the simulated gateway.
    timer = threading.Timer(0.5, simulator.call, (simulator.sim.clock.advance, timedelta(hours=1)))
    timer.start()
    try:
        code, _, err = cli(*args, "--poll-interval", "0.3", "--max-intervals", "4")
    finally:
        timer.join()
    assert code == 0, err
    live = keys(read_jsonl(out))[len(backfill) :]
    assert len(live) == 4
    assert all(end_at > newest for _, end_at in live)
    assert len(set(keys(read_jsonl(out)))) == len(backfill) + 4


# -- refused app credentials: which one, and where it came from (item 13) ------------------


def test_wrong_client_secret_names_it_and_its_source(
    cli: Run,
    env: dict[str, str],
    simulator: SimulatorThread,
    token_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulator.sim
    # An expired access token, so the CLI must ask the token endpoint.
    FileTokenStore(token_path).save_sync(
        OAuth2Token(
            access_token=sim.token.access_token,
            refresh_token=sim.token.refresh_token,
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    )
    monkeypatch.setenv("ENPHASE_CLIENT_SECRET", "not-the-secret")
    code, out, err = cli("systems")
    line = one_error_line(err)
    assert code == 2
    assert "client secret" in line
    assert "ENPHASE_CLIENT_SECRET" in line
    assert "auth login" not in line
    assert "sign in again" not in line.replace("signing in again cannot help", "")
    assert "not-the-secret" not in out + err
    assert sim.client_secret not in out + err


def test_wrong_api_key_from_the_flag_names_the_flag(
    cli: Run, env: dict[str, str], token_path: Path
) -> None:
    before = FileTokenStore(token_path).load()
    code, out, err = cli("systems", "--api-key", "WRONG-api-key-1234")
    line = one_error_line(err)
    assert code == 2
    assert "API key" in line
    assert "--api-key" in line
    assert "auth login" not in line
    assert "WRONG-api-key-1234" not in out + err
    # A refused API key is not a stale token: nothing was refreshed (or rotated).
    assert FileTokenStore(token_path).load() == before


# -- files named, Encharges named, fields sent (item 14) -------------------------------------


def test_missing_config_file_named_by_flag_or_env_is_an_error(
    cli: Run, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("--config", "/no/such/file.json", "systems")
    assert code == 2
    assert "/no/such/file.json" in one_error_line(err)
    monkeypatch.setenv("ENPHASE_CONFIG", "/no/such/either.json")
    code, _, err = cli("systems")
    assert code == 2
    assert "ENPHASE_CONFIG" in one_error_line(err)


def test_stream_of_an_unknown_encharge_is_an_error(
    cli: Run, env: dict[str, str], system_id: int, tmp_path: Path
) -> None:
    out_file = tmp_path / "out.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--encharge", "999", "--until-caught-up",
        "--since", "2026-05-31T12:00:00+00:00", "--out", str(out_file),
    )  # fmt: skip
    assert code == 2
    line = one_error_line(err)
    assert "999" in line
    assert "unknown Encharge" in line
    assert not out_file.exists() or out_file.read_text() == ""


def test_load_control_set_load_name_is_applied(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    code, out, err = cli("load-control", "show", "--system", str(system_id), "--json")
    assert code == 0, err
    # A circuit whose mode needs no soc_low with every change.
    name = next(
        c["name"]
        for c in json.loads(out)["load_control_data"]
        if c["mode"] != "Advanced_BatteryPowered"
    )
    code, out, err = cli(
        "load-control", "set", "--system", str(system_id), "--name", name,
        "--load-name", "Pool pump", "--json",
    )  # fmt: skip
    assert code == 0, err
    answer = json.loads(out)["answer"]
    circuit = next(c for c in answer["load_control_data"] if c["name"] == name)
    assert circuit["load_name"] == "Pool pump"
    code, out, err = cli("load-control", "show", "--system", str(system_id), "--json")
    assert code == 0, err
    circuit = next(c for c in json.loads(out)["load_control_data"] if c["name"] == name)
    assert circuit["load_name"] == "Pool pump"


def test_dead_server_on_the_watt_plan_fails_fast_with_one_line(
    cli: Run, env: dict[str, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    code, _, err = cli("--plan", "watt", "--base-url", f"http://127.0.0.1:{port}", "systems")
    assert time.monotonic() - started < 3.0
    assert code == 1
    line = one_error_line(err)
    assert "cannot reach the API" in line
    assert "connection refused" in line


def test_server_text_in_a_table_carries_no_escape_sequences(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    code, out, err = cli("load-control", "show", "--system", str(system_id), "--json")
    assert code == 0, err
    name = next(
        c["name"]
        for c in json.loads(out)["load_control_data"]
        if c["mode"] != "Advanced_BatteryPowered"
    )
    hostile = "\x1b]0;owned\x07\x1b[2JPool"
    code, _, err = cli(
        "load-control", "set", "--system", str(system_id), "--name", name,
        "--load-name", hostile, "--json",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli("load-control", "show", "--system", str(system_id))
    assert code == 0, err
    assert "Pool" in out
    assert "\x1b" not in out
    assert "\x07" not in out


def test_invalid_base_url_is_refused_at_once(cli: Run, env: dict[str, str]) -> None:
    started = time.monotonic()
    code, _, err = cli("--base-url", "notaurl", "systems")
    assert code == 2
    assert "notaurl" in one_error_line(err)
    assert time.monotonic() - started < 2.0


# -- trying it offline (item 15) --------------------------------------------------------------


def test_simulate_prints_exports_that_set_up_every_command(tmp_path: Path) -> None:
    token_file = tmp_path / "sim-token.json"
    home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    command = [sys.executable, "-m", "enphase_battery", "simulate", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--token-file", str(token_file)],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line or line.startswith("Press Ctrl-C"):
                break
            if match := re.match(r"\s*export (ENPHASE_\w+)=(\S+)$", line):
                exports[match[1]] = match[2].strip("'")
        assert set(exports) >= {
            "ENPHASE_BASE_URL",
            "ENPHASE_TOKEN_URL",
            "ENPHASE_AUTHORIZE_URL",
            "ENPHASE_PLAN",
            "ENPHASE_API_KEY",
            "ENPHASE_CLIENT_ID",
            "ENPHASE_CLIENT_SECRET",
            "ENPHASE_TOKEN_FILE",
        }
        base = exports["ENPHASE_BASE_URL"]
        assert exports["ENPHASE_AUTHORIZE_URL"].startswith(base)
        assert exports["ENPHASE_TOKEN_URL"].startswith(base)

        # Nothing but the pasted lines: every command finds the simulator.
        run_env = subprocess_env({**home, **exports})
        result = subprocess.run(
            [sys.executable, "-m", "enphase_battery", "systems", "--json"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)
        # And signing in goes to the simulator, not to the real Enphase site.
        result = subprocess.run(
            [sys.executable, "-m", "enphase_battery", "auth", "login"],
            env=run_env,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert exports["ENPHASE_AUTHORIZE_URL"] in result.stderr
        assert "api.enphaseenergy.com/oauth/authorize" not in result.stderr
    finally:
        server.terminate()
        server.communicate(timeout=30)
