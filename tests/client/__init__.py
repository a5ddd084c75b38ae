"""Tests of enphase_battery.client, mirroring the package."""
