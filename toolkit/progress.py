"""Progress of long work for the person (or the log) waiting on it: done, total, rate, ETA.

One `Reporter` interface (start, advance, finish) and four renderers, chosen by a
command's `--progress`: `bar` (a rich progress bar, for a terminal), `lines` (a plain line
at a steady interval and at the end: a log file or a CI job shows the work moving), `json`
(one object per line, fixed keys), `none`. `auto` is a bar when stderr is a terminal, lines
otherwise. Everything goes to stderr: stdout is the command's result, so --json stays
parseable.

The choice belongs to the process (`configured`), not to a parameter: the long loops sit
far below the command (a revision's shadow copy runs inside Alembic, called by frozen
revision files whose calls never change). Until a command configures it nothing is shown,
so plain `alembic upgrade` and library callers behave as before. A top-level utility:
toolkit/ops imports it, so rich is imported only inside the bar renderer.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TextIO

from toolkit.durations import Bounds

MODES = ("auto", "bar", "lines", "json", "none")
DEFAULT_INTERVAL = 5.0
INTERVAL = Bounds(0.01, 3600.0)  # --progress-interval
Clock = Callable[[], float]


@dataclass(frozen=True)
class Settings:
    mode: str = "none"
    interval: float = DEFAULT_INTERVAL  # seconds between two lines (lines, json)


_settings = Settings()


@contextmanager
def configured(settings: Settings) -> Iterator[None]:
    """Report progress as `settings` say while the block runs (a command's whole body)."""
    global _settings
    before, _settings = _settings, settings
    try:
        yield
    finally:
        _settings = before


def current() -> Settings:
    return _settings


class Reporter(Protocol):
    def start(self, total: int | None, unit: str, what: str) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def note(self, message: str) -> None:
        """Something the person watching must know now (the work paused, and why)."""

    def finish(self) -> None: ...


def reporter(
    settings: Settings | None = None, stream: TextIO | None = None, clock: Clock = time.monotonic
) -> Reporter:
    """A renderer for `settings` (default: the process's) writing to `stream` (stderr)."""
    settings = settings or _settings
    stream = stream or sys.stderr  # looked up now: a test runner may have replaced it
    mode = settings.mode
    if mode == "auto":
        mode = "bar" if _is_terminal(stream) else "lines"
    if mode == "bar":
        return BarReporter(stream)
    if mode == "lines":
        return LinesReporter(stream, settings.interval, clock)
    if mode == "json":
        return JsonReporter(stream, settings.interval, clock)
    return NoReporter()


@contextmanager
def tracking(what: str, total: int | None, unit: str) -> Iterator[Reporter]:
    """A reporter started on `what`, finished when the block ends, a failure included:
    the last line then says how far the work got."""
    shown = reporter()
    shown.start(total, unit, what)
    try:
        yield shown
    finally:
        shown.finish()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


@dataclass(frozen=True)
class Snapshot:
    """Where one piece of work stands."""

    what: str
    unit: str
    done: int
    total: int | None
    elapsed: float

    @property
    def rate(self) -> float | None:
        return self.done / self.elapsed if self.done and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if self.total is None or not rate:
            return None
        return max(self.total - self.done, 0) / rate

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0 * self.done / self.total, 100.0)

    def line(self, ended: bool = False) -> str:
        amount = f"{self.done:,}" + (f" / {self.total:,}" if self.total is not None else "")
        amount += f" {self.unit}"
        if self.percent is not None:
            amount += f" ({self.percent:.1f} %)"
        parts = [f"{self.what}: {'ended at ' if ended else ''}{amount}"]
        if self.rate is not None:
            parts.append(f"{rate_text(self.rate)} {self.unit}/s")
        if ended:
            parts.append(f"{seconds_text(self.elapsed)} elapsed")
        elif self.eta is not None:
            parts.append(f"ETA {seconds_text(self.eta)}")
        return ", ".join(parts)

    def document(self, event: str) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "event": event,
            "what": self.what,
            "unit": self.unit,
            "done": self.done,
            "total": self.total,
            "rate_per_s": rounded(self.rate),
            "eta_s": rounded(self.eta),
            "elapsed_s": rounded(self.elapsed),
        }


