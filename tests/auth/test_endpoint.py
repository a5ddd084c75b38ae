"""The token request's Basic header, built by the SDK on every aiohttp it supports."""

from __future__ import annotations

import base64

import pytest

from enphase_battery.auth.endpoint import basic_authorization


def test_basic_authorization_is_rfc_7617_in_utf_8() -> None:
    header = basic_authorization("client-id", "sécret:with colon")
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode("utf-8") == "client-id:sécret:with colon"


def test_a_colon_in_the_client_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not allowed in login"):
        basic_authorization("client:id", "secret")
