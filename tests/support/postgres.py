"""PostgreSQL fixtures: the server `make test` provides (scripts/with-postgres.sh) or the one
the user names in ENPHASE_TEST_POSTGRES_DSN.

Each pytest process (each xdist worker, or the one process of a serial run) gets a database
of its own on that server, created at its first PostgreSQL test and dropped at its end, so
workers running at once never meet (not even in the default ``enphase`` schema); within it,
each test gets a schema of its own. The DSN's role needs CREATEDB (the throwaway server's
superuser has it).

The tests that restart PostgreSQL get a throwaway server of their own (``private_postgres``),
never the shared one: a restart would cut every other worker's connections.

Without a server the PostgreSQL tests are skipped, except under CI=true, where they fail:
CI must never pass by skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import attrs
import pytest

DSN_VARIABLE = "ENPHASE_TEST_POSTGRES_DSN"
CTL_VARIABLE = "ENPHASE_TEST_POSTGRES_CTL"
WITH_POSTGRES = Path(__file__).resolve().parents[2] / "scripts" / "with-postgres.sh"


def _no_server(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI the PostgreSQL tests must run", pytrace=False)
    pytest.skip(f"{reason} (run `make test`, or set {DSN_VARIABLE})")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a ``postgresql://`` URL, as asyncpg takes it) naming ``database`` instead."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def _create_database(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of this pytest process's own database on the test server."""
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        _no_server(f"no PostgreSQL server: {DSN_VARIABLE} is not set")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _no_server("the asyncpg driver is not installed (the dev extra has it)")
    assert dsn is not None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"enphase_test_{worker}_{uuid.uuid4().hex[:8]}"
    # An event loop of its own, in a thread of its own: a session fixture outlives every
    # test's loop, and may be first asked for from inside one (getfixturevalue).
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _create_database(dsn, name)).result()
    yield with_database(dsn, name)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _drop_database(dsn, name)).result()


@pytest.fixture
async def pg_schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    import asyncpg

    name = f"enphase_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@attrs.frozen
class PrivateServer:
    """A throwaway PostgreSQL server of one test's own: ``dsn``, and ``restart()``."""

    dsn: str
    ctl: str

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server comes back."""
        subprocess.run(
            [*shlex.split(self.ctl), "-m", "fast", "-w", "-t", "60", "restart"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


#: Run by scripts/with-postgres.sh: says the new server's DSN and pg_ctl command, then holds
#: it until its standard input closes (the script then stops the server and removes it).
_HOLD = (
    "import os, sys\n"
    "print(os.environ.get('ENPHASE_TEST_POSTGRES_DSN', ''))\n"
    "print(os.environ.get('ENPHASE_TEST_POSTGRES_CTL', ''), flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A server of this test's own, to restart (only under `make test`'s throwaway server:
    a user's own installation is never used to start another)."""
    if not os.environ.get(CTL_VARIABLE):
        # Never a user's own server, not even under CI.
        pytest.skip(f"restarting needs the throwaway server of `make test` ({CTL_VARIABLE})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_TEST_POSTGRES_")}
    holder = subprocess.Popen(
        [str(WITH_POSTGRES), sys.executable, "-c", _HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        dsn = holder.stdout.readline().strip()
        ctl = holder.stdout.readline().strip()
        if not dsn or not ctl:
            pytest.fail("scripts/with-postgres.sh started no server of the test's own")
        yield PrivateServer(dsn, ctl)
    finally:
        holder.stdin.close()
        holder.wait(timeout=120)
