"""The tables and functions of the PostgreSQL stores, created on first use and versioned.

Everything lives in one schema (``enphase`` unless the caller names another), so two
fleets, or a test run, can share a database without sharing state.  A ``schema_version``
row says which version of the layout is there; :func:`ensure_schema` creates it or
upgrades it step by step, under a transaction-level advisory lock so that many workers
starting at once do it exactly once.  A layout newer than this SDK knows is refused
rather than guessed at.
"""

from __future__ import annotations

from ..exceptions import EnphaseError
from ._db import Connection, quote_ident

__all__ = ["SCHEMA_VERSION", "SchemaVersionError", "ensure_schema"]

#: The layout this SDK writes.
SCHEMA_VERSION = 1


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
        # One row per API key (a digest, never the key): when the next request may go,
        # and what the calendar month has spent.
        f"CREATE TABLE {s}.quota_account ("
        " account text PRIMARY KEY,"
        " next_at timestamptz NOT NULL DEFAULT '-infinity',"
        " month_start timestamptz,"
        " month_count bigint NOT NULL DEFAULT 0,"
        " exhausted boolean NOT NULL DEFAULT false)",
        # Admit one request: one row lock, one round trip.  Returns the seconds to wait
        # before sending (the slot is reserved at once, so N callers are spaced apart),
        # or NULL when the month is spent.  Times come from the server's clock, the one
        # clock every worker shares.
        f"""CREATE FUNCTION {s}.quota_acquire(
            p_account text, p_spacing_s double precision,
            p_month_start timestamptz, p_month_limit bigint)
        RETURNS double precision LANGUAGE plpgsql AS $$
        DECLARE
            v_now timestamptz := clock_timestamp();
            v_row {s}.quota_account%ROWTYPE;
            v_slot timestamptz;
        BEGIN
            SELECT * INTO v_row FROM {s}.quota_account WHERE account = p_account FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO {s}.quota_account (account) VALUES (p_account)
                    ON CONFLICT DO NOTHING;
                SELECT * INTO v_row FROM {s}.quota_account
                    WHERE account = p_account FOR UPDATE;
            END IF;
            -- A new month starts from zero; a caller still on the old month counts into
            -- the newer one (months only move forward).
            IF v_row.month_start IS NULL OR p_month_start > v_row.month_start THEN
                v_row.month_start := p_month_start;
                v_row.month_count := 0;
                v_row.exhausted := false;
            END IF;
            IF v_row.exhausted OR
               (p_month_limit IS NOT NULL AND v_row.month_count >= p_month_limit) THEN
                UPDATE {s}.quota_account SET month_start = v_row.month_start,
                    month_count = v_row.month_count, exhausted = v_row.exhausted
                    WHERE account = p_account;
                RETURN NULL;
            END IF;
            v_slot := greatest(v_now, v_row.next_at);
            UPDATE {s}.quota_account SET
                next_at = v_slot + make_interval(secs => p_spacing_s),
                month_start = v_row.month_start,
                month_count = v_row.month_count + 1,
                exhausted = false
                WHERE account = p_account;
            RETURN extract(epoch FROM v_slot - v_now);
        END $$""",
    ]


#: version -> the statements that bring the layout from the previous version to it.
_MIGRATIONS = {1: _version_1}


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
