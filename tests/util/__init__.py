"""Tests of enphase_battery.util: the JSON decoder, redaction, lazy names, moved paths."""
