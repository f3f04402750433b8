"""`venuedb lint`'s distribution check: every revision, on the catalog, against
migrations/distribution.toml (issue 22; the rules: toolkit/integrity/distribution_rules.py).

A scratch database is migrated revision by revision, and after each one the whole catalog
is judged: a violation that appears, or whose object (constraint, index, column) the
revision changed, is that revision's. One that a later revision fixes is an informational
line ("booking_001 public.bookings bookings_pkey ...: fixed by booking_018") and does not
fail; one still there at the heads is a finding (rule `distribution-key`) unless an
[[exception]] of the file names it, with its reason. An exception that matches nothing at
the heads, and a classified table that no revision creates, are findings too: the file
cannot rot. Every exception, reference and local table is reported with its reason.

Where the scratch database lives: on `--scratch-url`'s server when given (CI with a
PostgreSQL service, or a server where the role may CREATE DATABASE), else on a throwaway
embedded server started for the check and removed after it (toolkit.server.embedded), so
`venuedb lint` and `make lint` need no PostgreSQL of their own, as a CI lint job has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput, OperationFailed
from toolkit.integrity.distribution_plan import (
    LOCAL,
    REFERENCE,
    AcceptedFinding,
    Classification,
    distribution_file,
    load,
)
from toolkit.integrity.distribution_rules import Violation, read_tables, violations
from toolkit.integrity.lint import Finding, relative_path

RULE = "distribution-key"
BEFORE = "(applied before)"  # the state a walk starts from, when its database was not empty
FIX = (
    "a new revision that includes the tenant key (docs/citus.md), or an exception entry "
    "(table, object, reason) for it in migrations/distribution.toml"
)
# Violations of a column or of the whole table: found at the table's CREATE TABLE line.
_TABLE_KINDS = {"unclassified", "key-missing", "key-nullable"}


@dataclass
class State:
    """The violations after one revision (None: before the first)."""

    revision: str | None
    found: dict[tuple[str, str, str], Violation]


@dataclass
class Walk:
    states: list[State]
    tables: list[str]  # the tables at the heads


@dataclass
class Occurrence:
    """A violation a revision created or changed, and the revision that fixed it."""

    revision: str
    violation: Violation
    fixed_by: str | None = None

    def line(self) -> str:
        v = self.violation
        return f"{self.revision} {v.table} {v.object} ({v.kind}): fixed by {self.fixed_by}"

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "fixed_by": self.fixed_by, **self.violation.to_dict()}


@dataclass
class DistributionReport:
    classification: Classification
    revisions: list[str]
    failing: list[Occurrence] = field(default_factory=list)  # at the heads, no exception
    accepted: list[tuple[Occurrence, AcceptedFinding]] = field(default_factory=list)
    fixed: list[Occurrence] = field(default_factory=list)
    file_findings: list[Finding] = field(default_factory=list)  # stale entries of the file

    def findings(self) -> list[Finding]:
        return [_finding(o) for o in self.failing] + self.file_findings

    def lines(self) -> list[str]:
        """What a person reads besides the findings: fixed violations, every exception,
        reference and local table with its reason."""
        c = self.classification
        said = [f"distribution: {len(self.revisions)} revision(s) checked one by one"]
        said += [f"distribution: {o.line()}" for o in self.fixed]
        said += [
            f"distribution: exception {o.violation.table} {o.violation.object} "
            f"({o.violation.kind}, since {o.revision}): {e.reason}"
            for o, e in self.accepted
        ]
        for kind in (REFERENCE, LOCAL):
            said += [
                f"distribution: {kind} {t['table']}: {t['reason']}" for t in c.with_reasons(kind)
            ]
        said += [
            f"distribution: local schema {schema}: {reason}"
            for schema, reason in sorted(c.local_schemas.items())
        ]
        return said

    def to_dict(self) -> dict[str, Any]:
        return {
            "revisions_checked": self.revisions,
            "classification": self.classification.to_dict(),
            "fixed_later": [o.to_dict() for o in self.fixed],
            "exceptions": [{**o.to_dict(), "reason": e.reason} for o, e in self.accepted],
            "violations": [o.to_dict() for o in self.failing],
        }


def check(scratch_url: str | None = None) -> DistributionReport:
    """Migrate a scratch database revision by revision and judge it (see the module)."""
    import psycopg

    from toolkit.server.scratch import scratch_database
    from toolkit.server.urls import masked_first_line

    classification = load()
    with _server(scratch_url) as server, ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(server, "venuedb_lint_"))
        except psycopg.Error as exc:
            raise BadInput(
                f"cannot create a scratch database for the distribution check "
                f"({masked_first_line(exc)}); nothing was checked: give --scratch-url URL, "
                "a server where this role may CREATE DATABASE"
            ) from None
        found = walk(url, classification)
    return judge(found, classification)


@contextmanager
def _server(scratch_url: str | None) -> Iterator[str]:
    if scratch_url:
        from toolkit.server.urls import validate_url

        yield validate_url(scratch_url)
        return
    from toolkit.server.embedded import temporary_server

    with temporary_server() as url:
        yield url


def walk(url: str, classification: Classification) -> Walk:
    """Apply the revisions pending on `url`'s database one at a time, judging the catalog
    before the first and after each."""
    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import RunOptions, current_heads, run
    from toolkit.server import connection as db
    from toolkit.server.urls import masked_first_line

    target = db.Target(url, "distribution check (scratch)")
    with db.connect(target, purpose="lint (distribution)") as conn:
        states = [State(None, violations(conn, classification))]
        for step in revs.plan("upgrade", "heads", current_heads(conn)):
            try:
                run(target, "upgrade", step.revision, RunOptions(actor="venuedb lint"))
            except Exception as exc:
                raise OperationFailed(
                    f"the distribution check could not apply {step.revision} to its scratch "
                    f"database: {masked_first_line(exc)}; nothing after it was checked"
                ) from None
            states.append(State(step.revision, violations(conn, classification)))
        tables = [t.name for t in read_tables(conn, sorted(classification.local_schemas))]
    return Walk(states, tables)


def judge(walked: Walk, classification: Classification) -> DistributionReport:
    states = walked.states
    report = DistributionReport(
        classification, [s.revision for s in states if s.revision is not None]
    )
    heads = states[-1].found
    latest: dict[tuple[str, str, str], Occurrence] = {}
    for index, state in enumerate(states):
        before = states[index - 1].found if index else {}
        for key, violation in state.found.items():
            if key in before and before[key].definition == violation.definition:
                continue  # neither created nor changed by this revision
            occurrence = Occurrence(state.revision or BEFORE, violation)
            occurrence.fixed_by = next(
                (s.revision for s in states[index + 1 :] if key not in s.found), None
            )
            if occurrence.fixed_by is not None:
                report.fixed.append(occurrence)
            latest[key] = occurrence
    exceptions = {(e.table, e.object): e for e in classification.exceptions}
    used = set()
    for key in sorted(heads):
        occurrence = latest[key]
        accepted = exceptions.get(key[:2])
        if accepted is None:
            report.failing.append(occurrence)
        else:
            used.add(key[:2])
            report.accepted.append((occurrence, accepted))
    report.file_findings = _stale_entries(
        classification, walked.tables, [e for k, e in exceptions.items() if k not in used]
    )
    return report


def _stale_entries(
    classification: Classification, tables: list[str], unused: list[AcceptedFinding]
) -> list[Finding]:
    """Entries of the file that judge nothing: they would hide a future mistake."""
    path = distribution_file()
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    found = [
        Finding(
            "distribution",
            relative_path(path),
            _line_of(text, name),
            RULE,
            f"{name} is classified in migrations/distribution.toml but no revision creates it",
            "remove the entry, or correct the table's name",
        )
        for name in sorted(set(classification.tables) - set(tables))
    ]
    found += [
        Finding(
            "distribution",
            relative_path(path),
            _line_of(text, e.object),
            RULE,
            f"the exception for {e.table} {e.object} matches no violation at the heads",
            "remove the exception (what it excused was fixed), or correct its table or object",
        )
        for e in unused
    ]
    return found


def _finding(occurrence: Occurrence) -> Finding:
    """A violation at the heads, at the line of the revision that created or last changed
    its object (the classification file for an unclassified table)."""
    v = occurrence.violation
    if v.kind == "unclassified" or occurrence.revision == BEFORE:
        path = distribution_file()
    else:
        from toolkit.engine import revisions as revs

        path = Path(revs.script_directory().get_revision(occurrence.revision).path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    table = v.table.split(".")[-1]
    line = 0 if v.kind in _TABLE_KINDS else _line_of(text, v.object)
    return Finding(
        "distribution",
        relative_path(path),
        # A name PostgreSQL chose (bookings_pkey) is not written: the table's line then.
        line or _table_line(text, table),
        RULE,
        f"{occurrence.revision}: {v.table} {v.object}: {v.message}",
        "classify it in migrations/distribution.toml" if v.kind == "unclassified" else FIX,
    )


def _line_of(text: str, name: str) -> int:
    """The first line naming `name` as a whole word (0: not written there, e.g. a
    constraint name PostgreSQL chose)."""
    pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)), 0)


def _table_line(text: str, table: str) -> int:
    """The line of the table's CREATE TABLE, else the first line naming it."""
    create = re.compile(
        rf"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(\w+\.)?{re.escape(table)}\b", re.I
    )
    found = next((n for n, line in enumerate(text.splitlines(), 1) if create.search(line)), 0)
    return found or _line_of(text, table)
