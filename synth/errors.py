"""Errors with an exit code: config mistakes (2) are reported before any work starts."""


class ConfigError(Exception):
    """Invalid input or configuration. The message names the field and the fix; exit code 2."""

    exit_code = 2
