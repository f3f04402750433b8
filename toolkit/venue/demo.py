"""`venuedb demo`: every migration, realistic sample data, auto-assignment; what was done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.status import status
from toolkit.server import connection as db
from toolkit.venue.assign import assign_pending
from toolkit.venue.flags import planner_options

SAMPLE_SEED = 42

Say = Callable[[str, str], None]  # (kind, message), as migrate.Emit


def run_demo(target: db.Target, say: Say) -> dict[str, Any]:
    options = planner_options()  # invalid flags stop the demo before anything changes
    say("info", "applying every migration (all branch heads)")
    applied = run(target, "upgrade", None, RunOptions(actor="demo"), emit=say)
    sample = _load_sample(target, say)
    say("info", "auto-assigning the pending bookings (planner flags from `venuedb flags`)")
    summary = assign_pending(target, options)
    bars = _load_bar_sample(target, say)
    backfills = _run_backfills(target, say)
    info = status(target)
    return {
        "applied_now": applied.done,
        "sample": sample,
        "assignment": summary.to_dict(),
        "bar_sample": bars,
        "backfills": backfills,
        "releases": info["releases"],
        "branches": info["branches"],
    }


def _load_sample(target: db.Target, say: Say) -> dict[str, int]:
    from toolkit.venue.sample_data import load_booking_sample

    def loaded(conn: Any) -> str | None:
        prefix = f"sample-{SAMPLE_SEED}-%"
        present = db.scalar(conn, "SELECT count(*) FROM restaurants WHERE slug LIKE %s", (prefix,))
        return f"{present} sample restaurants" if present else None

    return _load_once(target, say, "sample data", "demo sample", loaded, load_booking_sample)


def _load_bar_sample(target: db.Target, say: Say) -> dict[str, int]:
    from toolkit.venue.bar_sample import load_bar_sample

    def loaded(conn: Any) -> str | None:
        present = db.scalar(conn, "SELECT count(*) FROM sales")
        return f"{present} sales" if present >= 1000 else None

    return _load_once(target, say, "bar sample", "demo bar sample", loaded, load_bar_sample)


def _load_once(
    target: db.Target,
    say: Say,
    what: str,
    purpose: str,
    loaded: Callable[[Any], str | None],
    load: Callable[..., dict[str, int]],
) -> dict[str, int]:
    """Load `what` with the demo's seed in one transaction, unless `loaded` says (what it
    found) that an earlier demo did; the counts of what was loaded ({} when nothing)."""
    with db.connect(target, autocommit=False, purpose=purpose) as conn:
        found = loaded(conn)
        if found:
            say("info", f"{what} already loaded ({found})")
            return {}
        counts = load(conn, seed=SAMPLE_SEED)
        conn.commit()
    say("info", f"{what} loaded: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return counts


def _run_backfills(target: db.Target, say: Say) -> dict[str, Any]:
    """The mode-switching server_id backfills, through the engine, batched."""
    from toolkit.runbook.backfill import Options, load_backfills
    from toolkit.runbook.backfill import run as run_backfill
    from toolkit.runbook.backfill import status as backfill_status

    done: dict[str, Any] = {}
    states = {e["name"]: e["state"] for e in backfill_status(target)}
    for backfill in load_backfills():
        if states.get(backfill.name) == "finished":
            done[backfill.name] = "already finished"
            continue
        report = run_backfill(target, backfill, Options(batch_size=5000, adaptive=True))
        done[backfill.name] = report.to_dict()
        rate = report.to_dict()["rows_per_second"] or 0
        say(
            "info",
            f"backfill {backfill.name}: {report.rows} rows, {report.changed} changed, "
            f"{rate:,.0f} rows/s",
        )
    return done
