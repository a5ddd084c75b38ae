"""Tests of enphase_battery.client: EnphaseClient over loopback HTTP, its settings from
the environment."""
