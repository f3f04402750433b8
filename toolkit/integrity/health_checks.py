"""Health checks: one query per file in sql/checks/, its metadata in a comment header.

    -- name: orphaned_confirmed_bookings        (must equal the file name)
    -- domain: booking                          (booking | bar | core)
    -- severity: critical                       (what a breach means: info|warning|critical)
    -- warning: > 0                             (optional; > >= < <= = N, or outside A..B)
    -- critical: > 0                            (optional, same grammar)
    -- unit: bookings
    -- returns: value                           (value: first column of the first row;
    --                                           rows: the row count, first rows shown;
    --                                           explain: the query's plan must use `index`)
    -- index: idx_bars_operating_mode           (returns: explain only)
    -- requires: public.sales.server_id         (optional: not applicable until these exist)
    -- no_data: ok, no bars: nothing to adopt   (optional: no data is fine here, and why)
    -- window: 10m                              (optional: the look-back, the seed's alert
    --                                           window; s, m, h or d; default 1d; only for
    --                                           a query that reads venuedb.lookback)
    -- for: 10m                                 (optional: how long a breach lasts before
    --                                           the generated Prometheus alert fires; 0s)
    -- description: ...
    -- runbook: runbooks/alerts.md#<check>      (the section that says what to do)

Status per check: ok, warning, critical (a threshold breached), error (SQL error or
timeout), or no_data: a `returns: value` query gave no row or NULL (a rate over zero
events), so nothing was measured and the check cannot say the system is healthy. A check
whose silence is itself the healthy answer declares `no_data: ok, <why>` and is then ok
with a null value and a note saying so. For `returns: rows` the row count is the value:
no rows is 0, a measurement. A check whose `requires:` objects are missing is ok with a
note (not applicable: what it guards does not exist yet); every check names the tables its
query reads there. A run that checked nothing applicable, or where a check asked for by
name does not apply, is no_data overall: it could not say the system is healthy.

Checks run in one READ ONLY transaction, each under its own statement_timeout in a
savepoint, so a broken or slow check reports `error` and the others still run. Each
check looks back over its own window (its `window:` header, else 1d; `--window`
overrides every check's): the transaction-local setting venuedb.lookback, set inside the
check's savepoint and read in SQL as current_setting('venuedb.lookback')::interval, so a
check file also runs unchanged in psql after `SET venuedb.lookback = '10 minutes'`
(not venuedb.window: WINDOW is a reserved word, and `SET venuedb.window` is a syntax error). A
query that reads no window looks at every row (an orphan is an orphan however old), and
its window shows as null.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.paths import sql_dir
from toolkit.server import connection as db
from toolkit.server.urls import masked_first_line

REQUIRED = ("name", "domain", "severity", "unit", "returns", "description", "runbook")
OPTIONAL = ("warning", "critical", "requires", "index", "no_data", "window", "for")
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.*)$")
_NO_DATA = re.compile(r"^ok\s*[,;:]\s*(?P<why>\S.*)$")
_THRESHOLD = re.compile(
    r"^(?:(?P<op>>=|<=|>|<|=)\s*(?P<n>-?\d+(?:\.\d+)?)|outside\s+(?P<lo>-?\d+(?:\.\d+)?)"
    r"\s*\.\.\s*(?P<hi>-?\d+(?:\.\d+)?))$"
)

_DURATION = re.compile(r"^\s*(?P<n>\d{1,6})\s*(?P<unit>[smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# A century: now() - the window stays a valid timestamp, and nobody means more.
_LONGEST = 36500 * 86400


@dataclass(frozen=True)
class Duration:
    """A window or `for` length as written: an amount and one unit (s, m, h, d)."""

    amount: int
    unit: str

    @property
    def text(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def seconds(self) -> int:
        return self.amount * _UNIT_SECONDS[self.unit]

    def postgres(self) -> str:
        """The interval venuedb.lookback holds, in the unit written ('10 minutes')."""
        return f"{self.amount} {_UNIT_WORDS[self.unit]}"

    def whole_days(self) -> int:
        """venuedb.days for files that still read it: the window rounded up, at least 1."""
        return max(1, math.ceil(self.seconds / 86400))


DEFAULT_WINDOW = Duration(1, "d")
NO_WAIT = Duration(0, "s")


def parse_duration(text: str, *, what: str, zero_allowed: bool = False) -> Duration:
    """`10m`, `1h`, `2d`: a whole number and a unit; BadInput (naming `what`) otherwise."""
    match = _DURATION.match(str(text))
    shape = "a whole number with a unit s, m, h or d, e.g. 10m, 1h, 1d" + (
        ", or 0s" if zero_allowed else ""
    )
    if match is None:
        raise BadInput(f"{what}: {text!r} is not a duration ({shape})")
    duration = Duration(int(match["n"]), match["unit"])
    if duration.seconds == 0 and not zero_allowed:
        raise BadInput(f"{what}: {text!r} must be positive ({shape})")
    if duration.seconds > _LONGEST:
        raise BadInput(f"{what}: {text!r} is longer than 36500d")
    return duration


def window_option(window: str | None, days: int | None) -> Duration | None:
    """The `--window` / `--days` override of every check's window (None: each its own).
    `--days N` is `--window Nd`; both at once, or a bad value, is BadInput."""
    if window is not None and days is not None:
        raise BadInput("give --window or --days, not both (--days N is --window Nd)")
    if days is not None:
        if days < 1:
            raise BadInput(f"--days must be at least 1, got {days}")
        return parse_duration(f"{days}d", what="--days")
    if window is not None:
        return parse_duration(window, what="--window")
    return None


@dataclass(frozen=True)
class Threshold:
    text: str

    def breached(self, value: float) -> bool:
        match = _THRESHOLD.match(self.text)
        assert match is not None
        if match["op"]:
            n = float(match["n"])
            return {
                ">": value > n,
                ">=": value >= n,
                "<": value < n,
                "<=": value <= n,
                "=": value == n,
            }[match["op"]]
        return not float(match["lo"]) <= value <= float(match["hi"])

    def bounds(self) -> list[tuple[str, float]]:
        """(op, number) pairs; `outside A..B` is two: ("<", A) and (">", B)."""
        match = _THRESHOLD.match(self.text)
        assert match is not None
        if match["op"]:
            return [(match["op"], float(match["n"]))]
        return [("<", float(match["lo"])), (">", float(match["hi"]))]


@dataclass(frozen=True)
class HealthCheck:
    name: str
    path: Path
    domain: str
    severity: str
    unit: str
    returns: str
    description: str
    runbook: str
    sql: str
    warning: Threshold | None = None
    critical: Threshold | None = None
    requires: tuple[str, ...] = ()
    index: str | None = None
    no_data_ok: str | None = None  # why no data is fine for this check; None: it is not
    window: Duration = DEFAULT_WINDOW
    for_: Duration = NO_WAIT  # how long a breach lasts before the Prometheus alert fires
    # Which setting the query reads: "window", "days" (a file not yet converted: whole
    # days only), or None (it looks at every row, so no window applies).
    reads: str | None = "window"

    def thresholds(self) -> dict[str, str | None]:
        return {
            "warning": self.warning.text if self.warning else None,
            "critical": self.critical.text if self.critical else None,
        }

    def effective_window(self, override: Duration | None = None) -> Duration | None:
        """The window the query really looks back over: None when it reads none; whole
        days for a file that still reads venuedb.days (--window 10m is then 1 day)."""
        if self.reads is None:
            return None
        window = override or self.window
        return window if self.reads == "window" else Duration(window.whole_days(), "d")


def parse(path: Path) -> HealthCheck:
    """Read one check file; BadInput names the file and line of a malformed header."""
    meta: dict[str, str] = {}
    durations: dict[str, Duration] = {}
    body: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if body or not line.startswith("--"):
            body.append(line)
            continue
        match = _HEADER.match(line)
        if match is None:
            continue  # a plain comment inside the header
        key, value = match[1], match[2].strip()
        if key not in REQUIRED + OPTIONAL:
            raise BadInput(f"{path}:{number}: unknown header field {key!r}")
        if key in ("warning", "critical") and not _THRESHOLD.match(value):
            raise BadInput(
                f"{path}:{number}: malformed threshold {value!r} "
                "(examples: > 0, < 90, outside 5..15)"
            )
        if key == "no_data" and not _NO_DATA.match(value):
            raise BadInput(
                f"{path}:{number}: no_data must be `ok, <why no data is fine>`, not {value!r}"
            )
        if key in ("window", "for"):
            durations[key] = parse_duration(
                value, what=f"{path}:{number}: {key}", zero_allowed=key == "for"
            )
        meta[key] = value
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise BadInput(f"{path}:1: header lacks {', '.join(missing)}")
    if meta["name"] != path.stem:
        raise BadInput(f"{path}:1: name {meta['name']!r} differs from the file name")
    if meta["returns"] not in ("value", "rows", "explain"):
        raise BadInput(f"{path}:1: returns must be value, rows or explain")
    if meta["severity"] not in ("info", "warning", "critical"):
        raise BadInput(f"{path}:1: severity must be info, warning or critical")
    if meta["returns"] == "explain" and "index" not in meta:
        raise BadInput(f"{path}:1: returns: explain needs an index: field")
    sql = "\n".join(body).strip().rstrip(";")
    if not sql:
        raise BadInput(f"{path}: no query after the header")
    requires = tuple(r.strip() for r in meta.get("requires", "").split(",") if r.strip())
    for item in requires:
        if len(item.split(".")) not in (2, 3):
            raise BadInput(
                f"{path}:1: requires {item!r}: name a table or view as schema.name, "
                "a column as schema.table.column"
            )
    reads = _setting_read(sql)
    if "window" in durations and reads is None:
        raise BadInput(
            f"{path}:1: window: {meta['window']} but the query never reads "
            "current_setting('venuedb.lookback'): the header would change nothing"
        )
    return HealthCheck(
        name=meta["name"],
        path=path,
        domain=meta["domain"],
        severity=meta["severity"],
        unit=meta["unit"],
        returns=meta["returns"],
        description=meta["description"],
        runbook=meta["runbook"],
        sql=sql,
        warning=Threshold(meta["warning"]) if "warning" in meta else None,
        critical=Threshold(meta["critical"]) if "critical" in meta else None,
        requires=requires,
        index=meta.get("index"),
        no_data_ok=_why_no_data_is_fine(meta.get("no_data")),
        window=durations.get("window", DEFAULT_WINDOW),
        for_=durations.get("for", NO_WAIT),
        reads=reads,
    )


def _setting_read(sql: str) -> str | None:
    if "venuedb.lookback" in sql:
        return "window"
    # venuedb.days is kept for files not yet converted to venuedb.lookback.
    return "days" if "venuedb.days" in sql else None


def _why_no_data_is_fine(value: str | None) -> str | None:
    match = _NO_DATA.match(value) if value else None
    return match["why"].strip() if match else None


def checks_dir() -> Path:
    return sql_dir() / "checks"


def load_checks(directory: Path | None = None) -> list[HealthCheck]:
    return [parse(p) for p in sorted((directory or checks_dir()).glob("*.sql"))]


def select(checks: list[HealthCheck], names: list[str], domain: str | None) -> list[HealthCheck]:
    """The checks asked for; BadInput (listing the valid ones) for an unknown name or
    domain, and for a choice that selects nothing: zero checks run is not a green."""
    known = [c.name for c in checks]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInput(
            f"unknown check(s) {', '.join(unknown)}{_did_you_mean(unknown, known)}; "
            f"the checks are: {', '.join(known)}"
        )
    domains = sorted({c.domain for c in checks})
    if domain is not None and domain not in domains:
        raise BadInput(
            f"unknown domain {domain!r}{_did_you_mean([domain], domains)}; "
            f"the domains are: {', '.join(domains)}"
        )
    chosen = [c for c in checks if (not names or c.name in names)]
    if domain is not None:
        chosen = [c for c in chosen if c.domain == domain]
    if not chosen and names:
        raise BadInput(
            f"none of {', '.join(names)} is in domain {domain}: nothing would be checked; "
            "see `venuedb check --list`"
        )
    if not chosen:
        raise BadInput(f"no check file in {checks_dir()}: nothing would be checked")
    return chosen


def _did_you_mean(asked: list[str], valid: list[str]) -> str:
    import difflib

    close = [m for a in asked for m in difflib.get_close_matches(a, valid, n=1)]
    return f" (did you mean {', '.join(close)}?)" if close else ""


@dataclass
class CheckResult:
    check: HealthCheck
    status: str  # ok | warning | critical | error | no_data
    value: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    ms: float = 0.0
    empty: bool = False  # the query measured nothing (also when the check declares that fine)
    applicable: bool = True  # False: what the check guards does not exist here (yet)
    window: Duration | None = None  # the look-back the query ran with; None: every row

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.check.name,
            "domain": self.check.domain,
            "status": self.status,
            "value": self.value,
            "unit": self.check.unit,
            "severity": self.check.severity,
            "window": self.window.text if self.window else None,
            "window_seconds": self.window.seconds if self.window else None,
            "for": self.check.for_.text,
            "thresholds": self.check.thresholds(),
            "rows": self.rows,
            "error": self.error,
            "note": self.note,
            "no_data": self.empty,
            "applicable": self.applicable,
            "runbook": self.check.runbook,
            "description": self.check.description,
            "ms": round(self.ms, 1),
        }


def _grade(check: HealthCheck, value: float | None) -> str:
    if value is None:
        # Nothing was measured (no row, or a rate over zero events): not a breach, and
        # not a pass either, unless the check says its silence is the healthy answer.
        return "ok" if check.no_data_ok else "no_data"
    if check.critical and check.critical.breached(value):
        return "critical"
    if check.warning and check.warning.breached(value):
        return "warning"
    return "ok"


# The `requires:` items that do not exist, all checks' in one round trip: a table or view
# (schema.name) or a column (schema.table.column). Read from the catalogs, not with
# to_regclass(), which raises for a schema the role may not use: such a check runs and
# reports its permission error.
MISSING_SQL = """
SELECT item
FROM unnest(%s::text[]) AS item
WHERE NOT EXISTS (
    SELECT 1
    FROM pg_catalog.pg_class AS c
    INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
    WHERE n.nspname = split_part(item, '.', 1)
      AND c.relname = split_part(item, '.', 2)
      AND (
          split_part(item, '.', 3) = ''
          OR EXISTS (
              SELECT 1 FROM pg_catalog.pg_attribute AS a
              WHERE a.attrelid = c.oid
                AND a.attname = split_part(item, '.', 3)
                AND NOT a.attisdropped
          )
      )
)
"""


def _missing(conn: Any, checks: list[HealthCheck]) -> set[str]:
    items = sorted({item for check in checks for item in check.requires})
    if not items:
        return set()
    return {row[0] for row in conn.execute(MISSING_SQL, (items,)).fetchall()}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    raise TypeError(f"the check returned {type(value).__name__}, not a number")


def _run_one(
    conn: Any, check: HealthCheck, timeout_ms: int, override: Duration | None, missing: set[str]
) -> CheckResult:
    import psycopg

    started = time.perf_counter()
    result = CheckResult(check, "error", None, window=check.effective_window(override))
    window = override or check.window
    absent = [item for item in check.requires if item in missing]
    if absent:
        result.status, result.note = "ok", f"not applicable: {', '.join(absent)} missing"
        result.applicable = False
        result.ms = (time.perf_counter() - started) * 1000
        return result
    try:
        with conn.transaction():  # a savepoint inside the read-only transaction
            # This check's own window and timeout, local to the transaction: the next
            # check sets its own. venuedb.days is kept for files not yet converted to
            # venuedb.lookback.
            conn.execute(
                "SELECT set_config('venuedb.lookback', %s, true), "
                "set_config('venuedb.days', %s, true), "
                "set_config('statement_timeout', %s, true)",
                (window.postgres(), str(window.whole_days()), str(int(timeout_ms))),
            )
            if check.returns == "explain":
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = conn.execute(f"EXPLAIN (FORMAT JSON) {check.sql}").fetchone()[0]
                result.value = 1.0 if check.index and check.index in json.dumps(plan) else 0.0
            else:
                cur = conn.execute(check.sql)
                rows = cur.fetchall()
                if check.returns == "rows":
                    names = [d.name for d in cur.description]
                    result.value = float(len(rows))
                    result.rows = [dict(zip(names, map(_plain, r), strict=True)) for r in rows[:5]]
                else:
                    result.value = _number(rows[0][0]) if rows else None
            result.status = _grade(check, result.value)
            if result.value is None:
                result.empty = True
                result.note = (
                    f"no data; fine for this check: {check.no_data_ok}"
                    if check.no_data_ok
                    else "no data: the query returned no row or NULL; nothing was measured"
                )
    except (psycopg.Error, TypeError) as exc:
        result.status, result.value = "error", None
        result.error = masked_first_line(exc)
    finally:
        result.ms = (time.perf_counter() - started) * 1000
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def run_checks(
    target: db.Target,
    checks: list[HealthCheck],
    *,
    window: Duration | None = None,
    days: int | None = None,
    timeout_ms: int = 5000,
    purpose: str = "check",  # application_name 'venuedb <purpose>' (the exporter's: exporter)
) -> list[CheckResult]:
    """Run `checks`, each over its own window unless `window` (or `days`, the same as
    `window=Nd`) overrides them all. BadInput before connecting for a bad override."""
    if days is not None:
        window = window_option(window.text if window else None, days)
    with db.connect(target, autocommit=False, purpose=purpose) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        missing = _missing(conn, checks)
        results = [_run_one(conn, check, timeout_ms, window, missing) for check in checks]
        conn.rollback()
    return results


STATUSES = ("ok", "warning", "critical", "error", "no_data")


def prometheus(results: list[CheckResult]) -> str:
    """The node_exporter textfile form of a run: the exporter's metrics for the checks
    (toolkit/integrity/metrics_text.py), so the generated alert rules and dashboard read both."""
    from toolkit.integrity import metrics_text

    windows = {r.check.name: float(r.window.seconds) for r in results if r.window}
    return metrics_text.render(
        [metrics_text.up_family(True), *metrics_text.check_families(results, windows)]
    )


def overall(results: list[CheckResult], named: bool = False) -> str:
    """error, else critical, else no_data, else warning, else ok. A warning is still a
    green exit; no data is not (the command could not check what it was asked). Nor is a
    run that checked nothing because no selected check applies to this database, or one
    where a check asked for by name does not apply: both are no_data."""
    present = {r.status for r in results}
    unchecked = [r for r in results if not r.applicable]
    if unchecked and (named or len(unchecked) == len(results)):
        present.add("no_data")
    for status in ("error", "critical", "no_data", "warning"):
        if status in present:
            return status
    return "ok"


def exit_code(status: str) -> int:
    """The exit code of an overall status: 1 critical or error, 5 no data, else 0."""
    return {"error": 1, "critical": 1, "no_data": 5}.get(status, 0)


def counts(results: list[CheckResult]) -> dict[str, int]:
    tally = {s: 0 for s in STATUSES}
    for r in results:
        tally[r.status] += 1
    tally["no_data_declared_fine"] = sum(r.empty and r.status == "ok" for r in results)
    tally["not_applicable"] = sum(not r.applicable for r in results)
    return tally


def summary(results: list[CheckResult]) -> str:
    """One line, e.g. `12 ok, 1 warning, 0 critical, 0 errors, 3 no data`."""
    c = counts(results)
    fine = (
        f" ({c['no_data_declared_fine']} without data, declared fine)"
        if c["no_data_declared_fine"]
        else ""
    )
    inapplicable = f" ({c['not_applicable']} not applicable here)" if c["not_applicable"] else ""
    return (
        f"{c['ok']} ok{fine}{inapplicable}, {c['warning']} warning, {c['critical']} critical, "
        f"{c['error']} error{'s' if c['error'] != 1 else ''}, {c['no_data']} no data"
    )


def report(results: list[CheckResult], window: Duration | None) -> dict[str, Any]:
    """`venuedb check --json`'s document, but for its "status" (overall()): what fleet
    check keeps per database too."""
    return {
        "window_override": window.text if window else None,
        "summary": summary(results),
        "counts": counts(results),
        "checks": [r.to_dict() for r in results],
    }
