"""Tests of enphase_battery.models: the API's answers read into models."""
