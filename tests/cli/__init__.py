"""Tests of enphase_battery.cli, mirroring the package."""
