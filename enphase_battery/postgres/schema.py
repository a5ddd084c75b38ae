"""The tables and functions of the PostgreSQL stores, created on first use and versioned.

Everything lives in one schema (``enphase`` unless the caller names another), so two
fleets, or a test run, can share a database without sharing state.  A ``schema_version``
row says which version of the layout is there; :func:`ensure_schema` creates it or
upgrades it step by step, under a transaction-level advisory lock so that many workers
starting at once do it exactly once.  A layout newer than this SDK knows is refused
rather than guessed at.
"""

from __future__ import annotations

from enphase_battery.exceptions import EnphaseError
from enphase_battery.postgres._db import Connection, quote_ident

__all__ = ["SCHEMA_VERSION", "SchemaVersionError", "ensure_schema"]

#: The layout this SDK writes.
SCHEMA_VERSION = 2


class SchemaVersionError(EnphaseError):
    """The database holds a newer layout than this SDK understands: upgrade the SDK."""


def _version_1(s: str) -> list[str]:
    return [
        f"CREATE TABLE {s}.schema_version ("
        " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
        " version integer NOT NULL)",
        # One row per stream ("{system_id}/{source}").  ``revision`` grows with every
        # save: a save names the revision it read, so two writers of one stream cannot
        # both commit the same step, and a commit whose acknowledgement was lost is
        # recognised instead of applied twice.
        f"CREATE TABLE {s}.stream_checkpoint ("
        " stream text PRIMARY KEY,"
        " watermark bigint NOT NULL,"
        " delivered bigint[] NOT NULL DEFAULT '{}',"
        " revision bigint NOT NULL DEFAULT 1,"
        " updated_at timestamptz NOT NULL DEFAULT now())",
        # One row per followed system.  ``token`` (the fencing token) grows at every
        # takeover; a write names the token it holds, so a worker that lost its lease
        # while paused cannot write afterwards.
        f"CREATE TABLE {s}.lease ("
        " system_id bigint PRIMARY KEY,"
        " owner text,"
        " token bigint NOT NULL DEFAULT 0,"
        " expires_at timestamptz NOT NULL DEFAULT '-infinity',"
        " acquired_at timestamptz)",
        f"CREATE INDEX lease_owner ON {s}.lease (owner)",
        # The live workers, so that each one can take its fair share of the systems.
        f"CREATE TABLE {s}.worker ("
        " worker_id text PRIMARY KEY,"
        " expires_at timestamptz NOT NULL,"
        " joined_at timestamptz NOT NULL DEFAULT now())",
        # The quota governor's state, one row per API key and plan (the key is a digest
        # of the API key, never the key): QuotaGovernor's rules applied under the row's
        # lock, so N processes on one key together keep to the plan.
        f"CREATE TABLE {s}.governor_state ("
        " key text PRIMARY KEY,"
        " state jsonb,"
        " updated_at timestamptz NOT NULL DEFAULT now())",
    ]


def _version_2(s: str) -> list[str]:
    return [
        # The intervals that went out partial and may still be revised (``revise_for``):
        # ``[[end, revision, charge_wh, discharge_wh, soc_percent, devices_reporting],
        # ...]``, saved with the watermark so a restart or a takeover neither loses a
        # pending revision nor sends one twice.
        f"ALTER TABLE {s}.stream_checkpoint ADD COLUMN revising jsonb NOT NULL DEFAULT '[]'",
        # ``[report_at, ready_end]`` of the stream's latest poll that reached the newest
        # data: a fleet that restarts skips the stream while the systems list shows no
        # later report and everything shown was delivered.
        f"ALTER TABLE {s}.stream_checkpoint ADD COLUMN covered bigint[]",
    ]


#: version -> the statements that bring the layout from the previous version to it.
_MIGRATIONS = {1: _version_1, 2: _version_2}


async def ensure_schema(conn: Connection, schema: str) -> int:
    """Create or upgrade the layout in ``schema``; returns the version found before."""
    s = quote_ident(schema)
    async with conn.transaction():
        # Serialise creators across processes; the lock ends with the transaction.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"enphase_battery.schema:{schema}"
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.schema_version")
        found = 0
        if exists:
            found = await conn.fetchval(f"SELECT version FROM {s}.schema_version") or 0
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"schema {schema!r} is at version {found}; this SDK knows up to"
                f" {SCHEMA_VERSION}: upgrade enphase-battery"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version](s):
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {s}.schema_version (version) VALUES ($1)"
                " ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                version,
            )
        return int(found)
