"""The client: an :class:`EnphaseClient` signed in with the saved token."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import aiohttp

from enphase_battery.auth.manager import TokenManager
from enphase_battery.auth.tokens import FileTokenStore, OAuth2Token
from enphase_battery.cli.errors import EXIT_AUTH, EXIT_USAGE, PROG, CliError
from enphase_battery.cli.output import _SECRETS
from enphase_battery.cli.settings import _Context
from enphase_battery.cli.usage import open_governor
from enphase_battery.client.client import EnphaseClient
from enphase_battery.exceptions import InvalidRequestError, NotSignedInError, SettingsError
from enphase_battery.quota.limits import RateLimits
from enphase_battery.quota.state import GovernorBackend


@contextlib.asynccontextmanager
async def _open_client(
    ctx: _Context, *, governor_backend: GovernorBackend | None = None
) -> AsyncIterator[EnphaseClient]:
    """An :class:`EnphaseClient` signed in with the saved token; rotated tokens are saved.

    Built by :meth:`EnphaseClient.from_env` on the run's settings, as any program can.
    ``governor_backend``: where the month's count lives (default ``usage.json``; a
    PostgreSQL one when several runs share the key through a database).
    """
    api_key = ctx.credential("api_key")
    assert api_key is not None
    # Missing app credentials are reported before a missing token (and join the secrets
    # scrubbed from error lines).
    ctx.credential("client_id")
    ctx.credential("client_secret")
    # The month's count lives in usage.json: every request is recorded as it is admitted.
    governor = open_governor(ctx, api_key, backend=governor_backend)
    if ctx.args.command not in _WITH_PROGRESS and sys.stderr.isatty():
        # For a person at a terminal; a script's stderr keeps its one line per error.
        governor.on_wait = _WaitNotice(governor.limits)

    async def note_secrets(new: OAuth2Token) -> None:
        # The manager has saved ``new`` to the token file already (under its lock).
        _SECRETS.update((new.access_token, new.refresh_token))

    async with aiohttp.ClientSession() as session:
        try:
            client = EnphaseClient.from_env(
                settings=ctx.settings, session=session, governor=governor, on_refresh=note_secrets
            )
        except SettingsError as err:
            if err.setting == "token":
                raise CliError(_sign_in_again(err), EXIT_AUTH) from None
            raise CliError(str(err), EXIT_USAGE) from None
        manager = client.token_manager
        assert manager is not None
        _SECRETS.update(manager.secrets())
        try:
            yield client
        finally:
            await client.close()


#: Commands with a progress line or log of their own: no wait notice on stderr.
_WITH_PROGRESS = frozenset({"stream", "serve", "live"})


class _WaitNotice:
    """Says once on stderr what a request waits for, when a wait passes a second (the
    free plan spaces requests 6 s apart: `now` would otherwise sit silent for 12 s)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.said = False

    def __call__(self, seconds: float, why: str) -> None:
        if self.said:
            return
        self.said = True
        limits = self.limits
        if why == "spacing":
            per = limits.max_rate / limits.time_period
            what = f"the {limits.plan_name} plan's spacing (one request every {1 / per:.0f} s)"
        else:
            what = f"the {limits.plan_name} plan's request budget"
        sys.stderr.write(f"{PROG}: waiting {seconds:.0f} s for {what}\n")
        sys.stderr.flush()


def _sign_in_again(err: SettingsError) -> str:
    if isinstance(err, NotSignedInError):
        return f"not signed in (no token at {err.token_file}): run `{PROG} auth login`"
    return f"{err}; run `{PROG} auth login` again"


async def _known_encharges(
    client: EnphaseClient, system_id: int, serials: list[str] | tuple[()] | None
) -> list[str] | tuple[()] | None:
    """``serials`` as given, once the system's devices list has each of them.

    A mistyped serial would otherwise be polled, answered 404 and dropped with a warning
    while the command goes on as if asked for nothing else.
    """
    if not serials:
        return serials
    known = (await client.get_system_devices(system_id)).encharge_serials
    unknown = [serial for serial in serials if serial not in known]
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise CliError(
            f"unknown Encharge {', '.join(unknown)} on system {system_id}; its Encharges:"
            f" {listed} (see `{PROG} devices`)",
            EXIT_USAGE,
        )
    return serials


def _token_manager(
    ctx: _Context,
    session: aiohttp.ClientSession,
    store: FileTokenStore,
    token: OAuth2Token | None = None,
) -> TokenManager:
    """A token manager for the configured app that saves every new token to ``store``.

    Several terminals share the token file: refreshes take its lock, so a refresh token
    rotated by one run is never presented again by another.  New tokens join the secrets
    scrubbed from error lines before they are used.
    """
    client_id = ctx.credential("client_id")
    client_secret = ctx.credential("client_secret")
    assert client_id is not None
    assert client_secret is not None

    async def note_secrets(new: OAuth2Token) -> None:
        # The manager has saved ``new`` to the store already (under its lock).
        _SECRETS.update((new.access_token, new.refresh_token))

    return TokenManager(
        client_id=client_id,
        client_secret=client_secret,
        token=token,
        token_url=ctx.token_url,
        authorize_url=ctx.authorize_url,
        session=session,
        on_refresh=note_secrets,
        store=store,
    )


def _load_token(store: FileTokenStore) -> OAuth2Token | None:
    try:
        return store.load()
    except InvalidRequestError as err:
        raise CliError(f"{err}; run `{PROG} auth login` again", EXIT_AUTH) from None
    except OSError as err:
        raise CliError(f"cannot read {store.path}: {err.strerror}", EXIT_AUTH) from None
