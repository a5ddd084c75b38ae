"""``EnphaseClient.from_env()`` and the settings it shares with the CLI
(:mod:`enphase_battery.client.environment`), against the embedded simulator over loopback HTTP."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enphase_battery import (
    EnphaseClient,
    FileTokenStore,
    NotSignedInError,
    OAuth2Token,
    QuotaGovernor,
    RateLimits,
)
from enphase_battery.client.environment import EnphaseSettings
from enphase_battery.exceptions import SettingsError
from enphase_battery.quota import FileGovernorBackend
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.runner import shell_exports


def exports_of(sim: EnphaseSimulator, token_file: Path | None) -> dict[str, str]:
    """What ``enphase-battery simulate`` tells a shell to export, as a mapping."""
    values: dict[str, str] = {}
    for line in shell_exports(sim, token_file):
        words = shlex.split(line)
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        values[name] = value
    return values


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    # The free plan, with its access rules, as `enphase-battery simulate --plan watt` runs it.
    async with EnphaseSimulator(
        seed=5, systems=2, encharges=1, plan="watt", enforce_plan_access=True
    ) as simulator:
        yield simulator


@pytest.fixture
def environ(tmp_path: Path, sim: EnphaseSimulator) -> dict[str, str]:
    token_file = tmp_path / "sim-token.json"
    FileTokenStore(token_file).save_sync(sim.token)
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), **exports_of(sim, token_file)}


def secrets_of(sim: EnphaseSimulator) -> list[str]:
    return [sim.api_key, sim.client_secret, sim.token.access_token, sim.token.refresh_token]


async def test_the_simulators_exports_are_all_a_program_needs(
    sim: EnphaseSimulator, environ: dict[str, str], tmp_path: Path
) -> None:
    async with EnphaseClient.from_env(environ=environ) as client:
        systems = await client.list_systems()
        assert tuple(s.system_id for s in systems) == sim.system_ids
        assert client.base_url == sim.base_url
        assert client.rate_limits == RateLimits.WATT  # ENPHASE_PLAN=watt
        manager = client.token_manager
        assert manager is not None
        assert manager.token_url == sim.token_url
        for secret in secrets_of(sim):
            assert secret not in repr(client) + repr(manager)
    # The month's count is the CLI's: usage.json in the config directory, keyed by a hash.
    usage_file = tmp_path / "config" / "enphase-battery" / "usage.json"
    assert sim.api_key not in usage_file.read_text()
    governor = QuotaGovernor(
        RateLimits.WATT,
        key=QuotaGovernor.key_for(sim.api_key),
        backend=FileGovernorBackend(usage_file),
    )
    assert (await governor.usage()).used == 1  # what `enphase-battery usage` shows


async def test_a_refreshed_token_is_saved_to_the_token_file(
    sim: EnphaseSimulator, environ: dict[str, str]
) -> None:
    store = FileTokenStore(environ["ENPHASE_TOKEN_FILE"])
    expired = OAuth2Token(
        access_token=sim.token.access_token,
        refresh_token=sim.token.refresh_token,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    store.save_sync(expired)
    async with EnphaseClient.from_env(environ=environ) as client:
        await client.list_systems()
    saved = store.load()
    assert saved is not None
    # Refresh tokens rotate: the file holds the live one, or the next run is locked out.
    assert saved.refresh_token != expired.refresh_token
    assert saved.expires_at > datetime.now(UTC)
    assert sim.token_grants["refresh_token"] == 1


@pytest.mark.parametrize(
    ("variable", "setting"),
    [
        ("ENPHASE_API_KEY", "api_key"),
        ("ENPHASE_CLIENT_ID", "client_id"),
        ("ENPHASE_CLIENT_SECRET", "client_secret"),
    ],
)
def test_a_missing_credential_names_the_variable_and_the_file(
    sim: EnphaseSimulator, environ: dict[str, str], variable: str, setting: str
) -> None:
    del environ[variable]
    with pytest.raises(SettingsError) as caught:
        EnphaseClient.from_env(environ=environ)
    error = caught.value
    assert error.setting == setting
    assert variable in str(error)
    assert "config.json" in str(error)
    assert f"{setting}=" in str(error)  # the argument of from_env's settings
    assert error.looked_in[0] == variable
    for secret in secrets_of(sim):
        assert secret not in str(error) + repr(error)


def test_no_token_file_says_sign_in(environ: dict[str, str], tmp_path: Path) -> None:
    del environ["ENPHASE_TOKEN_FILE"]
    with pytest.raises(NotSignedInError) as caught:
        EnphaseClient.from_env(environ=environ)
    default = tmp_path / "config" / "enphase-battery" / "token.json"
    assert caught.value.token_file == str(default)
    assert str(default) in str(caught.value)
    assert "enphase-battery auth login" in str(caught.value)
    assert isinstance(caught.value, SettingsError)


def test_a_token_file_that_is_not_json_is_a_settings_error(environ: dict[str, str]) -> None:
    Path(environ["ENPHASE_TOKEN_FILE"]).write_text("{not json", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        EnphaseClient.from_env(environ=environ)
    assert caught.value.setting == "token"
    assert not isinstance(caught.value, NotSignedInError)


def test_order_argument_then_environment_then_config_then_default(
    tmp_path: Path, sim: EnphaseSimulator
) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps(
            {
                "api_key": "from-config",
                "client_id": "id-from-config",
                "plan": "megawatt",
                "base_url": "http://127.0.0.1:9/config",
                "system_id": 42,
            }
        ),
        encoding="utf-8",
    )
    config_file.chmod(0o600)
    environ = {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "ENPHASE_CONFIG": str(config_file),
        "ENPHASE_API_KEY": "from-env",
        "ENPHASE_PLAN": "kilowatt",
    }
    settings = EnphaseSettings.load(environ=environ)
    assert settings.credential("api_key") == "from-env"
    assert settings.sources["api_key"] == "ENPHASE_API_KEY"
    assert settings.credential("client_id") == "id-from-config"
    assert settings.sources["client_id"] == "config.json"
    assert settings.credential("client_secret", required=False) is None
    assert settings.plan == "kilowatt"
    assert settings.base_url == "http://127.0.0.1:9/config"
    assert settings.token_url == "https://api.enphaseenergy.com/oauth/token"  # the default
    assert settings.system_id() == 42
    assert settings.token_file == tmp_path / "xdg" / "enphase-battery" / "token.json"
    assert settings.usage_file == tmp_path / "xdg" / "enphase-battery" / "usage.json"

    settings = EnphaseSettings.load(environ=environ, plan="Partner", api_key="given")
    assert settings.plan == "partner"
    assert settings.rate_limits == RateLimits.PARTNER
    assert settings.credential("api_key") == "given"
    assert settings.sources["api_key"] == "api_key="
    assert "given" not in repr(settings)
    assert "from-env" not in repr(settings)

    # Nothing set anywhere: the real API and the free plan.
    bare = EnphaseSettings.load(environ={"XDG_CONFIG_HOME": str(tmp_path / "empty")})
    assert bare.base_url == "https://api.enphaseenergy.com"
    assert bare.plan == "watt"
    assert bare.config == {}


def test_a_named_config_file_must_exist_and_hold_an_object(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "ENPHASE_CONFIG": str(tmp_path / "nope.json")}
    with pytest.raises(SettingsError) as caught:
        EnphaseSettings.load(environ=environ)
    assert caught.value.setting == "config"
    assert "ENPHASE_CONFIG" in str(caught.value)

    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SettingsError, match="JSON object"):
        EnphaseSettings.load(environ={"XDG_CONFIG_HOME": str(tmp_path)}, config_file=listed)

    with pytest.raises(SettingsError) as caught:
        EnphaseSettings.load(environ={"XDG_CONFIG_HOME": str(tmp_path), "ENPHASE_PLAN": "gold"})
    assert caught.value.setting == "plan"


def test_a_config_file_others_can_read_is_warned_about_not_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"client_secret": "s3cret-value"}), encoding="utf-8")
    config_file.chmod(0o644)
    with caplog.at_level("WARNING", logger="enphase_battery.environment"):
        settings = EnphaseSettings.load(environ={}, config_file=config_file)
    assert "chmod 600" in caplog.text
    assert "s3cret-value" not in caplog.text + repr(settings)


async def test_the_client_owns_and_stops_its_token_manager(environ: dict[str, str]) -> None:
    client = EnphaseClient.from_env(environ=environ, share_usage=False)
    manager = client.token_manager
    assert manager is not None
    async with client:
        assert manager._refresher.running  # the background refresher runs while in use
    assert not manager._refresher.running


async def test_a_config_directory_it_cannot_write_in_counts_in_memory(
    sim: EnphaseSimulator, environ: dict[str, str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("", encoding="utf-8")
    environ["XDG_CONFIG_HOME"] = str(not_a_directory)  # a read-only home, say
    config_file = tmp_path / "config.json"
    config_file.write_text("{}", encoding="utf-8")
    environ["ENPHASE_CONFIG"] = str(config_file)
    with caplog.at_level("WARNING", logger="enphase_battery.client"):
        async with EnphaseClient.from_env(environ=environ) as client:
            assert len(await client.list_systems()) == len(sim.system_ids)
            assert client.quota_used == 1
    assert "counts its requests in memory only" in caplog.text
