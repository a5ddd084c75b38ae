"""Tests of enphase_battery.simulator: its HTTP API, bodies and fleets."""
