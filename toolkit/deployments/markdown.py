"""Deployment records as Markdown, after seed 002's "Deployment Record Template", with
seed 003's artifacts (output, schema diff, definitions, constraint timing)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class RecordStep:
    name: str
    started: datetime
    finished: datetime | None = None
    status: str = "running"  # ok | failed | skipped
    detail: str = ""

    @property
    def seconds(self) -> float:
        end = self.finished or datetime.now(UTC)
        return (end - self.started).total_seconds()


@dataclass
class Record:
    title: str
    release: str | None
    database: str
    actor: str
    os_user: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    steps: list[RecordStep] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    status: str = "RUNNING"

    def begin(self, name: str) -> RecordStep:
        step = RecordStep(name, datetime.now(UTC))
        self.steps.append(step)
        return step

    @staticmethod
    def end(step: RecordStep, status: str, detail: str = "") -> None:
        step.finished = datetime.now(UTC)
        step.status = status
        step.detail = detail


def render(record: Record) -> str:
    lines = [
        f"# {record.title}",
        "",
        f"**Date**: {record.started:%Y-%m-%d %H:%M:%S} UTC",
        f"**Deployer**: {record.actor} (OS user {record.os_user})",
        "**Reviewer**: _______________",
        f"**Database**: {record.database}",
    ]
    if record.release:
        lines.append(f"**Release**: {record.release}")
    lines += ["", "## Pre-Deployment Verification", ""]
    for key, value in record.facts.items():
        lines.append(f"- [x] {key}: {value}")
    lines += [
        "",
        "## Deployment Timeline",
        "",
        "| step | start (UTC) | end (UTC) | seconds | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in record.steps:
        end = f"{step.finished:%H:%M:%S}" if step.finished else "-"
        detail = f" ({step.detail})" if step.detail else ""
        lines.append(
            f"| {step.name} | {step.started:%H:%M:%S} | {end} | {step.seconds:.2f} | "
            f"{step.status}{detail} |"
        )
    lines += ["", "## Issues Encountered", ""]
    lines += [f"- {issue}" for issue in record.issues] or ["- none"]
    lines += ["", "## Monitoring Results", ""]
    if record.checks:
        lines += ["| check | status | value | thresholds |", "| --- | --- | --- | --- |"]
        for check in record.checks:
            limits = ", ".join(f"{k} {v}" for k, v in check["thresholds"].items() if v)
            value = "-" if check["value"] is None else check["value"]
            lines.append(f"| {check['name']} | {check['status']} | {value} | {limits} |")
    else:
        lines.append("- not run")
    for name, text in record.artifacts.items():
        lines += ["", f"## Artifact: {name}", "", "```", text.rstrip(), "```"]
    lines += ["", "## Status", "", f"**{record.status}**", ""]
    return "\n".join(lines)


def file_label(database_url: str) -> str:
    """The database name, safe in a file name: deployment ids and timestamps repeat across
    databases, so without it two databases would write the same file in one folder."""
    from toolkit.server.urls import database_name

    try:
        name = database_name(database_url)
    except ValueError:
        name = ""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "db"


def write(record: Record, directory: Path, deployment_id: int | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = record.release or record.title.split()[0].lower()
    suffix = f"-{deployment_id}" if deployment_id else ""
    stem = f"{record.started:%Y%m%dT%H%M%SZ}-{file_label(record.database)}-{name}{suffix}"
    text = render(record)
    # Exclusive create: same-named databases on two servers must still not overwrite.
    for attempt in range(1, 1000):
        path = directory / (f"{stem}.md" if attempt == 1 else f"{stem}-{attempt}.md")
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free record file name for {stem} in {directory}")


def records_dir() -> Path:
    """Where Markdown records go: $VENUEDB_RECORDS_DIR, else ./deployments (gitignored)."""
    import os

    return Path(os.environ.get("VENUEDB_RECORDS_DIR", "deployments"))


def simple(
    title: str,
    database: str,
    actor: str,
    *,
    release: str | None,
    status: str,
    steps: list[RecordStep],
    issues: list[str],
    lines: list[str] | None = None,
    facts: dict[str, str] | None = None,
    deployment_id: int | None = None,
) -> Path:
    """A record for apply, rollback, backfill and restore: what ran, in order, and how it
    ended. Steps carry the times they really ran; lines are the command's output."""
    import getpass

    try:
        os_user = getpass.getuser()
    except Exception:
        os_user = "unknown"
    started = steps[0].started if steps else datetime.now(UTC)
    record = Record(title, release, database, actor, os_user, started=started)
    record.facts.update(facts or {})
    record.steps.extend(steps)
    if lines:
        record.artifacts["command output"] = "\n".join(lines)
    record.issues.extend(issues)
    record.status = status
    return write(record, records_dir(), deployment_id)
