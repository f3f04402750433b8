"""Lint as a gate, in squawk's own terms.

`venuedb apply` and `venuedb rollout` lint the SQL of the revisions they are about to
apply, before anything changes, and refuse a finding nothing justifies (`--skip-lint
REASON` applies anyway and records the reason and the findings). `venuedb lint` runs the
same check over every revision, and `venuedb apply --sql` prints SQL that the squawk
binary, run on it directly as a reviewer's CI would, finds nothing unjustified in.

A justification is squawk's own comment, right above the statement (or on its line),
with the reason after a second `--`:

    -- squawk-ignore prefer-robust-stmts -- VALIDATE is idempotent, a rerun validates again

Released revisions carry the older form `-- lint: allow <rule>[, <rule>]: <why>`; they
are frozen, so that form is still accepted and translated, reason kept, into squawk's
form wherever SQL is linted or printed. A `squawk-ignore` without a reason, and a
`squawk-ignore-file` (which in `apply --sql` output would silence the rule for every
revision in the script), are findings themselves.

Line numbers point at the revision file (or the sql/ file, or the toolkit module whose
text it is) where the statement is written; when the text cannot be found there the
finding says so and gives the line of the revision's offline SQL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolkit.errors import OperationFailed
from toolkit.integrity.lint import Finding, offline_sql
from toolkit.paths import project_root, sql_dir
from toolkit.server.urls import masked_first_line

LEGACY = re.compile(r"--\s*lint:\s*allow\s+([a-z0-9,\s-]+?)\s*:\s*(\S.*)$")
IGNORE = re.compile(r"--\s*squawk-ignore(-file)?\b(.*)$")
IGNORE_RULES = re.compile(r"--\s*squawk-ignore\s+([a-z0-9,\s-]+?)(?:\s+--\s*(.*))?$")

FIXES = {
    "require-lock-timeout": "SET lock_timeout before the statement (the toolkit does per session)",
    "require-statement-timeout": "SET statement_timeout before the statement",
    "constraint-missing-not-valid": "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT "
    "outside the transaction (toolkit.ops.online.outside_transaction)",
    "require-concurrent-index-creation": "toolkit.ops.online.create_index_concurrently",
    "adding-field-with-default": "add the column without a volatile default, backfill in batches",
    "changing-column-type": "add a new column, backfill, swap",
    "adding-foreign-key-constraint": "ADD FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT",
    "ban-drop-constraint": "justify it, or use toolkit.ops.shadow_swap for an exclusion constraint",
    "squawk-ignore-without-reason": "say why after the rules: -- squawk-ignore <rule> -- <why>",
    "squawk-ignore-file": "justify each statement instead: -- squawk-ignore <rule> -- <why> "
    "right above it (in `venuedb apply --sql` output a file-level ignore would cover "
    "every revision)",
}
JUSTIFY = "or justify it right above the statement: -- squawk-ignore <rule> -- <why>"

# Squawk judges an Alembic script's transactions by the `UPDATE alembic_version` each
# holds once the script has one; a branch root's transaction holds an INSERT instead. A
# revision is linted the way it reads inside `venuedb apply --sql`, so one without an
# UPDATE gets this harmless transaction after its own.
_ALEMBIC_MODE = (
    "\nBEGIN;\nUPDATE alembic_version SET version_num='venuedb_lint' "
    "WHERE alembic_version.version_num = 'venuedb_lint';\nCOMMIT;\n"
)
_ALEMBIC_TABLE = "Alembic's own version table, created by Alembic, not by a revision"
_ROOT_TRANSACTION = (
    "in one transaction with this revision's INSERT INTO alembic_version (squawk "
    "recognises the version transaction by its UPDATE only)"
)


class LintRefused(OperationFailed):
    """Unjustified lint findings in what an apply or rollout was about to run (exit 1)."""

    status = "lint_failed"

    def __init__(self, findings: list[Finding], revisions: list[str], seconds: float) -> None:
        self.findings = findings
        self.revisions = revisions
        self.seconds = seconds
        super().__init__(
            f"lint refused {len(findings)} unjustified finding(s) in {', '.join(revisions)}; "
            "nothing was "
            "changed. Fix them, justify each knowing exception right above its statement "
            "(-- squawk-ignore <rule> -- <why>), or apply anyway with --skip-lint REASON "
            "(the reason and the findings are recorded)"
        )


@dataclass(frozen=True)
class Report:
    """One squawk finding on one text (line is 0-based)."""

    line: int
    rule: str
    message: str
    help: str = ""


# ---------------------------------------------------------------- squawk's own syntax


def translate(sql: str) -> str:
    """Every legacy justification rewritten in squawk's syntax, on the same line."""
    lines = sql.split("\n")
    for number, line in enumerate(lines):
        match = LEGACY.search(line)
        if match:
            rules = ", ".join(r.strip() for r in match[1].split(",") if r.strip())
            lines[number] = f"{line[: match.start()]}-- squawk-ignore {rules} -- {match[2]}"
    return "\n".join(lines)


