"""The command's name, its exit codes and the errors it reports as one line on stderr."""

from __future__ import annotations

PROG = "enphase-battery"

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_RATE_LIMIT = 4
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI reports as one line on stderr with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Interrupted(Exception):
    """A stop signal arrived; the work stopped gracefully."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum
