"""``python -m enphase_battery.cli``: the ``enphase-battery`` command line."""

from __future__ import annotations

from enphase_battery.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
