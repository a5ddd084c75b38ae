"""Tests of enphase_battery.store: checkpoint stores (memory, SQLite, your own)."""
