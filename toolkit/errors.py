"""Errors the CLI turns into exit codes, never into tracebacks."""

from __future__ import annotations


class VenuedbError(Exception):
    """An expected failure: the message says what failed, the state, and what to run next."""

    exit_code = 1
    # The top-level "status" of the --json document: a machine tells the kinds apart
    # without parsing the message.
    status = "failed"


class OperationFailed(VenuedbError):
    """A check or an operation failed (exit 1)."""

    exit_code = 1


class BadInput(VenuedbError):
    """Unknown target, malformed file or URL, unreachable database (exit 2)."""

    exit_code = 2
    status = "bad_input"


class LockBusy(VenuedbError):
    """Another deploy holds the lock, or a lock could not be had in time (exit 4)."""

    exit_code = 4
    status = "locked"
