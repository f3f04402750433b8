"""Every benchmark of issue 11, one after the other, then one table of the targets.

    .venv/bin/python -m bench [--scale 1.0] [--seed 1] [--only NAME ...]   (make bench)

Each benchmark runs in its own process (so one's memory and threads do not colour the
next) on the benchmark server of bench/common.py, prints its own table and writes
bench/results/<name>.json; this runner then reads every goal from those files and
prints them together, and writes bench/results/summary.json. Exit 0 when every goal
was met, 1 when one was missed or a benchmark failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import RESULTS, bench_server
from bench.options import scaled_parser

# (module under bench/, takes --scale/--seed, further arguments); each writes
# bench/results/<module>.json.
BENCHMARKS: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    ("cli_help", False, ()),
    ("confirm", True, ()),
    ("auto_assign", True, ()),
    ("sales_rls", True, ()),
    # --prototype: also the measured design that would reach the target (bench/README.md).
    ("server_id_backfill", True, ("--prototype",)),
    ("backfill", True, ()),
    ("checks_verify", True, ()),
    # The allocation_overlaps check and capacity-overlap's rollback pre-flight (issue 16).
    ("allocation_overlaps", True, ()),
    # capacity-overlap's rollback level 2 and its restore under writes (issue 18); clones
    # the database allocation_overlaps keeps.
    ("rollback_level2", True, ()),
    ("migrations_under_load", True, ()),
    # The server_id backfill with a hot standby, with and without the throttle (issue 22).
    ("replica_lag", True, ()),
    # `venuedb fleet verify` over 20 databases against `venuedb verify` on one (issue 22).
    ("fleet_verify", False, ()),
)


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="1.0: the issue's row counts")
    names = [b[0] for b in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these")
    parser.add_argument(
        "--keep-server",
        action="store_true",
        help="leave the benchmark server running (its generated databases are kept either way)",
    )
    args = parser.parse_args()
    server = bench_server()
    print(f"benchmark server: PostgreSQL {server.version()}, data in {server.data_dir}")
    goals, failed = [], []
    for module, scaled, more in BENCHMARKS:
        if args.only and module not in args.only:
            continue
        argv = [sys.executable, "-m", f"bench.{module}"]
        if scaled:
            argv += ["--scale", str(args.scale), "--seed", str(args.seed)]
        argv += more
        print(f"\n=== bench.{module} ===", flush=True)
        started = time.time()
        if subprocess.run(argv, check=False).returncode != 0:
            failed.append(module)
            continue
        path = RESULTS / f"{module}.json"
        if not path.exists() or path.stat().st_mtime < started:
            failed.append(f"{module} (wrote no {path.name})")
            continue
        for goal in json.loads(path.read_text()).get("goals", []):
            goals.append({"benchmark": module, **goal})
    print("\n=== summary ===")
    for goal in goals:
        verdict = "met   " if goal["met"] else "MISSED"
        print(f"{verdict} {goal['what']}: {goal['measured']} (target {goal['target']})")
    for module in failed:
        print(f"FAILED bench.{module}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(
        json.dumps(
            {"scale": args.scale, "seed": args.seed, "goals": goals, "failed": failed}, indent=2
        )
        + "\n"
    )
    if not args.keep_server:
        print(f"benchmark server: {server.stop()}")
    sys.exit(0 if goals and all(g["met"] for g in goals) and not failed else 1)


if __name__ == "__main__":
    main()
