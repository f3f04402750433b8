"""The project's files read once per run of many databases (`venuedb fleet`).

verify's expected side (the release list, the revision graph, the postconditions, the
committed snapshot, the released-files manifest and the checksums of the files) is the
same for every database, and reading it was most of the Python time of one verify. While
`project_files_fixed()` is active, a function marked `@read_once` returns what its first
call with the same arguments returned; outside it (every other command) it reads again
on every call, as before. The values are shared between threads: callers only read them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_memo: dict[tuple[Any, ...], Any] | None = None
_switch = threading.Lock()


@contextmanager
def project_files_fixed() -> Iterator[None]:
    """The project's files are taken as unchanging until the block ends."""
    global _memo
    with _switch:
        outer = _memo
        _memo = {} if outer is None else outer
    try:
        yield
    finally:
        with _switch:
            _memo = outer


def read_once(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        memo = _memo
        if memo is None:
            return function(*args, **kwargs)
        key = (function.__module__, function.__qualname__, args, tuple(sorted(kwargs.items())))
        if key in memo:
            value: R = memo[key]
            return value
        # Two threads may both read it the first time: the same value, stored twice.
        value = function(*args, **kwargs)
        memo[key] = value
        return value

    return reading
