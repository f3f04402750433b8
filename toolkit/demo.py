"""`venuedb demo`: every migration, realistic sample data, auto-assignment; what was done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit import connection as db
from toolkit.assign import assign_pending
from toolkit.flags import planner_options
from toolkit.migrate import RunOptions, run
from toolkit.status import status

SAMPLE_SEED = 42

Say = Callable[[str, str], None]  # (kind, message), as migrate.Emit


def run_demo(target: db.Target, say: Say) -> dict[str, Any]:
    options = planner_options()  # invalid flags stop the demo before anything changes
    say("info", "applying every migration (all branch heads)")
    applied = run(target, "upgrade", None, RunOptions(actor="demo"), emit=say)
    sample = _load_sample(target, say)
    say("info", "auto-assigning the pending bookings (planner flags from `venuedb flags`)")
    summary = assign_pending(target, options)
    info = status(target)
    return {
        "applied_now": applied.done,
        "sample": sample,
        "assignment": summary.to_dict(),
        "releases": info["releases"],
        "branches": info["branches"],
    }


def _load_sample(target: db.Target, say: Say) -> dict[str, int]:
    from toolkit.sample_data import load_booking_sample

    with db.connect(target, autocommit=False, purpose="demo sample") as conn:
        prefix = f"sample-{SAMPLE_SEED}-%"
        present = conn.execute(
            "SELECT count(*) FROM restaurants WHERE slug LIKE %s", (prefix,)
        ).fetchone()[0]
        if present:
            say("info", f"sample data already loaded ({present} sample restaurants)")
            return {}
        counts = load_booking_sample(conn, seed=SAMPLE_SEED)
        conn.commit()
    say("info", "sample data loaded: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return counts
