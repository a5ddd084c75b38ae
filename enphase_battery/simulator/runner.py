"""Run a simulator until told to stop, printing how to connect to it."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enphase_battery.auth.tokens import FileTokenStore
from enphase_battery.simulator.server import EnphaseSimulator

__all__ = ["connection_banner", "serve", "shell_exports"]


def _systems_line(sim: EnphaseSimulator) -> str:
    ids = sim.system_ids
    shown = ", ".join(str(s) for s in ids[:10])
    if len(ids) > 10:
        shown += f", ... ({len(ids)} systems; GET /api/v4/systems lists them all)"
    return shown


def connection_banner(sim: EnphaseSimulator, token_file: Path | None) -> str:
    """Human-readable connection details (a simulator's credentials are not secrets)."""
    lines = [
        "Enphase v4 API simulator",
        f"  base URL       {sim.base_url}   (API under /api/v4)",
        f"  token URL      {sim.token_url}",
        f"  authorize URL  {sim.authorize_url}",
        f"  api key        {sim.api_key}",
        f"  client id      {sim.client_id}",
        f"  client secret  {sim.client_secret}",
        f"  plan           {sim.plan}    clock {sim.clock.now().isoformat()} x{sim.clock.speed:g}",
        f"  systems        {_systems_line(sim)}",
    ]
    if token_file is not None:
        lines.append(f"  token file     {token_file}")
    else:
        lines.append(f"  access token   {sim.token.access_token}")
        lines.append(f"  refresh token  {sim.token.refresh_token}")
    lines.append(f'  admin          POST {sim.base_url}/__admin/clock {{"advance_seconds": 900}}')
    lines.append("")
    lines.append("Point enphase-battery at it (paste into your shell):")
    lines.extend(f"  {line}" for line in shell_exports(sim, token_file))
    if token_file is None:
        lines.append(
            "  # then sign in: enphase-battery auth login --listen 0, and open the URL it"
            " prints (the simulator approves at once: `curl -sL URL` will do);"
            " or start with --token-file PATH to skip that"
        )
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def shell_exports(sim: EnphaseSimulator, token_file: Path | None) -> list[str]:
    """``export`` lines for every setting the CLI needs to use ``sim`` (POSIX shells)."""
    values = {
        "ENPHASE_BASE_URL": sim.base_url,
        "ENPHASE_TOKEN_URL": sim.token_url,
        "ENPHASE_AUTHORIZE_URL": sim.authorize_url,
        "ENPHASE_PLAN": sim.plan,
        "ENPHASE_API_KEY": sim.api_key,
        "ENPHASE_CLIENT_ID": sim.client_id,
        "ENPHASE_CLIENT_SECRET": sim.client_secret,
    }
    if sim.system_ids:
        values["ENPHASE_SYSTEM_ID"] = str(sim.system_ids[0])
    if token_file is not None:
        values["ENPHASE_TOKEN_FILE"] = str(token_file.resolve())
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


async def serve(
    *,
    token_file: str | Path | None = None,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] = print,
    **simulator_kwargs: Any,
) -> None:
    """Start an :class:`EnphaseSimulator`, announce it, and serve until ``stop`` is set.

    Without ``stop``, SIGINT/SIGTERM end it.  With ``token_file``, the fresh token is
    written there in :class:`~enphase_battery.auth.FileTokenStore` format.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with EnphaseSimulator(**simulator_kwargs) as sim:
            path = Path(token_file) if token_file is not None else None
            if path is not None:
                await FileTokenStore(path).save(sim.token)
            announce(connection_banner(sim, path))
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
