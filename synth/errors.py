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


def interrupt_in(exc: BaseException) -> Interrupted | None:
    """The Interrupted an exception wraps, if any: a signal handler's exception raised while Ray's
    Cython code waits (`ray.wait` checks signals) comes back as a SystemError caused by it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class DiskFull(Exception):
    """The disk (or quota) filled up while a run wrote its directory: exit 1. Every committed slice is
    whole (written under a temporary name, then renamed), so freeing space and rerunning resumes."""

    exit_code = 1

    def __init__(self, out, cause: OSError):
        where = f" writing {cause.filename}" if cause.filename else ""
        super().__init__(f"no space left on the device{where} ({cause.strerror}); every committed slice is kept "
                         f"in {out}")
        self.cause = cause
