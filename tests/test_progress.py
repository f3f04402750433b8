"""Progress of long work (issue 21): a bar on a terminal, plain lines (or JSON) at a steady
interval when piped, on stderr so that stdout stays the command's result."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.clihelpers import VENUEDB, as_json, invoke, rollout
from tests.test_backfill import ROWS, bf_db  # noqa: F401 (a fixture)
from tests.test_shadow_swap import before_swap  # noqa: F401 (a fixture)
from toolkit import progress

KEYS = {"event", "what", "unit", "done", "total", "rate_per_s", "eta_s", "elapsed_s"}
# `backfill bf: 300 / 2,000 rows (15.0 %), 2,412 rows/s, ETA 0.7 s`
BACKFILL_LINE = re.compile(
    r"^backfill bf: [\d,]+ / 2,000 rows \(\d+\.\d %\), [\d,.]+ rows/s, ETA [\d.]+ s$"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _reporter(mode: str, interval: float = 5.0) -> tuple[progress.Reporter, io.StringIO, FakeClock]:
    stream, clock = io.StringIO(), FakeClock()
    return progress.reporter(progress.Settings(mode, interval), stream, clock), stream, clock


def test_lines_come_at_the_interval_and_at_the_end_with_done_total_rate_and_eta() -> None:
    shown, stream, clock = _reporter("lines", interval=5.0)
    shown.start(1_000_000, "rows", "backfill server_id")
    for _ in range(12):  # 10,000 rows a second: a line every 5 s, not every advance
        clock.now += 1.0
        shown.advance(10_000)
    shown.finish()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "backfill server_id: 0 / 1,000,000 rows (0.0 %)",
        "backfill server_id: 50,000 / 1,000,000 rows (5.0 %), 10,000 rows/s, ETA 1 min 35 s",
        "backfill server_id: 100,000 / 1,000,000 rows (10.0 %), 10,000 rows/s, ETA 1 min 30 s",
        "backfill server_id: ended at 120,000 / 1,000,000 rows (12.0 %), 10,000 rows/s, "
        "12 s elapsed",
    ]


def test_without_a_total_lines_say_what_is_done_and_the_rate() -> None:
    shown, stream, clock = _reporter("lines", interval=1.0)
    shown.start(None, "tables", "backup")
    clock.now += 2.0
    shown.advance(3)
    assert stream.getvalue().splitlines()[-1] == "backup: 3 tables, 1.5 tables/s"


def test_json_lines_have_fixed_keys() -> None:
    shown, stream, clock = _reporter("json", interval=1.0)
    shown.start(10, "checks", "pre-flight")
    clock.now += 1.0
    shown.advance(4)
    shown.finish()
    shown.finish()  # a second finish says nothing more
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["start", "progress", "finish"]
    assert all(set(d) == KEYS for d in docs)
    assert docs[1] | {"what": "pre-flight", "unit": "checks"} == {
        "event": "progress",
        "what": "pre-flight",
        "unit": "checks",
        "done": 4,
        "total": 10,
        "rate_per_s": 4.0,
        "eta_s": 1.5,
        "elapsed_s": 1.0,
    }


def test_none_says_nothing_and_auto_is_lines_when_not_a_terminal() -> None:
    shown, stream, _ = _reporter("none")
    shown.start(5, "rows", "x")
    shown.advance(5)
    shown.finish()
    assert stream.getvalue() == ""
    assert isinstance(
        progress.reporter(progress.Settings("auto"), io.StringIO()), progress.LinesReporter
    )
    # Nothing is shown until a command configures it (plain alembic, library callers).
    assert progress.current().mode == "none"


def test_bar_nests_one_task_in_another_on_one_live_display() -> None:
    stream = io.StringIO()
    outer = progress.reporter(progress.Settings("bar"), stream)
    inner = progress.reporter(progress.Settings("bar"), stream)
    outer.start(4, "checks", "pre-flight of core")
    inner.start(100, "rows", "pre-flight allocations")  # rich allows one live display
    inner.advance(100)
    inner.finish()
    outer.advance(4)
    outer.finish()
    assert progress.BarReporter._shared is None
    assert "pre-flight allocations" in stream.getvalue()


def _piped(*args: str, stderr: Path, extra_env: dict[str, str] | None = None) -> str:
    """`venuedb ARGS` with stdout and stderr redirected, as in a log or a CI job; stdout."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | (extra_env or {})
    with stderr.open("w") as err:
        done = subprocess.run(
            [str(VENUEDB), *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
    assert done.returncode == 0, stderr.read_text() + done.stdout
    return done.stdout


def _slow_backfill(url: str, tmp_path: Path, *options: str) -> tuple[str, str]:
    """`venuedb backfill run bf` piped, in batches of 200 rows that sleep 0.1 s each (the
    run lasts long enough to see lines): its stdout and its stderr."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET bf.slow = '0.1'")
    err = tmp_path / "stderr"
    out = _piped(
        "backfill", "run", "bf", "--database-url", url, "--batch-size", "200",
        "--progress-interval", "100ms", *options, stderr=err,
    )  # fmt: skip
    return out, err.read_text()


def test_a_piped_backfill_prints_several_progress_lines_and_a_final_one(
    bf_db: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, err = _slow_backfill(bf_db, tmp_path, "--progress", "lines", "--json")
    assert json.loads(out)["rows"] == ROWS  # stdout is still the one JSON document
    lines = [line for line in err.splitlines() if line.startswith("backfill bf:")]
    assert len([line for line in lines if BACKFILL_LINE.match(line)]) >= 3, lines
    assert lines[0] == "backfill bf: 0 / 2,000 rows (0.0 %)"
    assert re.match(r"^backfill bf: ended at 2,000 / 2,000 rows \(100\.0 %\), ", lines[-1])


def test_json_progress_lines_parse_and_none_prints_none(
    bf_db: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, err = _slow_backfill(bf_db, tmp_path, "--progress", "json", "--max-rows", "1000")
    docs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert all(set(d) == KEYS and d["what"] == "backfill bf" for d in docs)
    assert [d["event"] for d in docs][0 :: len(docs) - 1] == ["start", "finish"]
    assert len([d for d in docs if d["event"] == "progress"]) >= 2, docs
    assert (docs[-1]["done"], docs[-1]["total"]) == (1000, ROWS)
    quiet = tmp_path / "quiet"
    _piped("backfill", "resume", "bf", "--database-url", bf_db, "--progress", "none", stderr=quiet)
    assert "backfill bf" not in quiet.read_text()


def test_backfill_status_shows_percent_and_eta(bf_db: str) -> None:  # noqa: F811
    ran = invoke("backfill", "run", "bf", "--database-url", bf_db, "--max-rows", "500")
    assert ran.exit_code == 0, ran.output
    entry = as_json(invoke("backfill", "status", "bf", "--database-url", bf_db, "--json"))
    (entry,) = entry["backfills"]
    assert (entry["state"], entry["percent"], entry["remaining_rows"]) == ("paused", 25.0, 1500)
    assert entry["eta_seconds"] is not None and entry["eta_seconds"] >= 0
    shown = invoke("backfill", "status", "bf", "--database-url", bf_db)
    assert re.search(r"25\.0 %\s*│\s*[\d.]+ s", shown.stdout), shown.stdout


def test_a_piped_shadow_copy_prints_several_progress_lines(
    before_swap: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with psycopg.connect(before_swap) as conn:  # enough batches of 7 to last a while
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT restaurant_id, 'table', gen_random_uuid(), \"window\" FROM allocations, "
            "generate_series(1, 4)"
        )
    err = tmp_path / "stderr"
    _piped(
        "apply", "booking_005", "--database-url", before_swap, "--progress", "lines",
        "--progress-interval", "50ms", stderr=err,
    )  # fmt: skip
    lines = [line for line in err.read_text().splitlines() if "shadow copy" in line]
    copying = r"^shadow copy of allocations: [\d,]+ / ([\d,]+) rows \(\d+\.\d %\), .* rows/s, ETA"
    assert len([line for line in lines if re.match(copying, line)]) >= 3, lines
    assert re.match(r"^shadow copy of allocations: ended at ([\d,]+) / \1 rows", lines[-1])
    assert any(
        line.startswith("pre-flight allocations_no_overlap")
        for line in err.read_text().splitlines()
    )


def test_backup_restore_rollout_and_rollback_risk_report_progress(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    made = invoke(
        "backup", "--out", str(tmp_path), "--database-url", db_url, "--json", "--progress", "lines"
    )
    assert made.exit_code == 0, made.output
    tables = re.search(r"backup of .*: ended at (\d+) / (\d+) tables", made.stderr)
    assert tables and int(tables[1]) > 0, made.stderr
    restored = invoke(
        "restore", as_json(made)["path"], "--target-url", empty_db_url, "--json",
        "--progress", "lines",
    )  # fmt: skip
    assert restored.exit_code == 0, restored.output
    assert re.search(rf"restore of .*: ended at {tables[1]} / {tables[1]} tables", restored.stderr)
    plan = invoke(
        "rollback", "table-combinations", "--plan", "--database-url", db_url, "--json",
        "--progress", "lines",
    )  # fmt: skip
    # Without --cascade the rollback would refuse: its plan exits 1 (would_refuse).
    assert plan.exit_code == 1 and as_json(plan)["status"] == "would_refuse", plan.output
    assert re.search(r"rollback risk: scratch copy: ended at (\d+) / \1 migrations", plan.stderr)
    assert re.search(r"rollback risk: counting: ended at (\d+) / \1 objects", plan.stderr)
    out = rollout(db_url, "table-combinations", tmp_path / "rollout", "--progress", "lines")
    assert "pre-flight of table-combinations: ended at 4 / 4 checks" in out.stderr, out.stderr


@pytest.mark.parametrize("bad", [["--progress", "loud"], ["--progress-interval", "0"]])
def test_a_bad_progress_option_is_refused(bad: list[str], tmp_path: Path) -> None:
    result = invoke("backup", "--out", str(tmp_path), "--database-url", "postgresql://x/y", *bad)
    assert result.exit_code == 2
    assert bad[0] in result.stderr


def test_tables_outside_a_terminal_keep_long_identifiers_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "backfill_with_a_very_long_name_" + "x" * 49
    assert len(name) == 80
    registry = tmp_path / "backfills.toml"
    registry.write_text(
        f'[[backfill]]\nname = "{name}"\ntable = "t"\nkey = "id"\nfunction = "f"\n'
        'description = "a description long enough to need the room of a whole narrow terminal"\n'
    )
    out = _piped(
        "backfill", "list", stderr=tmp_path / "stderr",
        extra_env={"VENUEDB_BACKFILLS_FILE": str(registry), "COLUMNS": "80"},
    )  # fmt: skip
    assert name in out and "a whole narrow terminal" in out, out
