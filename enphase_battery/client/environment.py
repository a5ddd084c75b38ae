"""The settings the SDK and the ``enphase-battery`` CLI share: ``ENPHASE_*`` variables,
``config.json`` and the token file.

:meth:`EnphaseSettings.load` resolves them once, the same way for
:meth:`EnphaseClient.from_env <enphase_battery.EnphaseClient.from_env>` and for every CLI
command, so a program finds the simulator (or the real API) exactly where
``enphase-battery simulate`` or ``enphase-battery auth login`` left it.  Each setting comes
from, in this order:

1. an explicit value (an argument of ``from_env``, a CLI flag);
2. its environment variable (:data:`ENV_VARS`: ``ENPHASE_API_KEY``, ``ENPHASE_CLIENT_ID``,
   ``ENPHASE_CLIENT_SECRET``, ``ENPHASE_BASE_URL``, ``ENPHASE_TOKEN_URL``,
   ``ENPHASE_AUTHORIZE_URL``, ``ENPHASE_PLAN``, ``ENPHASE_SYSTEM_ID``);
3. its key in ``config.json`` (``api_key``, ``client_id``, ``client_secret``, ``base_url``,
   ``token_url``, ``authorize_url``, ``plan``, ``system_id``);
4. the default: Enphase's own URLs and the free ``watt`` plan.

The files live in ``$XDG_CONFIG_HOME/enphase-battery/`` (default
``~/.config/enphase-battery/``): ``config.json`` (``ENPHASE_CONFIG`` names another),
``token.json`` (``ENPHASE_TOKEN_FILE``) and ``usage.json`` (the month's request count).

No value of a secret (API key, client secret, token) appears in a ``repr()``, a log line or
an error: errors name the setting and where it was looked for.

Imports: the exceptions, the route table, the plan limits and the token store; never the
client or the CLI, which both import this module.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from enphase_battery.auth.manager import DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL
from enphase_battery.auth.tokens import FileTokenStore, OAuth2Token
from enphase_battery.exceptions import InvalidRequestError, NotSignedInError, SettingsError
from enphase_battery.http.routes import DEFAULT_BASE_URL
from enphase_battery.quota.limits import RateLimits

__all__ = [
    "APP_DIR_NAME",
    "CREDENTIALS",
    "ENV_VARS",
    "PLANS",
    "USAGE_RESET_HINT",
    "EnphaseSettings",
    "config_dir",
]

_LOGGER = logging.getLogger("enphase_battery.environment")

#: The directory under ``$XDG_CONFIG_HOME`` (the CLI's program name).
APP_DIR_NAME: Final = "enphase-battery"
#: What a "quota spent" message says about the month's count kept in ``usage.json``.
USAGE_RESET_HINT: Final = "`enphase-battery usage --reset` clears it"
#: The API plans, cheapest first; ``watt`` (free) unless a setting names another.
PLANS: Final = ("watt", "kilowatt", "megawatt", "partner")
#: The app's credentials: secret or not, each is required to call the API.
CREDENTIALS: Final = ("api_key", "client_id", "client_secret")
#: Setting -> its environment variable (also the ``config.json`` key is the setting's name).
ENV_VARS: Final[Mapping[str, str]] = {
    "api_key": "ENPHASE_API_KEY",
    "client_id": "ENPHASE_CLIENT_ID",
    "client_secret": "ENPHASE_CLIENT_SECRET",
    "base_url": "ENPHASE_BASE_URL",
    "token_url": "ENPHASE_TOKEN_URL",
    "authorize_url": "ENPHASE_AUTHORIZE_URL",
    "plan": "ENPHASE_PLAN",
    "system_id": "ENPHASE_SYSTEM_ID",
    "config": "ENPHASE_CONFIG",
    "token_file": "ENPHASE_TOKEN_FILE",
}
_DEFAULTS: Final[Mapping[str, str]] = {
    "base_url": DEFAULT_BASE_URL,
    "token_url": DEFAULT_TOKEN_URL,
    "authorize_url": DEFAULT_AUTHORIZE_URL,
    "plan": "watt",
}


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/enphase-battery``, by default ``~/.config/enphase-battery``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_DIR_NAME


def _python_argument(name: str) -> str:
    return f"{name}="


@attrs.frozen(repr=False)
class EnphaseSettings:
    """The resolved settings of one program run; build it with :meth:`load`.

    The app's credentials are resolved when :meth:`load` runs and checked only when asked
    for (:meth:`credential`), so a command that needs none (``auth status``) runs without
    them.  ``repr()`` shows the files, URLs and plan, never a credential.
    """

    #: The config directory (``usage.json`` lives there).
    directory: Path
    #: ``config.json`` (or the file ``ENPHASE_CONFIG`` / ``config_file=`` names).
    config_file: Path
    #: Where the OAuth2 token is kept (``token.json`` unless named).
    token_file: Path
    base_url: str
    token_url: str
    authorize_url: str
    #: One of :data:`PLANS`.
    plan: str
    #: ``config.json``'s content (it may hold secrets: never printed).
    config: Mapping[str, Any]
    #: Setting -> where its value came from (the argument, a variable's name or the
    #: config file's name), for the settings found so far.
    sources: Mapping[str, str]
    _values: Mapping[str, Any]
    _argument_name: Callable[[str], str]

    def __repr__(self) -> str:
        return (
            f"EnphaseSettings(base_url={self.base_url!r}, plan={self.plan!r},"
            f" config_file={str(self.config_file)!r}, token_file={str(self.token_file)!r})"
        )

    @classmethod
    def load(
        cls,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        authorize_url: str | None = None,
        plan: str | None = None,
        system_id: int | str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        read_config: bool = True,
        on_warning: Callable[[str], None] | None = None,
        argument_name: Callable[[str], str] = _python_argument,
    ) -> EnphaseSettings:
        """Resolve every setting: the arguments, then the environment, then ``config.json``.

        Args:
            api_key: an explicit value, which wins over the environment and the file
                (``None`` or ``""``: not given); so are ``client_id``, ``client_secret``,
                ``base_url``, ``token_url``, ``authorize_url``, ``plan`` and ``system_id``.
            config_file: the config file; default ``ENPHASE_CONFIG``, else
                ``<config dir>/config.json``.  A file named here or by ``ENPHASE_CONFIG``
                must exist; the default one may be missing.
            token_file: the token file; default ``ENPHASE_TOKEN_FILE``, else
                ``<config dir>/token.json``.
            environ: the environment to read (default ``os.environ``).
            read_config: ``False`` ignores the config file (``enphase-battery simulate``).
            on_warning: called with a warning's text (a config file holding a secret that
                other users can read); default: logged on ``enphase_battery.client.environment``.
            argument_name: what an explicit value is called in messages (by default
                ``"api_key="``; the CLI names its flags, ``"--api-key"``).

        Raises:
            SettingsError: the config file cannot be read or is not a JSON object, or the
                plan is unknown (``setting`` says which).
        """
        environ = os.environ if environ is None else environ
        directory = config_dir(environ)
        named_by = (
            argument_name("config_file")
            if config_file
            else ENV_VARS["config"]
            if environ.get(ENV_VARS["config"])
            else None
        )
        config_path = Path(
            config_file or environ.get(ENV_VARS["config"]) or directory / "config.json"
        ).expanduser()
        token_path = Path(
            token_file or environ.get(ENV_VARS["token_file"]) or directory / "token.json"
        ).expanduser()
        config = _read_config(config_path, named_by, on_warning) if read_config else {}
        explicit: dict[str, Any] = {
            "api_key": api_key,
            "client_id": client_id,
            "client_secret": client_secret,
            "base_url": base_url,
            "token_url": token_url,
            "authorize_url": authorize_url,
            "plan": plan,
            "system_id": system_id,
        }
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, given in explicit.items():
            for value, source in (
                (given, argument_name(name)),
                (environ.get(ENV_VARS[name]), ENV_VARS[name]),
                (config.get(name), config_path.name),
            ):
                if value is not None and value != "":
                    values[name], sources[name] = value, source
                    break
        for name in ("base_url", "token_url", "authorize_url", "plan"):
            value = values.get(name, _DEFAULTS[name])
            if not isinstance(value, str):
                raise SettingsError(
                    f"{name} in {config_path} must be a string",
                    setting=name,
                    looked_in=(str(config_path),),
                )
            values[name] = value
        resolved_plan = values["plan"].strip().lower()
        if resolved_plan not in PLANS:
            raise SettingsError(
                f"unknown plan {values['plan']!r}; expected one of {', '.join(PLANS)}",
                setting="plan",
                looked_in=(ENV_VARS["plan"], str(config_path)),
            )
        return cls(
            directory=directory,
            config_file=config_path,
            token_file=token_path,
            base_url=values["base_url"],
            token_url=values["token_url"],
            authorize_url=values["authorize_url"],
            plan=resolved_plan,
            config=config,
            sources=sources,
            values=values,
            argument_name=argument_name,
        )

    # -- what a program asks for -------------------------------------------------------

    @property
    def rate_limits(self) -> RateLimits:
        """The plan's :class:`~enphase_battery.RateLimits`."""
        return RateLimits.for_plan(self.plan)

    @property
    def usage_file(self) -> Path:
        """Where the month's request count is kept between runs (``<config dir>/usage.json``)."""
        return self.directory / "usage.json"

    def credential(self, name: str, *, required: bool = True) -> str | None:
        """``api_key``, ``client_id`` or ``client_secret``, wherever it was found
        (``None`` when not ``required`` and set nowhere).

        Raises:
            SettingsError: ``required`` and not set anywhere, or not a string in the config
                file; the message names the argument, the variable and the file to use.
        """
        if name not in CREDENTIALS:
            raise InvalidRequestError(f"not a credential: {name!r}")
        if not required and self._values.get(name) is None:
            return None
        return self._required_credential(name)

    def credentials(self) -> tuple[str, str, str]:
        """``(api_key, client_id, client_secret)``; the first one missing raises.

        Raises:
            SettingsError: as :meth:`credential` does.
        """
        return (
            self._required_credential("api_key"),
            self._required_credential("client_id"),
            self._required_credential("client_secret"),
        )

    def _required_credential(self, name: str) -> str:
        value = self._values.get(name)
        variable = ENV_VARS[name]
        if value is None:
            raise SettingsError(
                f"missing {name.replace('_', ' ')}: pass {self._argument_name(name)},"
                f" set {variable} or add {name!r} to {self.config_file}",
                setting=name,
                looked_in=(variable, str(self.config_file)),
            )
        if not isinstance(value, str):
            raise SettingsError(
                f"{name} in {self.config_file} must be a string",
                setting=name,
                looked_in=(str(self.config_file),),
            )
        return value

    def system_id(self) -> int:
        """The system to use (``ENPHASE_SYSTEM_ID``, ``system_id`` in the config file).

        Raises:
            SettingsError: not set, or not a number.
        """
        raw = self._values.get("system_id")
        if raw is None:
            raise SettingsError(
                f"missing system id: pass {self._argument_name('system_id')} (see"
                f" `enphase-battery systems`), set {ENV_VARS['system_id']} or add"
                f" 'system_id' to {self.config_file}",
                setting="system_id",
                looked_in=(ENV_VARS["system_id"], str(self.config_file)),
            )
        if isinstance(raw, bool):
            raw = repr(raw)
        text = str(raw).strip()
        # ASCII digits only: int() reads other scripts' digits too ("١٢٣" is 123).
        if text.isascii() and text.isdigit() and int(text) >= 1:
            return int(text)
        raise SettingsError(
            f"system id must be a positive number, got {raw!r}",
            setting="system_id",
            looked_in=(ENV_VARS["system_id"], str(self.config_file)),
        )

    def token_store(self) -> FileTokenStore:
        """The :class:`~enphase_battery.FileTokenStore` on :attr:`token_file`."""
        return FileTokenStore(self.token_file)

    def load_token(self) -> OAuth2Token:
        """The saved token, read from :attr:`token_file`.

        Raises:
            NotSignedInError: the file does not exist (sign in: ``enphase-battery auth
                login``).
            SettingsError: it cannot be read or holds no token (``setting="token"``).
        """
        path = str(self.token_file)
        try:
            token = self.token_store().load()
        except InvalidRequestError as err:
            raise SettingsError(str(err), setting="token", looked_in=(path,)) from None
        except OSError as err:
            raise SettingsError(
                f"cannot read {path}: {err.strerror}", setting="token", looked_in=(path,)
            ) from None
        if token is None:
            raise NotSignedInError(
                f"not signed in (no token at {path}): run `enphase-battery auth login`",
                token_file=path,
            )
        return token


def _read_config(
    path: Path, named_by: str | None, on_warning: Callable[[str], None] | None
) -> dict[str, Any]:
    """``config.json`` as a dict; the default file may be missing, a named one may not."""
    looked_in = (str(path),)
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        if named_by is not None:
            raise SettingsError(
                f"config file {path} (named by {named_by}) does not exist",
                setting="config",
                looked_in=looked_in,
            ) from None
        return {}
    except OSError as err:
        raise SettingsError(
            f"cannot read {path}: {err.strerror}", setting="config", looked_in=looked_in
        ) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise SettingsError(
            f"{path} is not valid JSON", setting="config", looked_in=looked_in
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(
            f"{path} must hold a JSON object", setting="config", looked_in=looked_in
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and any(
        data.get(k) for k in ("client_secret", "api_key")
    ):
        # ssh does the same for private keys: a secret others can read is worth a warning.
        message = f"{path} is readable by other users; run: chmod 600 {path}"
        if on_warning is None:
            _LOGGER.warning("%s", message)
        else:
            on_warning(message)
    return data
