"""Tests of enphase_battery.postgres (and LeasedFleet on it) against a real server."""
