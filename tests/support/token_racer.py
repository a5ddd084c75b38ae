"""One CLI run racing others for a refresh:
``python -m tests.support.token_racer START_AT ARGS...``.

Imports first, then waits for the wall-clock ``START_AT`` (seconds since the epoch) so
every racer reads the shared token file and asks for a refresh at the same moment, then
runs ``enphase-battery ARGS...`` in this process and exits with its code.
"""

from __future__ import annotations

import sys
import time

from enphase_battery.cli import main

if __name__ == "__main__":
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    sys.exit(main(sys.argv[2:]))
