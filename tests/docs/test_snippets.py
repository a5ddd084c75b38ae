"""Every Python block of the documentation (docs/**/*.md and README.md), read from the
Markdown (never copied here) and run as a newcomer would run it: against
``enphase-battery simulate`` with the ``export`` lines it prints, or against the embedded
simulator over loopback HTTP, or against the test PostgreSQL server.

Each ``python`` block is preceded by a mark the test reads:

- ``<!-- snippet: NAME -->``: a runnable block; ``NAME`` picks its runner below (several
  blocks may share one, e.g. the quick start of the README and of Getting started);
- ``<!-- fragment: WHY -->``: a piece of a larger program (names it does not define), only
  compiled; the test counts them, so a new fragment is a change to ``FRAGMENTS`` here.

A block without a mark, a mark without a runner, or a runner without a block fails the test.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enphase_battery import EnphaseClient, FileTokenStore, RateLimits, TokenManager
from enphase_battery.auth import DEFAULT_REDIRECT_URI
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.runner import shell_exports

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: The blocks marked ``<!-- fragment: ... -->``: compiled, not run (see the module docstring).
FRAGMENTS = 2

#: Requests as fast as the simulator answers them, no monthly cap.
FAST = RateLimits(1000, 1.0)

MARK = re.compile(r"<!--\s*(snippet|fragment):\s*(.*?)\s*-->")
FENCE = re.compile(r"^([ \t]*)```(\w*)[^\n]*\n(.*?)^\1```[ \t]*$", flags=re.S | re.M)


def pages() -> list[Path]:
    """README.md and every page of the site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    """A fenced block of a page: its language, where it starts and the mark before it."""

    path: Path
    line: int
    language: str
    source: str
    kind: str | None  # "snippet", "fragment" or None (no mark)
    name: str  # the snippet's runner, or the fragment's reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order, each with the mark on the line before it."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent, language, body = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n ").rsplit("\n", 1)[-1]
        mark = MARK.fullmatch(before.strip())
        source = "".join(
            row[len(indent) :] if row.startswith(indent) else row
            for row in body.splitlines(keepends=True)
        )
        kind, name = (mark[1], mark[2]) if mark else (None, "")
        found.append(Block(path, line, language, source, kind, name))
    return found


def python_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks(path) if block.language == "python"]


def snippets(name: str) -> list[Block]:
    """Every block marked ``<!-- snippet: name -->``."""
    found = [b for b in python_blocks() if b.kind == "snippet" and b.name == name]
    assert found, f"no block marked <!-- snippet: {name} -->"
    return found


def sh_block_before(block: Block) -> str:
    """The ``sh`` block that comes last before ``block`` on its page."""
    before = [b for b in blocks(block.path) if b.language == "sh" and b.line < block.line]
    assert before, f"no sh block before {block.where}"
    return before[-1].source


def run_block(block: Block) -> dict[str, Any]:
    """Execute a snippet that defines things (no top-level run) and return its names."""
    namespace: dict[str, Any] = {"__name__": "doc_snippet"}
    exec(compile(block.source, block.where, "exec"), namespace)
    return namespace


#: The snippet names a runner (a test below) takes, filled in by ``runs``.
RUNNERS: set[str] = set()


def runs(name: str) -> pytest.MarkDecorator:
    """Parametrize a test with every block marked ``<!-- snippet: name -->``."""
    RUNNERS.add(name)
    found = [b for b in python_blocks() if b.kind == "snippet" and b.name == name]
    return pytest.mark.parametrize("block", found, ids=[b.where for b in found])


def test_every_python_block_is_marked_and_every_mark_has_a_runner() -> None:
    every = python_blocks()
    text = "".join(path.read_text(encoding="utf-8") for path in pages())
    assert len(every) == len(re.findall(r"^[ \t]*```python\b", text, flags=re.M))
    assert len(every) >= 15
    unmarked = [b.where for b in every if b.kind is None]
    assert not unmarked, f"mark these <!-- snippet: NAME --> or <!-- fragment: WHY -->: {unmarked}"
    marked = {b.name for b in every if b.kind == "snippet"}
    assert marked - RUNNERS == set(), "snippets no test runs"
    assert RUNNERS - marked == set(), "runners whose snippet is gone"
    fragments = [b for b in every if b.kind == "fragment"]
    assert len(fragments) == FRAGMENTS, [f"{b.where}: {b.name}" for b in fragments]
    for fragment in fragments:  # not run, but it must at least be Python
        compile(fragment.source, fragment.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    # The README's quick start is the one of Getting started, word for word.
    quick_starts = snippets("quick-start")
    assert {b.path for b in quick_starts} == {README, DOCS / "getting-started.md"}
    assert len({b.source for b in quick_starts}) == 1


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


@pytest.mark.slow
@runs("quick-start")
def test_quick_start_runs_on_the_free_plan_with_what_simulate_prints(
    block: Block, tmp_path: Path, simulate: Callable[..., Simulate]
) -> None:
    command = sh_block_before(block)
    words = shlex.split(command.strip())
    assert words[:2] == ["enphase-battery", "simulate"]
    assert words[words.index("--plan") + 1] == "watt"  # the Quick Start is on the free plan
    options = words[2:]
    options[options.index("--token-file") + 1] = str(tmp_path / "sim-token.json")
    server = simulate(*options, "--systems", "1")
    assert server.exports["ENPHASE_PLAN"] == "watt"

    quick_start = block.source
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


@runs("own-client")
def test_the_own_client_snippet_builds_a_client(block: Block, tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    source = block.source.replace("/var/lib/mysvc/enphase-token.json", str(token_file))
    names = run_block(Block(block.path, block.line, "python", source, "snippet", block.name))
    client = names["make_client"]("key", "client-id", "secret")
    assert isinstance(client, EnphaseClient)
    assert client.rate_limits == RateLimits.KILOWATT


@runs("fleet")
def test_fleet_snippet_delivers_every_system(
    block: Block, tmp_path: Path, simulate: Callable[..., Simulate]
) -> None:
    server = simulate("--plan", "partner", "--systems", "3", "--encharges", "1",
                      "--token-file", str(tmp_path / "sim-token.json"))  # fmt: skip
    program = tmp_path / "fleet.py"
    program.write_text(block.source, encoding="utf-8")
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


@runs("service")
async def test_service_recipe_waits_for_a_new_sign_in_and_resumes(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_service = run_block(block)["run_service"]
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


@runs("holes")
async def test_reconcile_snippet_prints_what_it_skipped(
    block: Block, capsys: pytest.CaptureFixture[str]
) -> None:
    check_holes = run_block(block)["check_holes"]
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


@runs("pg-one-worker")
async def test_postgres_one_worker_program_writes_the_table_and_the_checkpoint(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    import asyncpg

    monkeypatch.syspath_prepend(str(tmp_path))
    one_worker = import_snippet(tmp_path, "one_worker", block.source)
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


@runs("pg-leased-fleet")
async def test_postgres_leased_fleet_worker_follows_every_system(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    import asyncpg

    monkeypatch.syspath_prepend(str(tmp_path))
    # "from one_worker import ...": the program of the same page, saved as one_worker.py.
    (one_worker,) = [b for b in snippets("pg-one-worker") if b.path == block.path]
    import_snippet(tmp_path, "one_worker", one_worker.source)
    workers = import_snippet(tmp_path, "workers", block.source)
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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the admin lines use curl")
def test_the_simulators_admin_lines_work_as_written(simulate: Callable[..., Simulate]) -> None:
    (block,) = [
        b.source
        for b in blocks(DOCS / "reference" / "simulator.md")
        if b.language == "sh" and "__admin" in b.source
    ]
    server = simulate()  # the defaults: the example system id is the first one of seed 0
    base = server.exports["ENPHASE_BASE_URL"]
    lines = [line for line in block.splitlines() if line.startswith("curl ")]
    assert len(lines) == 6
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
    assert states["writes"]["writes"]["delay_s"] == 5
    assert states["writes"]["writes"]["next"] == ["refuse", "revert"]


def test_every_simulate_command_of_the_docs_parses() -> None:
    from enphase_battery.simulator.cli import build_parser

    text = "".join(p.read_text(encoding="utf-8") for p in pages()).replace("\\\n", " ")
    commands = re.findall(r"enphase-battery simulate([^`\n#]*)", text)
    assert len(commands) >= 4
    parser = build_parser()
    for options in commands:
        args = parser.parse_args(shlex.split(options))
        assert args.systems >= 1


# -- The recipes on the embedded simulator ------------------------------------------------------


@runs("pytest-fixture")
def test_the_simulator_fixture_runs_under_strict_mode(block: Block, tmp_path: Path) -> None:
    snippet = tmp_path / "test_doc_snippet.py"
    snippet.write_text(block.source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "asyncio_mode=strict",
         "-q", str(snippet)],
        cwd=tmp_path, env=clean_env({}), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@runs("chat-bot")
async def test_the_chat_bot_command_answers_each_command(block: Block) -> None:
    handle = run_block(block)["handle"]
    async with EnphaseSimulator(seed=3, systems=1, encharges=1, plan="partner") as sim:
        system_id = sim.system_ids[0]
        async with sim.make_client(rate_limits=FAST) as client:
            assert re.fullmatch(r"Grid: \w[\w -]*", await handle(client, system_id, "grid"))
            assert await handle(client, system_id, "storm on") == "Storm Guard is on"
            assert await handle(client, system_id, "storm off") == "Storm Guard is off"
            assert (await handle(client, system_id, "hello")).startswith("try: ")
            not_mine = await handle(client, system_id + 1, "grid")  # 404: another EnphaseError
            assert not_mine.startswith("Enphase said: ")
    watt = EnphaseSimulator(seed=3, systems=1, plan="watt", enforce_plan_access=True)
    async with watt as sim, sim.make_client(rate_limits=FAST) as client:
        refused = await handle(client, sim.system_ids[0], "storm on")
    assert refused.startswith("Your API plan (Megawatt or Partner needed)")


@runs("battery-reply")
async def test_the_battery_reply_describes_the_battery_now(block: Block) -> None:
    battery_reply = run_block(block)["battery_reply"]
    async with EnphaseSimulator(seed=3, systems=1, encharges=2, plan="partner") as sim:
        system_id = sim.system_ids[0]
        async with sim.make_client(rate_limits=FAST) as client:
            reply = await battery_reply(client, system_id)
            failed = await battery_reply(client, system_id + 1)
    # The shape the recipe's comment shows: two requests, no profile, no grid state.
    assert re.fullmatch(
        r"SoC \d+ % \| (idle|charging|discharging) \d+ W \| mode \? \| grid \? \|"
        r" as of .+ \(latest\)",
        reply,
    ), reply
    assert failed.startswith("Enphase said: ")


@runs("live-dashboard")
async def test_the_live_dashboard_shows_live_frames(block: Block) -> None:
    dashboard = run_block(block)["dashboard"]
    shown: list[tuple[Any, ...]] = []
    fast_live = EnphaseSimulator(
        seed=3, systems=1, encharges=1, plan="partner",
        live_frame_period_s=0.02, live_duration_scale=0.005,
    )  # fmt: skip

    async def five_frames() -> bool:
        return len(shown) >= 5

    async with fast_live as sim, sim.make_client(rate_limits=FAST) as client:
        await run_until(
            dashboard(client, sim.system_ids[0], lambda *row: shown.append(row)), five_frames
        )
    sources = {str(row[0]) for row in shown}
    assert sources == {"live"}, shown
    assert all(0 <= row[1] <= 100 for row in shown)  # battery_soc, %


@runs("confirmed-write")
async def test_the_confirmed_write_recipe_reports_each_outcome(block: Block) -> None:
    allow_grid_charging = run_block(block)["allow_grid_charging"]
    # settle_s outlasts the revert below by a second: the revert is seen, whatever the load.
    fast = {"timeout_s": 3.0, "interval_s": 0.05, "settle_s": 1.5}
    slow_gateway = EnphaseSimulator(seed=3, systems=2, encharges=[1, 0], write_delay_s=0.2)
    async with slow_gateway as sim, sim.make_client(rate_limits=FAST) as client:
        system_id, pv_only = sim.system_ids
        assert (await allow_grid_charging(client, system_id, True, **fast)).startswith("applied")
        assert (await client.get_battery_mode(system_id)).cfg_allowed is True
        sim.writes.refuse_next()
        pending = await allow_grid_charging(client, system_id, False, **fast)
        assert pending == "accepted, not applied yet: look again later"
        sim.writes.revert_next()
        sim.writes.revert_after_s = 0.4
        overridden = await allow_grid_charging(client, system_id, False, **fast)
        assert overridden.startswith("overridden: the gateway now shows")
        assert "cfg_allowed=True" in overridden
        no_battery = await allow_grid_charging(client, pv_only, True, **fast)
        assert no_battery == "this site has no battery (PV only)"
    megawatt = EnphaseSimulator(seed=3, systems=1, plan="megawatt", enforce_plan_access=True)
    async with megawatt as sim, sim.make_client(rate_limits=FAST) as client:
        refused = await allow_grid_charging(client, sim.system_ids[0], True, **fast)
    assert refused.startswith("battery_mode needs the Partner plan")


def table_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    """``query`` on the SQLite file ``path`` (an empty list while the table is not there)."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute(query).fetchall()
    except sqlite3.OperationalError:  # no such table yet, or the writer holds the lock
        return []
    finally:
        db.close()


@runs("sqlite")
async def test_the_sqlite_recipe_writes_rows_and_checkpoint_in_one_file(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = run_block(block)["record"]
    monkeypatch.chdir(tmp_path)  # the recipe writes battery.sqlite where it runs
    database = tmp_path / "battery.sqlite"
    async with EnphaseSimulator(
        seed=5, systems=1, encharges=1, plan="partner", history=timedelta(days=2)
    ) as sim:
        system_id = sim.system_ids[0]
        serial = sim.encharge_serials(system_id)[0]
        query = "SELECT source, count(*) FROM interval GROUP BY source"

        async def both_streams_in() -> bool:
            counts = dict(table_rows(database, query))
            return counts.get("battery", 0) > 0 and counts.get(serial, 0) > 0

        async with sim.make_client(rate_limits=FAST) as client:
            await run_until(record(client, system_id), both_streams_in)
    # The poller's checkpoint went into the same file, with the rows.
    tables = {name for (name,) in table_rows(database, "SELECT name FROM sqlite_master")}
    assert "interval" in tables
    assert len(tables) > 1, tables


@runs("hourly")
async def test_the_hourly_recipe_writes_hours_and_its_state(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from enphase_battery import HourlyEnergy

    hourly = run_block(block)["hourly"]
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "battery.sqlite"
    async with EnphaseSimulator(
        seed=5, systems=1, encharges=1, plan="partner", history=timedelta(days=1)
    ) as sim:
        system_id = sim.system_ids[0]

        async def some_hours_in() -> bool:  # the poller starts at the system's current day
            rows = table_rows(database, "SELECT count(*) FROM hourly WHERE source = 'battery'")
            return bool(rows) and rows[0][0] >= 3

        async with sim.make_client(rate_limits=FAST) as client:
            await run_until(hourly(client, system_id), some_hours_in)
    ((state,),) = table_rows(database, "SELECT state FROM hourly_state")
    assert HourlyEnergy.from_json(state).to_json() == state  # the saved state reloads
    sums = table_rows(database, "SELECT charge_wh, charge_sum_wh FROM hourly"
                                " WHERE source = 'battery' ORDER BY start")  # fmt: skip
    running = 0
    for charge_wh, charge_sum_wh in sums:  # each row's sum is the sum of the hours so far
        running += charge_wh
        assert charge_sum_wh == running


@pytest.mark.slow
def test_the_readmes_cli_lines_run_against_the_simulator(
    tmp_path: Path, simulate: Callable[..., Simulate]
) -> None:
    (block,) = [
        b for b in blocks(README) if b.language == "sh" and b.source.startswith("enphase-battery ")
        and "simulate" not in b.source
    ]  # fmt: skip
    server = simulate("--plan", "watt", "--systems", "1", "--token-file",
                      str(tmp_path / "sim-token.json"))  # fmt: skip
    lines = [line.split("#")[0].strip() for line in block.source.splitlines() if line.strip()]
    assert len(lines) == 3
    for line in lines:
        done = subprocess.run(
            [sys.executable, "-m", "enphase_battery", *shlex.split(line)[1:]],
            env=server.env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (line, done.stderr)
    assert (tmp_path / "battery.jsonl").read_text(encoding="utf-8").count("\n") > 0


def test_every_cli_line_of_the_docs_parses() -> None:
    """The hand-written command lines (the CLI reference's overview, the recipes) are
    commands the parser accepts; ``[...]`` marks an optional part, ``#`` a comment."""
    from enphase_battery.cli import build_parser

    parser = build_parser()
    lines = [
        line.split(" #")[0].strip()
        for path in pages()
        for block in blocks(path)
        if block.language == "sh"
        for line in block.source.replace("\\\n", " ").splitlines()
        if line.startswith("enphase-battery ")
    ]
    assert len(lines) >= 25
    for line in lines:
        words = shlex.split(re.sub(r"\[[^\]]*\]", "", line))[1:]
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"enphase-battery does not accept: {line}")


def test_the_cli_reference_holds_every_commands_help() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs_hooks
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert docs_hooks.MARKER in page
    rendered = docs_hooks.on_page_markdown(page)
    for command in ("stream", "auth login", "settings set", "load-control set", "simulate"):
        assert f"### `enphase-battery {command}`" in rendered
    assert "usage: enphase-battery stream" in rendered