def squawk_binary() -> str:
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if not found:
        raise OperationFailed(
            "squawk is not installed (pip install squawk-cli): the lint could not run, so "
            "nothing was checked. Install it, or apply anyway with --skip-lint REASON"
        )
    return found


def run_squawk(texts: dict[str, str]) -> dict[str, list[Report]]:
    """Squawk's findings in each text, in one run (keys are any names)."""
    if not texts:
        return {}
    with tempfile.TemporaryDirectory(prefix="venuedb-lint-") as tmp:
        paths: dict[str, str] = {}  # temporary file -> the caller's key
        for number, (key, text) in enumerate(texts.items()):
            path = Path(tmp) / f"{number:04d}.sql"
            path.write_text(text, encoding="utf-8")
            paths[str(path)] = key
        result = subprocess.run(
            [squawk_binary(), "--reporter", "json", *paths],
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        reports = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise OperationFailed(
            f"squawk gave no readable answer (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[:300]}; nothing was checked"
        ) from None
    found: dict[str, list[Report]] = {key: [] for key in texts}
    for report in reports:
        owner = paths.get(report.get("file", ""))
        if owner is None:
            continue
        found[owner].append(
            Report(
                int(report.get("line") or 0),
                str(report.get("rule_name") or "?"),
                str(report.get("message") or ""),
                str(report.get("help") or ""),
            )
        )
    return found


def _legacy_reason(lines: list[str], line: int, rule: str) -> str | None:
    """The legacy rule: a justification in the comment block right above, or on the line."""
    candidates = [line] if 0 <= line < len(lines) else []
    index = line - 1
    while index >= 0 and (lines[index].strip().startswith("--") or not lines[index].strip()):
        candidates.append(index)
        index -= 1
    for number in candidates:
        match = LEGACY.search(lines[number])
        if match and rule in {r.strip() for r in match[1].split(",")}:
            return match[2].strip()
    return None


def _statement_start(lines: list[str], line: int) -> int:
    """The first line of the statement holding `line` (after the previous `;`)."""
    index = line
    while index > 0 and not lines[index - 1].rstrip().endswith(";"):
        index -= 1
    while index < line and (not lines[index].strip() or lines[index].lstrip().startswith("--")):
        index += 1
    return index


def _structural_reason(lines: list[str], line: int, rule: str) -> str | None:
    """Findings the toolkit can prove harmless from the script's own structure."""
    start = _statement_start(lines, line)
    if re.match(r"\s*CREATE TABLE alembic_version\b", lines[start] if start < len(lines) else ""):
        return _ALEMBIC_TABLE
    if rule != "prefer-robust-stmts":
        return None
    # Inside BEGIN; ... COMMIT; (as Alembic writes them), with the INSERT in that block.
    begin = next(
        (i for i in range(line, -1, -1) if lines[i].rstrip() in ("BEGIN;", "COMMIT;")), None
    )
    if begin is None or lines[begin].rstrip() != "BEGIN;":
        return None
    for index in range(line, len(lines)):
        if lines[index].rstrip() in ("BEGIN;", "COMMIT;"):
            return None
        if lines[index].startswith("INSERT INTO alembic_version "):
            return _ROOT_TRANSACTION
    return None


def _hygiene(lines: list[str]) -> list[Report]:
    """Ignores that are not justifications: no reason given, or file-wide."""
    found = []
    for number, line in enumerate(lines):
        match = IGNORE.search(line)
        if match is None:
            continue
        if match[1]:
            found.append(
                Report(number, "squawk-ignore-file", "a file-level squawk-ignore in a revision")
            )
        elif "--" not in match[2] or not match[2].split("--", 1)[1].strip():
            found.append(
                Report(number, "squawk-ignore-without-reason", "a squawk-ignore with no reason")
            )
    return found


def _with_ignores(lines: list[str], extra: dict[int, list[tuple[str, str]]]) -> str:
    """lines with a squawk-ignore comment right above each line in `extra`. Squawk keeps
    one ignore per line, covering that line and the next: a comment line already above
    gets the rules merged in; an ignore at the end of a code line above, which the new
    line would push away, has its rules repeated in the new comment."""
    out = list(lines)
    for number in sorted(extra, reverse=True):
        rules = {rule for rule, _ in extra[number]}
        reasons = list(dict.fromkeys(reason for _, reason in extra[number]))
        above = IGNORE_RULES.search(out[number - 1]) if number > 0 else None
        if above:
            rules |= {r.strip() for r in above[1].split(",") if r.strip()}
            reasons = [above[2], *reasons] if above[2] else reasons
        comment = f"-- squawk-ignore {', '.join(sorted(rules))} -- {'; '.join(reasons)}"
        if above and out[number - 1][: above.start()].strip() == "":
            out[number - 1] = out[number - 1][: above.start()] + comment
            continue
        indent = out[number][: len(out[number]) - len(out[number].lstrip())]
        out.insert(number, indent + comment)
    return "\n".join(out)


def squawk_form(texts: dict[str, str]) -> dict[str, tuple[str, list[Report]]]:
    """Each SQL text as it should be printed (every justification in squawk's syntax,
    where squawk honours it) and the findings nothing justifies, line numbers of the
    original text. One squawk run for all."""
    translated = {key: translate(text) for key, text in texts.items()}
    linted = {
        key: text if "UPDATE alembic_version" in text else text + _ALEMBIC_MODE
        for key, text in translated.items()
    }
    reports = run_squawk(linted)
    answer = {}
    for key, text in translated.items():
        original = texts[key].split("\n")
        lines = text.split("\n")
        extra: dict[int, list[tuple[str, str]]] = {}
        remaining = _hygiene(lines)
        for report in reports.get(key, []):
            if report.line >= len(lines):
                continue  # the appended transaction
            reason = _legacy_reason(original, report.line, report.rule) or _structural_reason(
                lines, report.line, report.rule
            )
            if reason:
                extra.setdefault(report.line, []).append((report.rule, reason))
            else:
                remaining.append(report)
        answer[key] = (_with_ignores(lines, extra), sorted(remaining, key=lambda r: r.line))
    return answer


# ---------------------------------------------------------------- back to the source


def _pattern(text: str, fields: bool) -> str:
    """A regex for a line of source text; f-string fields match anything."""
    chunks = re.split(r"\{[^{}]*\}", text) if fields else [text]
    body = ".+?".join(r"\s+".join(re.escape(word) for word in c.split()) for c in chunks)
    # op.execute() ends a statement with the `;` its source text leaves out.
    return body if body.endswith(";") else body + ";?"


@lru_cache(maxsize=8192)
def _literal_pieces(line: str) -> tuple[str, ...]:
    """Patterns for a Python source line: the text of its string literals, split at \\n
    escapes, and the line itself (a line inside triple quotes), with f-string fields
    (a wildcard)."""
    pieces = []
    for match in re.finditer(r"([rRbBuUfF]{0,2})(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')", line):
        for part in match[2][1:-1].split("\\n"):
            pieces.append(_pattern(part, "f" in match[1].lower()))
    pieces += [_pattern(line.strip(), False), _pattern(line.strip(), True)]
    # Too little literal text to tell one line from another.
    return tuple(p for p in pieces if len(re.sub(r"\\.|\.\+\?|\\s\+|;\?$", "", p)) >= 8)


def _matches(source_line: str, sql_line: str, whole: bool) -> bool:
    target = " ".join(sql_line.split())
    if not target:
        return False
    test = re.fullmatch if whole else re.match
    return any(test(piece, target) for piece in _literal_pieces(source_line))


def _sources(revision_path: Path) -> list[Path]:
    """Where a revision's SQL is written: the revision, the sql/ files it installs, the
    toolkit modules it imports (which write SQL for it, e.g. the shadow swap)."""
    import toolkit

    text = revision_path.read_text(encoding="utf-8")
    found = [revision_path]
    for relative in re.findall(r"install_sql_file\(\s*[\"']([^\"']+)[\"']", text):
        found.append(sql_dir() / relative)
    package = Path(toolkit.__file__).parent
    for module in re.findall(r"^from toolkit\.([\w.]+) import", text, re.M):
        found.append(package / (module.replace(".", "/") + ".py"))
        found += _defined_in(f"toolkit.{module}")
    return list(dict.fromkeys(p for p in found if p.is_file()))


def _defined_in(module_name: str) -> list[Path]:
    """The files that define what `module_name` offers: a released revision imports the
    compatibility module toolkit.shadow_swap, whose code (and SQL) is in toolkit/ops/."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    files = []
    for value in vars(module).values():
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.startswith(
            "toolkit."
        ):
            source = inspect.getsourcefile(value)
            if source:
                files.append(Path(source))
    return sorted(set(files))


def locate(revision_path: Path, sql_lines: list[str], line: int) -> tuple[Path, int] | None:
    """The file and 1-based line where offline SQL line `line` (0-based) is written: a
    whole-line match first, else a source line the SQL line starts with (a string
    literal continued on the next source line)."""
    sources = [(p, p.read_text(encoding="utf-8").splitlines()) for p in _sources(revision_path)]
    for whole in (True, False):
        for source, lines in sources:
            hits = [n for n, text in enumerate(lines) if _matches(text, sql_lines[line], whole)]
            # The SQL linted is the upgrade's: a hit in downgrade() only when none is before.
            end = next(
                (n for n, text in enumerate(lines) if text.startswith("def downgrade")), None
            )
            if end is not None and any(h < end for h in hits):
                hits = [h for h in hits if h < end]
            if hits:
                return source, _nearest(lines, hits, sql_lines, line) + 1
    return None


def _nearest(lines: list[str], hits: list[int], sql_lines: list[str], line: int) -> int:
    """Of several hits (the same text in upgrade and downgrade, or for two tables), the
    one closest after the nearest earlier SQL line that is found in the same file."""
    if len(hits) == 1:
        return hits[0]
    for back in range(line - 1, max(-1, line - 40), -1):
        anchors = [n for n, text in enumerate(lines) if _matches(text, sql_lines[back], False)]
        pairs = [(h - a, h) for h in hits for a in anchors if a < h]
        if pairs:
            return min(pairs)[1]
    return hits[0]


def _relative(path: Path) -> str:
    import toolkit

    for base in (project_root(), Path(toolkit.__file__).parent.parent):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def _finding(revision: str, revision_path: Path, lines: list[str], report: Report) -> Finding:
    place = locate(revision_path, lines, report.line) if report.line < len(lines) else None
    if place is not None:
        file, line = _relative(place[0]), place[1]
        where = ""
    else:
        file, line = f"{_relative(revision_path)} (offline SQL)", report.line + 1
        where = f" [offline SQL line {report.line + 1}: the statement's text is not in the source]"
    fix = FIXES.get(report.rule) or (f"{report.help}; " if report.help else "") + JUSTIFY
    return Finding(
        "squawk",
        file,
        line,
        report.rule,
        f"{revision}: {report.message}{where}",
        f"{fix} (https://squawkhq.com/docs/{report.rule})"
        if not report.rule.startswith("squawk-ignore")
        else fix,
    )


def findings_by_revision(revisions: Iterable[str]) -> dict[str, list[Finding]]:
    """Unjustified squawk findings in each revision's offline SQL (upgrade). A revision
    that cannot produce offline SQL cannot be linted: that is a finding too."""
    from toolkit.engine import revisions as revs

    script = revs.script_directory()
    texts, found = {}, {}
    for rev in revisions:
        path = Path(script.get_revision(rev).path)
        try:
            texts[rev] = offline_sql(rev)
        except Exception as exc:
            first = masked_first_line(exc)
            found[rev] = [
                Finding(
                    "squawk",
                    _relative(path),
                    0,
                    "offline-sql",
                    f"{rev}: its offline SQL could not be produced, so it was not linted: {first}",
                    "make upgrade() work offline (`venuedb apply --sql`), as every revision does",
                )
            ]
    for rev, (_, reports) in squawk_form(texts).items():
        path = Path(script.get_revision(rev).path)
        lines = texts[rev].split("\n")
        found[rev] = [_finding(rev, path, lines, report) for report in reports]
    return found


def findings(revisions: Iterable[str]) -> list[Finding]:
    return [f for found in findings_by_revision(revisions).values() for f in found]


# ---------------------------------------------------------------- the gate


@dataclass
class LintGate:
    """Checks revisions once each; refuses unjustified findings unless skip_reason."""

    skip_reason: str | None = None
    emit: Callable[[str, str], None] | None = None
    found: dict[str, list[Finding]] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, revisions: Iterable[str]) -> None:
        """Lint what was not linted yet; raise LintRefused unless skip_reason."""
        asked = list(revisions)
        wanted = [r for r in asked if r not in self.found]
        if wanted:
            started = time.monotonic()
            try:
                self.found.update(findings_by_revision(wanted))
            except OperationFailed as exc:  # squawk missing or unreadable: nothing checked
                if not self.skip_reason:
                    raise
                for rev in wanted:
                    self.found[rev] = [Finding("squawk", rev, 0, "lint-not-run", str(exc))]
            self.seconds += time.monotonic() - started
            if self.emit is not None:
                self.emit("info", f"lint: {self.summary(wanted)}")
        unjustified = [f for rev in asked for f in self.found.get(rev, [])]
        if unjustified and not self.skip_reason:
            failing = [rev for rev in asked if self.found.get(rev)]
            raise LintRefused(unjustified, failing, self.seconds)

    def summary(self, revisions: list[str]) -> str:
        count = sum(len(self.found.get(r, [])) for r in revisions)
        said = f"squawk on {len(revisions)} pending revision(s) in {self.seconds:.2f} s: " + (
            f"{count} unjustified finding(s)" if count else "clean"
        )
        if count and self.skip_reason:
            said += f", applied anyway (--skip-lint: {self.skip_reason})"
        return said

    def clean(self, revisions: Iterable[str]) -> bool:
        return not any(self.found.get(rev) for rev in revisions)

    def issues(self, revisions: Iterable[str]) -> list[str]:
        """What a record must say about skipped findings (nothing when there were none)."""
        wanted = list(revisions)
        skipped = [f for rev in wanted for f in self.found.get(rev, [])]
        if not skipped:
            return []
        return [
            f"lint findings NOT fixed, applied with --skip-lint: {self.skip_reason}",
            *(f"lint {f.file}:{f.line} {f.rule}: {f.message}" for f in skipped),
        ]

    def to_dict(self, revisions: Iterable[str]) -> dict[str, Any]:
        wanted = list(revisions)
        return {
            "revisions": wanted,
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for rev in wanted for f in self.found.get(rev, [])],
            "skipped": self.skip_reason,
        }
