"""The client: :class:`EnphaseClient` with one awaitable per battery operation
(:mod:`.client`), its endpoint groups (:mod:`.endpoints`), and the settings it shares with
the CLI (``ENPHASE_*`` variables, config file, token file: :mod:`.environment`).

May import every lower room: ``util``, ``exceptions``, ``models``, ``quota``, ``http``,
``auth``, ``live`` and ``reconcile``.
"""

from __future__ import annotations

from enphase_battery.client.client import EnphaseClient
from enphase_battery.client.environment import EnphaseSettings
from enphase_battery.http.routes import DEFAULT_BASE_URL

__all__ = ["DEFAULT_BASE_URL", "EnphaseClient", "EnphaseSettings"]
