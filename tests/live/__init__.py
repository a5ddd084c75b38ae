"""Tests of enphase_battery.live: live sessions, their budget and fallback."""
