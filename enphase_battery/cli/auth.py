"""``auth login``, ``auth status`` and ``auth logout``: sign in, show the token, sign out."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import shlex
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

if TYPE_CHECKING:
    from aiohttp import web

from enphase_battery.auth.manager import TokenManager
from enphase_battery.auth.tokens import FileTokenStore
from enphase_battery.cli.errors import (
    EXIT_API_ERROR,
    EXIT_AUTH,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliError,
)
from enphase_battery.cli.output import _cell, _out, _pairs, _print_json
from enphase_battery.cli.session import _load_token, _token_manager
from enphase_battery.cli.settings import _Context, _write_private_json

#: Where ``auth login --listen`` listens unless told otherwise; the app's registered
#: redirect URI must then be ``http://127.0.0.1:8765/callback``.
DEFAULT_LISTEN_PORT = 8765
CALLBACK_PATH = "/callback"


async def _cmd_auth_login(ctx: _Context) -> int:
    args = ctx.args
    client_id = ctx.credential("client_id")
    client_secret = ctx.credential("client_secret")
    assert client_id is not None
    assert client_secret is not None
    api_key = ctx.credential("api_key", required=bool(args.save_credentials))
    if args.listen is not None and args.code:
        raise CliError("give --listen or --code, not both", EXIT_USAGE)
    store = FileTokenStore(ctx.token_path)

    async with aiohttp.ClientSession() as session:
        manager = _token_manager(ctx, session, store)
        if args.listen is not None:
            code, redirect_uri = await _receive_code(manager, args.listen, args.timeout)
        else:
            redirect_uri = args.redirect_uri
            if args.code:
                code = _code_from(args.code, expected_state=None)
            else:
                state = secrets.token_urlsafe(16)
                _instructions(manager.authorization_url(redirect_uri, state), listening=False)
                code = _code_from(await _prompt_code(), expected_state=state)
        token = await manager.exchange_code(code, redirect_uri)
    if args.save_credentials:
        assert api_key is not None
        config = dict(ctx.config)
        config.update(api_key=api_key, client_id=client_id, client_secret=client_secret)
        _write_private_json(ctx.config_path, config)
    if ctx.json:
        _print_json(
            {
                "signed_in": True,
                "token_file": str(ctx.token_path),
                "expires_at": token.expires_at.isoformat(),
                "credentials_saved": str(ctx.config_path) if args.save_credentials else None,
            }
        )
    else:
        _out(f"Signed in. Token saved to {ctx.token_path} (mode 0600).")
        _out(f"Access token expires {_cell(token.expires_at)}; it is refreshed automatically.")
        if args.save_credentials:
            _out(f"Credentials saved to {ctx.config_path} (mode 0600).")
    return EXIT_OK


def _instructions(url: str, *, listening: bool) -> None:
    # stderr: the URL is for the person at the keyboard; stdout stays for the result.
    if _on_this_machine(url):
        # The simulator (`enphase-battery simulate`): no page, no consent form; its
        # authorize URL answers at once with the redirect that carries the code.
        sys.stderr.write(
            "The authorize URL is on this machine (the simulator?): it approves at once,"
            " with nothing to fill in. Open it in a browser here:\n\n"
        )
        sys.stderr.write(f"  {url}\n\n")
        quoted = shlex.quote(url)
        if listening:
            sys.stderr.write(f"or, from another shell:\n\n  curl -sL {quoted}\n\n")
        else:
            sys.stderr.write(
                "or, from another shell, print the URL to paste here:\n\n"
                f"  curl -s -o /dev/null -w '%{{redirect_url}}\\n' {quoted}\n\n"
            )
    else:
        sys.stderr.write("Open this URL in a browser and approve access to your system:\n\n")
        sys.stderr.write(f"  {url}\n\n")
    if listening:
        sys.stderr.write("Waiting for the redirect...\n")
    sys.stderr.flush()


def _on_this_machine(url: str) -> bool:
    """Whether ``url``'s host is loopback (the simulator's sign-in, not Enphase's)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settle(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


async def _prompt_code() -> str:
    sys.stderr.write("Then paste the URL you were sent to (or just its code): ")
    sys.stderr.flush()
    # A daemon thread, not asyncio.to_thread: Ctrl-C at the prompt must not leave
    # asyncio.run waiting for a blocked readline at shutdown.
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            text = sys.stdin.readline()
        except (OSError, ValueError):
            text = ""
        loop.call_soon_threadsafe(_settle, answer, text)

    threading.Thread(target=read, name="enphase-battery-prompt", daemon=True).start()
    line = await answer
    if not line.strip():
        raise CliError("no authorization code given", EXIT_USAGE)
    return line.strip()


def _code_from(text: str, *, expected_state: str | None) -> str:
    """The code from a pasted redirect URL (checking its state) or a bare code."""
    text = text.strip()
    if "=" not in text and "?" not in text:
        return text
    query = urlsplit(text).query if "?" in text else text
    params = {k: v[0] for k, v in parse_qs(query).items() if v}
    if "error" in params:
        raise CliError(f"authorization refused ({params['error']})", EXIT_AUTH)
    code = params.get("code")
    if not code:
        raise CliError("the redirect URL carries no code", EXIT_USAGE)
    state = params.get("state")
    if expected_state is not None and state is not None and state != expected_state:
        raise CliError(
            "the redirect's state does not match this sign-in (a stale or forged"
            " redirect); run `enphase-battery auth login` again",
            EXIT_AUTH,
        )
    return code


async def _receive_code(manager: TokenManager, port: int, timeout_s: float) -> tuple[str, str]:
    """Listen on loopback for the authorization redirect; returns (code, redirect_uri)."""
    # aiohttp.web (a quarter of the CLI's start-up) only for the one command that serves.
    from aiohttp import web

    state = secrets.token_urlsafe(16)
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    async def callback(request: web.Request) -> web.StreamResponse:
        query = request.query
        if outcome.done():
            return web.Response(status=409, text="This sign-in is already finished.\n")
        error: CliError | None = None
        if "error" in query:
            error = CliError(f"authorization refused ({query['error']})", EXIT_AUTH)
            text, status = "Access was not granted. You can close this tab.\n", 400
        elif not secrets.compare_digest(query.get("state", ""), state):
            error = CliError(
                "the redirect's state does not match this sign-in (a stale or forged"
                " redirect); run `enphase-battery auth login` again",
                EXIT_AUTH,
            )
            text, status = "This redirect does not belong to the sign-in in progress.\n", 400
        elif not query.get("code"):
            return web.Response(status=400, text="The redirect carries no code.\n")
        else:
            text, status = "Signed in to enphase-battery. You can close this tab.\n", 200
        response = web.Response(status=status, text=text)
        # Send the page before the listener is torn down by the waiting coroutine.
        await response.prepare(request)
        await response.write_eof()
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(query["code"])
        return response

    app = web.Application()
    app.router.add_get(CALLBACK_PATH, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as err:
            raise CliError(
                f"cannot listen on 127.0.0.1:{port}: {err.strerror}", EXIT_API_ERROR
            ) from None
        bound_port = runner.addresses[0][1]
        redirect_uri = f"http://127.0.0.1:{bound_port}{CALLBACK_PATH}"
        _instructions(manager.authorization_url(redirect_uri, state), listening=True)
        try:
            code = await asyncio.wait_for(outcome, timeout_s)
        except TimeoutError:
            raise CliError(f"no approval arrived within {timeout_s:g} s", EXIT_AUTH) from None
    finally:
        await runner.cleanup()
    return code, redirect_uri


async def _cmd_auth_status(ctx: _Context) -> int:
    token = _load_token(FileTokenStore(ctx.token_path))
    credentials = {}
    for name in ("api_key", "client_id", "client_secret"):
        found = ctx.credential(name, required=False) is not None
        credentials[name] = ctx.sources[name] if found else None
    if token is None:
        if ctx.json:
            _print_json(
                {"signed_in": False, "token_file": str(ctx.token_path), "credentials": credentials}
            )
        else:
            _out(f"Not signed in (no token at {ctx.token_path}): run `{PROG} auth login`.")
        return EXIT_AUTH
    now = datetime.now(UTC)
    expired = token.expires_at <= now
    if ctx.json:
        _print_json(
            {
                "signed_in": True,
                "token_file": str(ctx.token_path),
                "expires_at": token.expires_at.isoformat(),
                "expired": expired,
                "credentials": credentials,
            }
        )
        return EXIT_OK
    left = token.expires_at - now
    if expired:
        when = (
            f"expired {_cell(token.expires_at)} ({_duration(-left)} ago); the next command"
            " refreshes it, unless the refresh token has lapsed (30 days unused)"
        )
    else:
        when = f"expires {_cell(token.expires_at)} (in {_duration(left)})"
    rows: list[tuple[str, Any]] = [
        ("token file", str(ctx.token_path)),
        ("access token", when),
    ]
    for name, source in credentials.items():
        rows.append((name.replace("_", " "), f"set ({source})" if source else "missing"))
    _out("Signed in.")
    _out(_pairs(rows))
    return EXIT_OK


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


async def _cmd_auth_logout(ctx: _Context) -> int:
    try:
        ctx.token_path.unlink()
        removed = True
    except FileNotFoundError:
        removed = False
    if ctx.json:
        _print_json({"signed_out": True, "token_file": str(ctx.token_path), "removed": removed})
    elif removed:
        _out(f"Signed out: deleted {ctx.token_path}.")
    else:
        _out(f"Not signed in (no token at {ctx.token_path}).")
    return EXIT_OK
