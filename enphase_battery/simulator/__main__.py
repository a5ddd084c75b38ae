"""``python -m enphase_battery.simulator``."""

from __future__ import annotations

import sys

from enphase_battery.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
