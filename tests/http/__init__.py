"""Tests of enphase_battery.http: the call pipeline against faulty servers, retries, SSE."""
