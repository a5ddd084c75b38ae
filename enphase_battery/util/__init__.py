"""What every room of the package uses and that knows nothing of batteries: the one clock
(:mod:`~enphase_battery.util.clock`), the JSON decoder, redaction of secrets and control
codes, filling frozen ``attrs`` slots fast, names imported on first use, and the table of
the old import paths (:mod:`~enphase_battery.util.moved`).

The bottom of the package: imports nothing of it.
"""
