"""Settings: flags, then the environment, then ``config.json`` in the config directory.

The resolution itself is the SDK's (:mod:`enphase_battery.client.environment`), so a program using
``EnphaseClient.from_env()`` and the CLI read the same variables and files; this module adds
the flags, the CLI's exit codes and the private files the CLI writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enphase_battery.cli.errors import EXIT_USAGE, CliError
from enphase_battery.cli.output import _SECRETS, _warn
from enphase_battery.client.environment import EnphaseSettings
from enphase_battery.exceptions import SettingsError

#: Settings whose flag is not ``--`` + the setting's name.
_FLAGS = {"config_file": "--config", "system_id": "--system", "token_file": "--token-file"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


@dataclass
class _Context:
    """Everything a command needs: parsed args and resolved settings."""

    args: argparse.Namespace
    settings: EnphaseSettings
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def directory(self) -> Path:
        return self.settings.directory

    @property
    def config_path(self) -> Path:
        return self.settings.config_file

    @property
    def token_path(self) -> Path:
        return self.settings.token_file

    @property
    def config(self) -> Mapping[str, Any]:
        return self.settings.config

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def token_url(self) -> str:
        return self.settings.token_url

    @property
    def authorize_url(self) -> str:
        return self.settings.authorize_url

    @property
    def plan(self) -> str:
        return self.settings.plan

    def credential(self, name: str, *, required: bool = True) -> str | None:
        """``api_key``, ``client_id`` or ``client_secret``: flag, then env, then config."""
        try:
            value = self.settings.credential(name, required=required)
        except SettingsError as err:
            raise CliError(str(err), EXIT_USAGE) from None
        if value is None:
            return None
        _SECRETS.add(value)
        self.sources[name] = self.settings.sources[name]
        return value

    def system_id(self) -> int:
        # Read at the time of asking: `stream` sets args.system from its --system list.
        flag = getattr(self.args, "system", None)
        if flag is not None:
            return int(flag)
        try:
            return self.settings.system_id()
        except SettingsError as err:
            raise CliError(str(err), EXIT_USAGE) from None


def _make_context(args: argparse.Namespace) -> _Context:
    """The settings of this run: flags, then ``ENPHASE_*`` variables, then ``config.json``
    (:class:`~enphase_battery.client.environment.EnphaseSettings`, shared with the SDK)."""
    try:
        settings = EnphaseSettings.load(
            **{name: getattr(args, flag, None) for name, flag in _SETTING_FLAGS.items()},
            # simulate's own --token-file is where it writes a token; nothing else applies.
            read_config=args.command != "simulate",
            on_warning=_warn,
            argument_name=_flag,
        )
    except SettingsError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    return _Context(args=args, settings=settings)


#: Setting -> the attribute its flag sets on the parsed arguments.
_SETTING_FLAGS = {
    "api_key": "api_key",
    "client_id": "client_id",
    "client_secret": "client_secret",
    "base_url": "base_url",
    "token_url": "token_url",
    "authorize_url": "authorize_url",
    "plan": "plan",
    "config_file": "config",
    "token_file": "token_file",
}


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (it may hold secrets)."""
    _write_private_text(path, json.dumps(data, indent=2) + "\n")


def _write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600: a reader (or a run cut short
    by Ctrl-C) sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
