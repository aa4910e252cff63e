"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UsageError(ValueError):
    """Bad input from a user: a flag, a config field, a file or a language code.

    The message is one line that names the offending value and what would be valid. The CLI prints
    it without a traceback and exits with status 2; library callers can catch it as ``ValueError``.
    """

    def __init__(self, message: str):
        # Keep it one line: multi-problem messages join with "; " rather than newlines.
        super().__init__(" ".join(str(message).split("\n")))


FULL = frozenset({28, 122})  # errno ENOSPC, EDQUOT: the storage has no room left


def storage_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the storage is full (no space left, or the quota is spent)."""
    return isinstance(exc, OSError) and (exc.errno in FULL or "No space left on device" in str(exc))
