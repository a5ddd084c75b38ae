"""enphase_battery: asyncio SDK for Enphase IQ Batteries (Enlighten Systems API v4)."""
