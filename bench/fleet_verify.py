"""`venuedb fleet verify` over 20 databases against `venuedb verify` on one: the target is
the fleet under 3 times the one.

    .venv/bin/python -m bench.fleet_verify [--databases 20] [--repeat 5] [--concurrency 4]

One migrated template on the benchmark server, cloned into --databases databases (at
every head, no rows: verify's cost is the catalog and the files, not the data). Timed:

- `venuedb verify` on one database, a new process from exec to exit (what the target
  compares with), and the toolkit function in this process, as fleet verify calls it;
- `venuedb fleet verify` over all of them, a new process, and its engine in this process
  (the inventory's jobs under toolkit.fleet.runner, with the project files read once).

The clones are dropped at the end; the template is kept and rebuilt when the heads move.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from bench.checks_verify import command_seconds
from bench.cli_help import venuedb_executable
from bench.common import Goal, bench_server, clone_database, database_url, report, scratch_database
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import RunOptions, current_heads, run
from toolkit.fleet import inventory, jobs, runner
from toolkit.integrity.verify import verify
from toolkit.read_once import project_files_fixed
from toolkit.server.connection import Target

TEMPLATE = "venuedb_bench_fleet_template"
TARGET_RATIO = 3.0


def template() -> str:
    """The template database at every head (migrated again when it is not)."""
    url = database_url(TEMPLATE)
    try:
        with psycopg.connect(url) as conn:
            at_heads = sorted(current_heads(conn)) == sorted(revs.script_directory().get_heads())
    except psycopg.OperationalError:
        at_heads = False
    if not at_heads:
        url = scratch_database(TEMPLATE)
        run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
    return url


def write_inventory(path: Path, urls: list[str]) -> Path:
    lines = ["[defaults]", "concurrency = 4"]
    for i, url in enumerate(urls):
        lines += ["[[database]]", f'name = "bench-{i:02d}"', f'url = "{url}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fleet_in_process(path: Path, concurrency: int) -> float:
    """What `venuedb fleet verify` does after parsing its options, timed."""
    t0 = time.perf_counter()
    with project_files_fixed():
        databases = inventory.load(path).select([])
        job = jobs.verify_job(None, lambda name, message: None)
        outcomes = runner.run(databases, job, concurrency=concurrency, keep_going=True)
    seconds = time.perf_counter() - t0
    if not runner.fleet_ok(outcomes):
        raise SystemExit(f"fleet verify failed: {[o.detail for o in outcomes if o.status != 'ok']}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    bench_server()
    template()
    urls = [clone_database(TEMPLATE, f"venuedb_bench_fleet_{i:02d}") for i in range(args.databases)]
    exe = venuedb_executable()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            path = write_inventory(Path(scratch) / "fleet.toml", urls)
            one = Target(urls[0], "bench")
            verify(one)  # the first connection to a fresh clone warms its catalog caches
            one_in_process, fleet_engine, one_cli, fleet_cli = [], [], [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                if not verify(one).clean:
                    raise SystemExit("verify of one database is not clean")
                one_in_process.append(time.perf_counter() - t0)
                fleet_engine.append(fleet_in_process(path, args.concurrency))
                one_cli.append(
                    command_seconds([exe, "verify", "--json", "--database-url", urls[0]], (0,))
                )
                fleet_cli.append(
                    command_seconds(
                        [
                            exe,
                            "fleet",
                            "verify",
                            "--inventory",
                            str(path),
                            "--json",
                            "--concurrency",
                            str(args.concurrency),
                        ],
                        (0,),
                    )
                )
    finally:
        admin = bench_server().url("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            for i in range(args.databases):
                conn.execute(f'DROP DATABASE IF EXISTS "venuedb_bench_fleet_{i:02d}" WITH (FORCE)')

    def row(what: str, runs: list[float]) -> dict[str, object]:
        return {
            "measured": what,
            "median_s": round(statistics.median(runs), 3),
            "max_s": round(max(runs), 3),
        }

    n = args.databases
    rows = [
        row("venuedb verify, one database, new process", one_cli),
        row(f"venuedb fleet verify, {n} databases, new process", fleet_cli),
        row("toolkit.integrity.verify.verify, one database, in process", one_in_process),
        row(f"fleet verify engine, {n} databases, in process", fleet_engine),
    ]
    cli_ratio = statistics.median(fleet_cli) / statistics.median(one_cli)
    engine_ratio = statistics.median(fleet_engine) / statistics.median(one_in_process)
    report(
        "fleet_verify",
        rows,
        {
            "databases": n,
            "concurrency": args.concurrency,
            "ratio_new_process": round(cli_ratio, 2),
            "ratio_in_process": round(engine_ratio, 2),
        },
        [
            Goal(
                f"venuedb fleet verify over {n} databases, against venuedb verify on one "
                f"(new processes, concurrency {args.concurrency})",
                f"< {TARGET_RATIO:g}x",
                f"{cli_ratio:.2f}x ({statistics.median(fleet_cli):.2f} s against "
                f"{statistics.median(one_cli):.2f} s)",
                cli_ratio < TARGET_RATIO,
            )
        ],
    )
    print(
        f"in process: {n} databases {statistics.median(fleet_engine):.2f} s, one "
        f"{statistics.median(one_in_process):.3f} s ({engine_ratio:.1f}x; the new process's "
        "start-up, paid once by the fleet, is what the target's ratio leaves out of this one)"
    )


if __name__ == "__main__":
    main()
