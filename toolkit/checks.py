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
    -- description: ...
    -- runbook: runbooks/... or the seed section to read when it fires

Checks run in one READ ONLY transaction, each under its own statement_timeout in a
savepoint, so a broken or slow check reports `error` and the others still run. The
window is the transaction-local setting venuedb.days (`--days`), read in SQL as
current_setting('venuedb.days')::int, so a check file also runs unchanged in psql
after `SET venuedb.days = 1`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from toolkit import connection as db
from toolkit.errors import BadInput
from toolkit.paths import sql_dir

REQUIRED = ("name", "domain", "severity", "unit", "returns", "description", "runbook")
OPTIONAL = ("warning", "critical", "requires", "index")
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.*)$")
_THRESHOLD = re.compile(
    r"^(?:(?P<op>>=|<=|>|<|=)\s*(?P<n>-?\d+(?:\.\d+)?)|outside\s+(?P<lo>-?\d+(?:\.\d+)?)"
    r"\s*\.\.\s*(?P<hi>-?\d+(?:\.\d+)?))$"
)


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


@dataclass(frozen=True)
class Check:
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

    def thresholds(self) -> dict[str, str | None]:
        return {
            "warning": self.warning.text if self.warning else None,
            "critical": self.critical.text if self.critical else None,
        }


def parse(path: Path) -> Check:
    """Read one check file; BadInput names the file and line of a malformed header."""
    meta: dict[str, str] = {}
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
    return Check(
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
        requires=tuple(r.strip() for r in meta.get("requires", "").split(",") if r.strip()),
        index=meta.get("index"),
    )


def checks_dir() -> Path:
    return sql_dir() / "checks"


def load_checks(directory: Path | None = None) -> list[Check]:
    return [parse(p) for p in sorted((directory or checks_dir()).glob("*.sql"))]


def select(checks: list[Check], names: list[str], domain: str | None) -> list[Check]:
    known = {c.name for c in checks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInput(f"unknown check(s) {', '.join(unknown)} (see `venuedb check --list`)")
    chosen = [c for c in checks if (not names or c.name in names)]
    if domain:
        chosen = [c for c in chosen if c.domain == domain]
    return chosen


@dataclass
class Result:
    check: Check
    status: str  # ok | warning | critical | error
    value: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.check.name,
            "domain": self.check.domain,
            "status": self.status,
            "value": self.value,
            "unit": self.check.unit,
            "severity": self.check.severity,
            "thresholds": self.check.thresholds(),
            "rows": self.rows,
            "error": self.error,
            "note": self.note,
            "runbook": self.check.runbook,
            "description": self.check.description,
            "ms": round(self.ms, 1),
        }


def _grade(check: Check, value: float | None) -> str:
    if value is None:
        return "ok"  # a rate with no data is not a breach
    if check.critical and check.critical.breached(value):
        return "critical"
    if check.warning and check.warning.breached(value):
        return "warning"
    return "ok"


def _missing(conn: Any, requires: tuple[str, ...]) -> list[str]:
    missing = []
    for item in requires:
        parts = item.split(".")
        if len(parts) == 3:
            row = conn.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attname = %s AND NOT attisdropped",
                (f"{parts[0]}.{parts[1]}", parts[2]),
            ).fetchone()
        else:
            row = conn.execute("SELECT to_regclass(%s)", (item,)).fetchone()
            row = row if row and row[0] is not None else None
        if row is None:
            missing.append(item)
    return missing


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    raise TypeError(f"the check returned {type(value).__name__}, not a number")


def _run_one(conn: Any, check: Check, timeout_ms: int) -> Result:
    import psycopg

    started = time.perf_counter()
    result = Result(check, "error", None)
    try:
        with conn.transaction():  # a savepoint inside the read-only transaction
            missing = _missing(conn, check.requires)
            if missing:
                result.status, result.note = "ok", f"not applicable: {', '.join(missing)} missing"
                return result
            conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
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
    except (psycopg.Error, TypeError) as exc:
        result.status, result.value = "error", None
        lines = [line for line in str(exc).splitlines() if line.strip()]
        result.error = lines[0] if lines else type(exc).__name__
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
    target: db.Target, checks: list[Check], *, days: int = 1, timeout_ms: int = 5000
) -> list[Result]:
    if days < 1:
        raise BadInput(f"--days must be at least 1, got {days}")
    with db.connect(target, autocommit=False, purpose="check") as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('venuedb.days', %s, true)", (str(days),))
        results = [_run_one(conn, check, timeout_ms) for check in checks]
        conn.rollback()
    return results


STATUS_CODE = {"ok": 0, "warning": 1, "critical": 2, "error": 3}


def prometheus(results: list[Result]) -> str:
    lines = [
        "# HELP venuedb_check_value The value a venuedb health check measured.",
        "# TYPE venuedb_check_value gauge",
    ]
    for r in results:
        labels = f'check="{r.check.name}",domain="{r.check.domain}",unit="{r.check.unit}"'
        lines.append(
            f"venuedb_check_value{{{labels}}} "
            + ("NaN" if r.value is None else repr(float(r.value)))
        )
    lines += [
        "# HELP venuedb_check_status 0 ok, 1 warning, 2 critical, 3 error.",
        "# TYPE venuedb_check_status gauge",
    ]
    for r in results:
        lines.append(
            f'venuedb_check_status{{check="{r.check.name}",domain="{r.check.domain}"}} '
            f"{STATUS_CODE[r.status]}"
        )
    return "\n".join(lines) + "\n"


def overall(results: list[Result]) -> str:
    worst = max((STATUS_CODE[r.status] for r in results), default=0)
    return {v: k for k, v in STATUS_CODE.items()}[worst]
