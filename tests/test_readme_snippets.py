"""The README's Python snippets, read from README.md (never copied here), run as a newcomer
would run them: against ``enphase-battery simulate`` with the ``export`` lines it prints, or
against the embedded simulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enphase_battery import (
    DEFAULT_REDIRECT_URI,
    EnphaseClient,
    FileTokenStore,
    RateLimits,
    TokenManager,
)
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.runner import shell_exports

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_blocks(heading: str, language: str = "python") -> list[str]:
    """The fenced blocks of ``language`` in the README section under ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    level = heading.split(" ", 1)[0]
    # The section ends at the next heading of the same level or higher.
    following = re.compile(rf"^#{{1,{len(level)}}} ", flags=re.M)
    end_match = following.search(text, start + len(heading))
    section = text[start : end_match.start() if end_match else len(text)]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    assert blocks, f"no {language} block under {heading!r}"
    return blocks


def run_block(source: str) -> dict[str, Any]:
    """Execute a snippet that defines things (no top-level run) and return its names."""
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(source, str(README), "exec"), namespace)
    return namespace


def clean_env(values: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    env.update(values)
    env["PYTHONPATH"] = str(ROOT)
    return env


class Simulate:
    """``enphase-battery simulate`` in a subprocess, and the exports it printed."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        self.home = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "enphase_battery", "simulate", "--port", "0", *options],
            env=clean_env(self.home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.exports: dict[str, str] = {}
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line or line.startswith("Press Ctrl-C"):
                break
            if line.strip().startswith("export "):
                name, _, value = shlex.split(line)[1].partition("=")
                self.exports[name] = value
        assert "ENPHASE_BASE_URL" in self.exports, self.process.stderr

    def env(self) -> dict[str, str]:
        """The environment of a shell the export lines were pasted into."""
        return clean_env({**self.home, **self.exports})

    def close(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)


@pytest.fixture
def simulate(tmp_path: Path) -> Iterator[Callable[..., Simulate]]:
    started: list[Simulate] = []

    def start(*options: str) -> Simulate:
        server = Simulate(tmp_path, *options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_quick_start_runs_on_the_free_plan_with_what_simulate_prints(
    tmp_path: Path, simulate: Callable[..., Simulate]
) -> None:
    (command,) = readme_blocks("## Quick start", "sh")
    words = shlex.split(command.strip())
    assert words[:2] == ["enphase-battery", "simulate"]
    assert words[words.index("--plan") + 1] == "watt"  # the Quick Start is on the free plan
    options = words[2:]
    options[options.index("--token-file") + 1] = str(tmp_path / "sim-token.json")
    server = simulate(*options, "--systems", "1")
    assert server.exports["ENPHASE_PLAN"] == "watt"

    quick_start = readme_blocks("## Quick start")[0]
    assert "from_env" in quick_start
    program = tmp_path / "quick_start.py"
    program.write_text(quick_start, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(program)],
        env=server.env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    system_id = server.exports["ENPHASE_SYSTEM_ID"]
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{system_id} ")
    assert re.search(r"SoC \d+ %, charged \d+ Wh, discharged \d+ Wh today$", line), line
    # Nothing secret on the way out.
    for name in ("ENPHASE_API_KEY", "ENPHASE_CLIENT_SECRET"):
        assert server.exports[name] not in done.stdout + done.stderr


def test_the_own_client_snippet_builds_a_client(tmp_path: Path) -> None:
    source = readme_blocks("## Quick start")[1]
    token_file = tmp_path / "token.json"
    names = run_block(source.replace("/var/lib/mysvc/enphase-token.json", str(token_file)))
    client = names["make_client"]("key", "client-id", "secret")
    assert isinstance(client, EnphaseClient)
    assert client.rate_limits == RateLimits.KILOWATT


def test_fleet_snippet_delivers_every_system(
    tmp_path: Path, simulate: Callable[..., Simulate]
) -> None:
    (source,) = readme_blocks("## A fleet: many systems, one plan")
    server = simulate("--plan", "partner", "--systems", "3", "--encharges", "1",
                      "--token-file", str(tmp_path / "sim-token.json"))  # fmt: skip
    program = tmp_path / "fleet.py"
    program.write_text(source, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-u", str(program)],
        env=server.env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wanted = {(system_id, "battery") for system_id in _system_ids(server)}
    seen: set[tuple[str, str]] = set()
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not wanted <= seen and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            system_id, source_name, end_at, *values = line.split()
            assert datetime.fromisoformat(end_at).tzinfo is not None
            assert len(values) == 3
            seen.add((system_id, source_name))
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert wanted <= seen, err
    assert (tmp_path / "fleet.sqlite").exists()  # the checkpoint a second run resumes from


def _system_ids(server: Simulate) -> list[str]:
    env = server.env()
    done = subprocess.run(
        [sys.executable, "-m", "enphase_battery", "systems", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return re.findall(r'"system_id": (\d+)', done.stdout)


async def test_service_recipe_waits_for_a_new_sign_in_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (source,) = readme_blocks("### A long-running asyncio service")
    run_service = run_block(source)["run_service"]
    async with EnphaseSimulator(seed=2, systems=1, encharges=1, plan="partner") as sim:
        token_file = tmp_path / "token.json"
        FileTokenStore(token_file).save_sync(sim.token)
        for name in list(os.environ):
            if name.startswith("ENPHASE_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        for line in shell_exports(sim, token_file):
            name, _, value = shlex.split(line)[1].partition("=")
            monkeypatch.setenv(name, value)
        calls: list[int] = []

        async def serve(client: EnphaseClient) -> None:
            calls.append(len(await client.list_systems()))
            if len(calls) == 1:
                sim.faults.revoke_tokens()  # the sign-in lapses while the service runs
                await client.list_systems()

        async def owner_signs_in_again() -> None:
            while "auth login" not in caplog.text:
                await asyncio.sleep(0.01)
            code = sim.oauth.authorize(sim.client_id, DEFAULT_REDIRECT_URI)
            manager = TokenManager(
                client_id=sim.client_id,
                client_secret=sim.client_secret,
                token_url=sim.token_url,
                store=FileTokenStore(token_file),
            )
            await manager.exchange_code(code, DEFAULT_REDIRECT_URI)
            await manager.close()

        with caplog.at_level(logging.INFO, logger="mysvc"):
            await asyncio.wait_for(
                asyncio.gather(run_service(serve, recheck_s=0.02), owner_signs_in_again()),
                timeout=30,
            )
        assert calls == [1, 1]  # served, lost the sign-in, waited, served again
        assert "enphase-battery auth login" in caplog.text
        assert "signed in again" in caplog.text
        for secret in (sim.api_key, sim.client_secret, sim.token.refresh_token):
            assert secret not in caplog.text


async def test_reconcile_snippet_prints_what_it_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (source,) = readme_blocks("### Checking for holes")
    check_holes = run_block(source)["check_holes"]
    async with EnphaseSimulator(
        seed=4, systems=1, encharges=1, start=datetime.now(UTC), history=timedelta(days=9)
    ) as sim:
        system_id = sim.system_ids[0]
        # An Encharge installed an hour ago: the meters' sum of the days before it are
        # taken at another time than its own reading, so those days cannot be checked.
        serial = sim.add_encharge(system_id)
        sim.clock.advance(timedelta(hours=1))
        async with sim.make_client(rate_limits=RateLimits(100_000)) as client:
            assert await check_holes(client, system_id, per_encharge=False)
            assert await check_holes(client, system_id)
    out = capsys.readouterr().out
    assert "not checked: a reading is missing a battery or the read times differ" in out
    assert serial not in out  # per Encharge, its short history is checked as it is
    assert re.search(r"\d+ spans checked, 0 with problems, [1-9]\d* not checked, \d+ requests", out)
    assert re.search(r"\d+ spans checked, 0 with problems, 0 not checked, \d+ requests", out)


# -- PostgreSQL (the server `make test` starts, or ENPHASE_TEST_POSTGRES_DSN) ------------------


def point_environment_at(
    sim: EnphaseSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shell of a newcomer who pasted what ``enphase-battery simulate`` printed."""
    token_file = tmp_path / "sim-token.json"
    FileTokenStore(token_file).save_sync(sim.token)
    for name in list(os.environ):
        if name.startswith("ENPHASE_") and name != "ENPHASE_TEST_POSTGRES_DSN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for line in shell_exports(sim, token_file):
        name, _, value = shlex.split(line)[1].partition("=")
        monkeypatch.setenv(name, value)


def import_snippet(tmp_path: Path, name: str, source: str) -> Any:
    """``source`` saved as ``<name>.py`` and imported, as a user's module would be."""
    import importlib

    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    sys.modules.pop(name, None)
    return importlib.import_module(name)


async def rows_by_stream(dsn: str, schema: str) -> dict[tuple[int, str], int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f'"{schema}".battery_interval'
        )
        if not exists:
            return {}
        rows = await conn.fetch(
            f'SELECT system_id, source, count(*) AS n FROM "{schema}".battery_interval'
            " GROUP BY system_id, source"
        )
    finally:
        await conn.close()
    return {(row["system_id"], row["source"]): row["n"] for row in rows}


async def run_until(program: Any, done: Callable[[], Any], timeout_s: float = 60.0) -> None:
    """Run ``program`` (a coroutine that runs forever) until ``await done()`` is true."""
    task = asyncio.create_task(program)
    try:
        deadline = time.monotonic() + timeout_s
        while not await done():
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "the program delivered too little in time"
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def in_schema(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema`` (asyncpg passes it to the server)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


async def test_postgres_one_worker_program_writes_the_table_and_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, pg_schema: str
) -> None:
    import asyncpg

    blocks = readme_blocks("## PostgreSQL: several workers, one plan")
    monkeypatch.syspath_prepend(str(tmp_path))
    one_worker = import_snippet(tmp_path, "one_worker", blocks[0])
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    await conn.close()
    async with EnphaseSimulator(
        seed=6, systems=1, encharges=1, plan="partner", history=timedelta(days=2)
    ) as sim:
        point_environment_at(sim, tmp_path, monkeypatch)
        system_id = sim.system_ids[0]
        serial = sim.encharge_serials(system_id)[0]
        dsn = in_schema(postgres_dsn, pg_schema)

        async def both_streams_in() -> bool:
            rows = await rows_by_stream(postgres_dsn, pg_schema)
            return rows.get((system_id, "battery"), 0) > 0 and rows.get((system_id, serial), 0) > 0

        await run_until(one_worker.main(dsn, schema=pg_schema), both_streams_in)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        saved = await conn.fetchval(f'SELECT count(*) FROM "{pg_schema}".stream_checkpoint')
    finally:
        await conn.close()
    assert saved >= 2  # the checkpoint of each stream, committed with its rows


async def test_postgres_leased_fleet_worker_follows_every_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, pg_schema: str
) -> None:
    import asyncpg

    blocks = readme_blocks("## PostgreSQL: several workers, one plan")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_snippet(tmp_path, "one_worker", blocks[0])
    (fleet_block,) = [block for block in blocks if "LeasedFleet(" in block]
    workers = import_snippet(tmp_path, "workers", fleet_block)
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    await conn.close()
    async with EnphaseSimulator(
        seed=8, systems=3, encharges=1, plan="partner", history=timedelta(days=1)
    ) as sim:
        point_environment_at(sim, tmp_path, monkeypatch)
        wanted = {(system_id, "battery") for system_id in sim.system_ids}

        async def every_system_in() -> bool:
            return wanted <= set(await rows_by_stream(postgres_dsn, pg_schema))

        await run_until(workers.worker(in_schema(postgres_dsn, pg_schema), schema=pg_schema),
                        every_system_in)  # fmt: skip
    conn = await asyncpg.connect(postgres_dsn)
    try:
        used = await conn.fetchval(f'SELECT count(*) FROM "{pg_schema}".governor_state')
    finally:
        await conn.close()
    assert used == 1  # the quota's row for the key: every worker counts in it


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's admin lines use curl")
def test_the_simulators_admin_lines_work_as_written(simulate: Callable[..., Simulate]) -> None:
    (block,) = [
        b for b in readme_blocks("### Trying it offline: the simulator", "sh") if "__admin" in b
    ]
    server = simulate()  # the defaults: the example system id is the first one of seed 0
    base = server.exports["ENPHASE_BASE_URL"]
    lines = [line for line in block.splitlines() if line.startswith("curl ")]
    assert len(lines) == 5
    states: dict[str, Any] = {}
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line], env={**os.environ, "BASE": base},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        state = json.loads(done.stdout)
        assert "error" not in state, (line, state)
        states[re.findall(r"/__admin/(\w+)", line)[0]] = state
    assert states["clock"]["now"] == pytest.approx(states["state"]["now"] + 900, abs=60)
    assert any(system["off_grid"] for system in states["system"]["systems"].values())
    assert states["faults"]["faults_pending"][0]["status"] == 503
    assert "connections" in states["live"]


def test_every_simulate_command_in_the_readme_parses() -> None:
    from enphase_battery.simulator.cli import build_parser

    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = re.findall(r"enphase-battery simulate([^`\n#]*)", text)
    assert len(commands) >= 4
    parser = build_parser()
    for options in commands:
        args = parser.parse_args(shlex.split(options))
        assert args.systems >= 1
