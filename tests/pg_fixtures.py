"""PostgreSQL fixtures: the server `make test` provides (scripts/with-postgres.sh) or the one
the user names in ENPHASE_TEST_POSTGRES_DSN; each test gets a schema of its own.

Without a server the PostgreSQL tests are skipped, except under CI=true, where they fail:
CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

DSN_VARIABLE = "ENPHASE_TEST_POSTGRES_DSN"
CTL_VARIABLE = "ENPHASE_TEST_POSTGRES_CTL"


def _no_server(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI the PostgreSQL tests must run", pytrace=False)
    pytest.skip(f"{reason} (run `make test`, or set {DSN_VARIABLE})")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        _no_server(f"no PostgreSQL server: {DSN_VARIABLE} is not set")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _no_server("the asyncpg driver is not installed (the dev extra has it)")
    assert dsn is not None
    return dsn


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


@pytest.fixture
def restart_postgres() -> Callable[[], None]:
    """Restart the throwaway server (only the one scripts/with-postgres.sh started)."""
    ctl = os.environ.get(CTL_VARIABLE)
    if not ctl:
        # Never a user's own server, not even under CI.
        pytest.skip(f"restarting needs the throwaway server of `make test` ({CTL_VARIABLE})")

    def restart() -> None:
        subprocess.run(
            [*shlex.split(ctl), "-m", "fast", "-w", "-t", "60", "restart"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    return restart
