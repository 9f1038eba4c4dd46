"""Errors with an exit code: config mistakes (2) are reported before any work starts."""


class ConfigError(Exception):
    """Invalid input or configuration. The message names the field and the fix; exit code 2."""

    exit_code = 2


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: stop the engines, keep what is committed, exit 128 + signal.

    A BaseException, so no `except Exception` on the way up swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum
