"""Tests of enphase_battery.cli: the enphase-battery command against the simulator."""
