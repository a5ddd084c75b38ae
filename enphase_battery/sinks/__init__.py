"""Sinks: delivered intervals and hourly rows straight into SQLite, PostgreSQL and InfluxDB.

The layer above the pollers (it hands their batches to a database) and below the CLI,
whose ``stream --out URL`` and ``serve`` use it.  Each sink keeps the poller's rule: a
batch counts as delivered only once its rows are in the database.

* :mod:`enphase_battery.sinks.sqlite`: tables ``battery_interval`` and ``battery_hour``
  in a SQLite file; with the checkpoint in the same file, rows and checkpoint commit in
  one transaction.
* :mod:`enphase_battery.sinks.postgres`: the same tables in a PostgreSQL schema, written
  inside the workers' fenced checkpoint transaction (needs the ``postgres`` extra).
* :mod:`enphase_battery.sinks.influxdb`: measurements ``battery_interval`` and
  ``battery_hour`` through the InfluxDB 1.x HTTP write API, batched, retried with
  back-off, never skipped.
* :mod:`enphase_battery.sinks.url`: ``sqlite:///PATH``, ``postgresql://DSN`` and
  ``influxdb://HOST:PORT/DB`` parsed into a :class:`~enphase_battery.sinks.url.SinkURL`.
"""

from __future__ import annotations

from enphase_battery.sinks.url import SinkURL, parse_sink_url

__all__ = ["SinkURL", "parse_sink_url"]
