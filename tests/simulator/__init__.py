"""Tests of enphase_battery.simulator, mirroring the package."""
