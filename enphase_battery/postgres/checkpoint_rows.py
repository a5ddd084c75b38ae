"""The ``stream_checkpoint`` table's statements for
:class:`~enphase_battery.postgres.PostgresCheckpoint`: the compare-and-set write of many
streams at once, and the reads that tell what a missed write found.

Each function runs on the caller's connection (inside its transaction); ``s`` is the
quoted schema.  The rules (which revision a write expects, what a miss means) are the
store's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enphase_battery.postgres._db import Connection
from enphase_battery.store.checkpoint import (
    StreamState,
    covered_from,
    revising_from_json,
    revising_to_json,
)

__all__ = ["compare_and_set", "revisions", "state_of", "stored_rows", "stored_states"]


def _array_literal(values: tuple[int, ...]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


def state_of(row: Any) -> StreamState:
    """The :class:`StreamState` of a ``stream_checkpoint`` row (watermark, delivered,
    revising)."""
    return StreamState(
        int(row["watermark"]),
        tuple(int(v) for v in row["delivered"]),
        revising_from_json(row["revising"]),
        covered_from(row["covered"]),
    )


def _covered_literal(state: StreamState) -> str | None:
    covered = state.covered
    return None if covered is None else f"{{{covered[0]},{covered[1]}}}"


async def compare_and_set(
    conn: Connection,
    s: str,
    states: Mapping[str, StreamState],
    expected: Mapping[str, int | None],
) -> dict[str, int]:
    """Write each state whose row is still at the expected revision (``0`` or ``None``:
    no row yet); returns the new revision of each key written."""
    updates = [k for k in states if expected.get(k)]
    inserts = [k for k in states if not expected.get(k)]
    written: dict[str, int] = {}
    if updates:
        rows = await conn.fetch(
            f"UPDATE {s}.stream_checkpoint AS c SET watermark = u.watermark,"
            " delivered = u.delivered::bigint[], revising = u.revising::jsonb,"
            " covered = u.covered::bigint[], revision = c.revision + 1, updated_at = now()"
            " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],"
            " $6::text[]) AS u(stream, watermark, delivered, revision, revising, covered)"
            " WHERE c.stream = u.stream AND c.revision = u.revision"
            " RETURNING c.stream, c.revision",
            updates,
            [states[k].watermark for k in updates],
            [_array_literal(states[k].delivered) for k in updates],
            [expected[k] for k in updates],
            [revising_to_json(states[k].revising) for k in updates],
            [_covered_literal(states[k]) for k in updates],
        )
        written.update((r["stream"], int(r["revision"])) for r in rows)
    if inserts:
        rows = await conn.fetch(
            f"INSERT INTO {s}.stream_checkpoint"
            " (stream, watermark, delivered, revising, covered)"
            " SELECT u.stream, u.watermark, u.delivered::bigint[], u.revising::jsonb,"
            " u.covered::bigint[]"
            " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])"
            " AS u(stream, watermark, delivered, revising, covered)"
            " ON CONFLICT (stream) DO NOTHING RETURNING stream, revision",
            inserts,
            [states[k].watermark for k in inserts],
            [_array_literal(states[k].delivered) for k in inserts],
            [revising_to_json(states[k].revising) for k in inserts],
            [_covered_literal(states[k]) for k in inserts],
        )
        written.update((r["stream"], int(r["revision"])) for r in rows)
    return written


async def revisions(conn: Connection, s: str, keys: list[str]) -> dict[str, int]:
    """The stored revision of each of ``keys`` that has a row."""
    rows = await conn.fetch(
        f"SELECT stream, revision FROM {s}.stream_checkpoint WHERE stream = ANY($1::text[])",
        keys,
    )
    return {row["stream"]: int(row["revision"]) for row in rows}


async def stored_rows(
    conn: Connection, s: str, keys: list[str]
) -> dict[str, tuple[int, StreamState]]:
    """The stored (revision, state) of each of ``keys`` that has a row."""
    rows = await conn.fetch(
        f"SELECT stream, watermark, delivered, revising::text, covered, revision"
        f" FROM {s}.stream_checkpoint WHERE stream = ANY($1::text[])",
        keys,
    )
    return {r["stream"]: (int(r["revision"]), state_of(r)) for r in rows}


async def stored_states(conn: Connection, s: str, keys: list[str]) -> dict[str, StreamState]:
    """The stored state of each of ``keys`` that has a row."""
    rows = await conn.fetch(
        f"SELECT stream, watermark, delivered, revising::text, covered"
        f" FROM {s}.stream_checkpoint WHERE stream = ANY($1::text[])",
        keys,
    )
    return {r["stream"]: state_of(r) for r in rows}
