"""Tests of enphase_battery.auth: the token manager, tokens shared across processes."""
