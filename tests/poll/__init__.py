"""Tests of enphase_battery.poll: stream logs, delivery, scheduler, the pollers and fleets."""
