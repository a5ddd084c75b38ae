"""``--out`` URLs: which sink, and where."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from enphase_battery.exceptions import InvalidRequestError

__all__ = ["SinkURL", "parse_sink_url"]

SinkKind = Literal["sqlite", "postgresql", "influxdb"]


@attrs.frozen
class SinkURL:
    """A parsed sink URL.

    Attributes:
        kind: ``"sqlite"``, ``"postgresql"`` or ``"influxdb"``.
        path: the SQLite file (``sqlite`` only).
        dsn: the PostgreSQL DSN, as given (``postgresql`` only).
        host / port / database / tls: the InfluxDB server and database (``influxdb``
            only; ``tls`` for ``influxdbs://``).
    """

    kind: SinkKind
    path: Path | None = None
    dsn: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    tls: bool = False

    @property
    def base_url(self) -> str:
        """The InfluxDB server's HTTP root (``influxdb`` only)."""
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_sink_url(value: str) -> SinkURL | None:
    """The sink ``value`` names, or ``None`` when it is a plain file path.

    * ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` (SQLAlchemy's
      spelling: three slashes, then the path);
    * ``postgresql://...`` or ``postgres://...``: a libpq DSN;
    * ``influxdb://HOST:PORT/DB`` (``influxdbs://`` for HTTPS; the port defaults to
      8086).  Credentials in the URL are refused: they would show in the process list
      and the shell's history (give them in the environment or the config file).

    Raises:
        InvalidRequestError: a sink URL that is malformed.
    """
    lowered = value.lower()
    if lowered.startswith("sqlite:"):
        if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
            raise InvalidRequestError(
                f"a SQLite URL is sqlite:///relative.db or sqlite:////absolute.db, got {value!r}"
            )
        return SinkURL(kind="sqlite", path=Path(value[len("sqlite:///") :]).expanduser())
    if lowered.startswith(("postgresql://", "postgres://")):
        return SinkURL(kind="postgresql", dsn=value)
    if lowered.startswith(("influxdb://", "influxdbs://")):
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise InvalidRequestError(
                "an influxdb:// URL must not hold credentials: set ENPHASE_INFLUXDB_USER and"
                " ENPHASE_INFLUXDB_PASSWORD, or influxdb_user and influxdb_password in"
                " config.json"
            )
        database = parts.path.strip("/")
        try:
            port = parts.port or 8086
        except ValueError:
            raise InvalidRequestError(f"bad port in {value!r}") from None
        if not parts.hostname or not database or "/" in database:
            raise InvalidRequestError(
                f"an InfluxDB URL is influxdb://HOST:PORT/DATABASE, got {value!r}"
            )
        return SinkURL(
            kind="influxdb",
            host=parts.hostname,
            port=port,
            database=database,
            tls=lowered.startswith("influxdbs://"),
        )
    scheme, separator, _ = value.partition("://")
    if separator and scheme.replace("+", "").isalnum():
        raise InvalidRequestError(
            f"unknown sink {value!r}: use sqlite:///, postgresql:// or influxdb://, or a file"
        )
    return None