def rate_text(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"


def seconds_text(seconds: float) -> str:
    """21 s, 3 min 20 s, 2 h 05 min: an ETA for a person, not a timestamp."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class NoReporter:
    def start(self, total: int | None, unit: str, what: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finish(self) -> None:
        pass


class _Periodic:
    """Counts, and shows a snapshot at start, every `interval` seconds and once at the end."""

    def __init__(self, stream: TextIO, interval: float, clock: Clock) -> None:
        self.stream, self.interval, self.clock = stream, interval, clock
        self.what, self.unit = "", ""
        self.total: int | None = None
        self.done = 0
        self.started = self.shown_at = 0.0
        self.ended = False

    def start(self, total: int | None, unit: str, what: str) -> None:
        self.what, self.unit, self.total = what, unit, total
        self.started = self.shown_at = self.clock()
        self.show("start", self.snapshot())

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.clock() - self.shown_at >= self.interval:
            self.shown_at = self.clock()
            self.show("progress", self.snapshot())

    def finish(self) -> None:
        if not self.ended:
            self.ended = True
            self.show("finish", self.snapshot())

    def snapshot(self) -> Snapshot:
        return Snapshot(self.what, self.unit, self.done, self.total, self.clock() - self.started)

    def note(self, message: str) -> None:
        self.show_note(message, self.snapshot())

    def show_note(self, message: str, snapshot: Snapshot) -> None:
        raise NotImplementedError

    def write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()  # a line per interval is only useful if it arrives then

    def show(self, event: str, snapshot: Snapshot) -> None:
        raise NotImplementedError


class LinesReporter(_Periodic):
    def show(self, event: str, snapshot: Snapshot) -> None:
        self.write(snapshot.line(ended=event == "finish"))

    def show_note(self, message: str, snapshot: Snapshot) -> None:
        self.write(f"{snapshot.what}: {message}")


class JsonReporter(_Periodic):
    def show(self, event: str, snapshot: Snapshot) -> None:
        self.write(json.dumps(snapshot.document(event)))

    def show_note(self, message: str, snapshot: Snapshot) -> None:
        self.write(json.dumps({**snapshot.document("note"), "message": message}))


class BarReporter:
    """One task of a rich progress bar on stderr. Work nested in other work (a pre-flight
    inside a rollout) adds a task to the bar already shown: rich allows one live display."""

    _shared: ClassVar[Any] = None  # rich.progress.Progress while a task is shown
    _tasks: ClassVar[int] = 0

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.task: Any = None
        self.unit = ""

    def start(self, total: int | None, unit: str, what: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        if BarReporter._shared is None:
            BarReporter._shared = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            BarReporter._shared.start()
        BarReporter._tasks += 1
        self.unit = unit
        self.task = BarReporter._shared.add_task(what, total=total, rate=unit)

    def advance(self, n: int = 1) -> None:
        bar = BarReporter._shared
        if bar is None or self.task is None:
            return
        bar.advance(self.task, n)
        speed = next((t.speed for t in bar.tasks if t.id == self.task), None)
        rate = f"{rate_text(speed)} {self.unit}/s" if speed else self.unit
        bar.update(self.task, rate=rate)

    def note(self, message: str) -> None:
        bar = BarReporter._shared
        if bar is not None:
            bar.console.print(message)  # above the bar, which stays

    def finish(self) -> None:
        if self.task is None or BarReporter._shared is None:
            return
        self.task = None
        BarReporter._tasks -= 1
        if BarReporter._tasks == 0:
            BarReporter._shared.stop()
            BarReporter._shared = None
