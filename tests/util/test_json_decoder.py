"""The optional orjson decoder: chosen when installed, switchable off, same answers either way.

``make test`` runs the client and simulator suites twice: once as installed (the dev extra
brings orjson) and once with ``ENPHASE_BATTERY_JSON=stdlib``; the first test here proves
each run really used the decoder it was meant to.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from enphase_battery import BatterySettings, BatteryTelemetry, EnphaseClient
from enphase_battery.models import converter
from enphase_battery.util import json_decoder as _json
from tests.support.fake_api import FakeEnphase, Reply

SYSTEM_ID = 698905955
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _orjson_installed() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_run_uses_the_decoder_its_environment_asks_for() -> None:
    setting = os.environ.get(_json.ENV_VAR, "auto")
    if setting == "stdlib" or not _orjson_installed():
        assert _json.BACKEND == "stdlib"
        assert _json.loads is json.loads
    else:
        assert _json.BACKEND == "orjson"


def test_stdlib_is_chosen_on_request_even_with_orjson_installed() -> None:
    backend, loads = _json.choose("stdlib")
    assert backend == "stdlib"
    assert loads is json.loads
    assert _json.choose(" STDLIB ")[0] == "stdlib"


def test_auto_falls_back_to_stdlib_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson now raises ImportError
    assert _json.choose("auto") == ("stdlib", json.loads)
    assert _json.choose("")[0] == "stdlib"


def test_asking_for_orjson_without_it_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)
    with pytest.raises(ImportError, match=r"enphase-battery\[speed\]"):
        _json.choose("orjson")


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="ENPHASE_BATTERY_JSON"):
        _json.choose("ujson")


@pytest.mark.skipif(not _orjson_installed(), reason="orjson not installed")
@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_both_decoders_read_every_fixture_alike(fixture: str) -> None:
    raw = (FIXTURES / fixture).read_bytes()
    assert _json.choose("orjson")[0] == "orjson"
    assert _json.choose("orjson")[1](raw) == json.loads(raw)


@pytest.mark.skipif(not _orjson_installed(), reason="orjson not installed")
def test_both_decoders_build_the_same_telemetry_models() -> None:
    raw = (FIXTURES / "telemetry_battery.json").read_bytes()
    fast = converter.structure(_json.choose("orjson")[1](raw), BatteryTelemetry)
    slow = converter.structure(json.loads(raw), BatteryTelemetry)
    assert fast == slow
    assert len(fast.intervals) > 0


@pytest.mark.skipif(not _orjson_installed(), reason="orjson not installed")
@pytest.mark.parametrize(
    "body",
    [b'{"x": NaN, "y": -Infinity}', '{"s": "caf\xe9"}'.encode("latin-1")],
)
def test_what_orjson_refuses_the_standard_library_decides(body: bytes) -> None:
    loads = _json.choose("orjson")[1]
    try:
        expected = json.loads(body)
    except ValueError as err:
        with pytest.raises(type(err)):
            loads(body)
    else:
        assert repr(loads(body)) == repr(expected)


async def test_a_body_only_the_standard_library_reads_is_still_read(
    fake: FakeEnphase, client: EnphaseClient
) -> None:
    # NaN: refused by orjson, read by json; the answer must not depend on whether the
    # extra is installed.
    body = json.loads((FIXTURES / "battery_settings.json").read_text())
    body["firmware_flag"] = float("nan")
    fake.script("*", Reply(200, text=json.dumps(body)))
    assert "NaN" in json.dumps(body)
    settings = await client.get_system_battery_settings(SYSTEM_ID)
    assert isinstance(settings, BatterySettings)
    assert settings.reserve_soc == 30
    assert len(fake.requests) == 1  # read at once, not retried as broken
