"""Tests of enphase_battery.quota: plan limits and the quota governor."""
