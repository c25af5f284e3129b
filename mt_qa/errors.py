"""Error types that the CLI turns into one clear message instead of a traceback."""

from __future__ import annotations


class MtqaError(Exception):
    """A user-facing error: bad input, bad option, missing model. Printed without a traceback."""


class InputError(MtqaError):
    """Bad input data, located by file and record so the user can find and fix it."""

    def __init__(self, source: str, location: str, reason: str, detail: str = ""):
        self.source = source
        self.location = location
        self.reason = reason
        self.detail = detail
        msg = f"{source}: {location}: {reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class ShardStoreError(MtqaError):
    """A shard directory that is missing, corrupt or inconsistent."""
