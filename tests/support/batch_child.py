"""A consumer process for the kill -9 tests: batches from a simulator into a sink.

``python tests/support/batch_child.py CONFIG.json`` reads the simulator's address and credentials,
the checkpoint path and the mode, prints ``ready`` once the poller holds its checkpoint,
and consumes batches until the poller has caught up (then prints ``done``):

* ``transactional``: rows into ``battery_interval`` of the checkpoint's own SQLite file,
  committed with the checkpoint by ``batch.commit(conn)``;
* ``own``: rows appended to a text file (flushed, so a kill -9 keeps them), then the
  poller's own save when the next batch is asked for.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from datetime import datetime
from typing import Any

from enphase_battery import EnphaseClient, OAuth2Token, RateLimits, TokenManager
from enphase_battery.poll.poller import TelemetryPoller

ROW_SQL = (
    "CREATE TABLE IF NOT EXISTS battery_interval"
    " (source TEXT, end_at INT, charge_wh INT, discharge_wh INT)"
)


async def run(config: dict[str, Any]) -> None:
    auth = TokenManager(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        token=OAuth2Token.from_dict(config["token"]),
        token_url=config["token_url"],
    )
    client = EnphaseClient(
        api_key=config["api_key"],
        auth=auth,
        base_url=config["base_url"],
        rate_limits=RateLimits(1_000_000),
    )
    conn: sqlite3.Connection | None = None
    if config["mode"] == "transactional":
        conn = sqlite3.connect(config["checkpoint"])
        conn.execute(ROW_SQL)
        conn.commit()
    sink = open(config["sink"], "a", encoding="utf-8") if config["mode"] == "own" else None  # noqa: SIM115
    async with (
        auth,
        client,
        TelemetryPoller(
            client,
            config["system_id"],
            encharges=config["serials"],
            start_at=datetime.fromisoformat(config["start_at"]),
            checkpoint=config["checkpoint"],
            poll_interval=3600,
        ) as poller,
    ):
        print("ready", flush=True)
        batches = poller.batches(max_size=config["batch_size"], max_wait=0.0)
        while True:
            following = asyncio.ensure_future(anext(batches))
            idle = asyncio.ensure_future(poller.wait_idle())
            await asyncio.wait({following, idle}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            if not following.done():
                following.cancel()
                break
            batch = following.result()
            rows = [
                (iv.source, int(iv.end_at.timestamp()), iv.charge_wh, iv.discharge_wh)
                for iv in batch
            ]
            if conn is not None:
                for row in rows:
                    conn.execute("INSERT INTO battery_interval VALUES (?,?,?,?)", row)
                    await asyncio.sleep(0)  # a kill may land mid-rows
                await asyncio.sleep(0.01)
                await batch.commit(conn)
            else:
                assert sink is not None
                for row in rows:
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                    await asyncio.sleep(0)
                await asyncio.sleep(0.01)
        if sink is not None:
            await poller.commit()
    print("done", flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        asyncio.run(run(json.load(handle)))
