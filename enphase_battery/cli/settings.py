"""Settings: flags, then the environment, then ``config.json`` in the config directory."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..auth import DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL
from ..client import DEFAULT_BASE_URL
from .errors import EXIT_USAGE, PROG, CliError
from .output import _SECRETS, _warn

PLANS = ("watt", "kilowatt", "megawatt", "partner")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/enphase-battery``, by default ``~/.config/enphase-battery``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / PROG


@dataclass
class _Context:
    """Everything a command needs: parsed args and resolved settings."""

    args: argparse.Namespace
    directory: Path
    config_path: Path
    token_path: Path
    config: dict[str, Any]
    base_url: str
    token_url: str
    authorize_url: str
    plan: str
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def credential(self, name: str, *, required: bool = True) -> str | None:
        """``api_key``, ``client_id`` or ``client_secret``: flag, then env, then config."""
        flag = "--" + name.replace("_", "-")
        env = "ENPHASE_" + name.upper()
        value = getattr(self.args, name, None)
        source = flag
        if not value:
            value, source = os.environ.get(env), env
        if not value:
            value, source = self.config.get(name), f"{self.config_path.name}"
        if not value:
            if required:
                raise CliError(
                    f"missing {name.replace('_', ' ')}: pass {flag}, set {env}"
                    f" or add {name!r} to {self.config_path}",
                    EXIT_USAGE,
                )
            return None
        if not isinstance(value, str):
            raise CliError(f"{name} in {self.config_path} must be a string", EXIT_USAGE)
        _SECRETS.add(value)
        self.sources[name] = source
        return value

    def system_id(self) -> int:
        value = getattr(self.args, "system", None)
        if value is None:
            raw = os.environ.get("ENPHASE_SYSTEM_ID") or self.config.get("system_id")
            if raw is None:
                raise CliError(
                    "missing --system: pass --system ID (see `enphase-battery systems`)"
                    " or set ENPHASE_SYSTEM_ID",
                    EXIT_USAGE,
                )
            text = str(raw).strip()
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                raise CliError(f"system id must be a number, got {raw!r}", EXIT_USAGE)
            value = int(text)
        return int(value)


def _make_context(args: argparse.Namespace) -> _Context:
    directory = config_dir()
    named_by = (
        "--config"
        if getattr(args, "config", None)
        else "ENPHASE_CONFIG"
        if os.environ.get("ENPHASE_CONFIG")
        else None
    )
    config_path = Path(
        getattr(args, "config", None)
        or os.environ.get("ENPHASE_CONFIG")
        or directory / "config.json"
    ).expanduser()
    token_path = Path(
        getattr(args, "token_file", None)
        or os.environ.get("ENPHASE_TOKEN_FILE")
        or directory / "token.json"
    ).expanduser()
    if args.command == "simulate":
        # simulate's own --token-file is where it writes a token; nothing else applies.
        config: dict[str, Any] = {}
    else:
        config = _load_config(config_path, named_by)

    def pick(flag: str, env: str, key: str, default: str) -> str:
        value = getattr(args, flag, None) or os.environ.get(env) or config.get(key) or default
        return str(value)

    plan = pick("plan", "ENPHASE_PLAN", "plan", "watt").strip().lower()
    if plan not in PLANS:
        raise CliError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}", EXIT_USAGE)
    return _Context(
        args=args,
        directory=directory,
        config_path=config_path,
        token_path=token_path,
        config=config,
        base_url=pick("base_url", "ENPHASE_BASE_URL", "base_url", DEFAULT_BASE_URL),
        token_url=pick("token_url", "ENPHASE_TOKEN_URL", "token_url", DEFAULT_TOKEN_URL),
        authorize_url=pick(
            "authorize_url", "ENPHASE_AUTHORIZE_URL", "authorize_url", DEFAULT_AUTHORIZE_URL
        ),
        plan=plan,
    )


def _load_config(path: Path, named_by: str | None = None) -> dict[str, Any]:
    """``config.json`` as a dict; the default file may be missing, a named one may not."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        if named_by is not None:
            raise CliError(
                f"config file {path} (named by {named_by}) does not exist", EXIT_USAGE
            ) from None
        return {}
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror}", EXIT_USAGE) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise CliError(f"{path} is not valid JSON", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object", EXIT_USAGE)
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and any(
        data.get(k) for k in ("client_secret", "api_key")
    ):
        # ssh does the same for private keys: a secret others can read is worth a warning.
        _warn(f"{path} is readable by other users; run: chmod 600 {path}")
    return data


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
