"""Schema mutation testing: `make mutation` (`.venv/bin/python -m mutation`).

Every rule-bearing object the releases create (constraints, triggers, policies,
functions, tables, roles) is weakened one way at a time in a copy of the migrated
template (mutation/kinds.py). For each mutation, `venuedb verify` runs against the copy
and the rule tests of the object's domain (mutation/domains.toml) run against clones of
it. Two workers (the machine's 2 cores), each a pytest session with an embedded server of
its own (mutation/plugin.py), share the mutations.

Writes mutation-report.md and .json (in mutation/results/ unless --out says where),
prints both scores and every survivor. Exit 0 only when verify detected every mutation, every mutation PostgreSQL was
given applied, the tests killed at least 95 % and every survivor is explained in
mutation/survivors.toml; 1 otherwise; 2 when the run itself broke (a red test or an
unclean verify on the unmutated schema, a worker that crashed); 130 when interrupted
(Ctrl-C or SIGTERM: each worker is stopped the way pytest stops on Ctrl-C, its server
with it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import IO, Any

from mutation import report as reporting

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _test_files() -> list[str]:
    data = tomllib.loads((HERE / "domains.toml").read_text(encoding="utf-8"))
    return sorted({f for d in data["domain"].values() for f in d["tests"]})


def _relay(stream: IO[str], quiet: bool) -> None:
    for line in stream:
        if line.startswith("[worker") and not (
            quiet
            and "SURVIVED" not in line
            and "MISSED" not in line
            and "NOT APPLIED" not in line
            and "mutations generated" not in line
        ):
            sys.stdout.write(line)
            sys.stdout.flush()
        elif line.startswith(("E ", "ERROR", "Traceback")) or "Error" in line[:40]:
            sys.stdout.write(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2, help="pytest sessions in parallel (2)")
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="TEXT",
        help="only the mutations whose id contains TEXT (repeatable: any of them)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help=f"where the results and reports go ({RESULTS.relative_to(HERE.parent)})",
    )
    parser.add_argument("--quiet", action="store_true", help="print only survivors and misses")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report, not the summary"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report from the last run's results (after editing survivors.toml)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    if args.report_only:
        if not run_file.exists():
            print(f"no results of a run in {out}: run `make mutation` first", file=sys.stderr)
            return 2
        run = json.loads(run_file.read_text(encoding="utf-8"))
    else:
        try:
            run = _run_workers(out, args.workers, args.select, quiet=args.quiet or args.json)
        except KeyboardInterrupt:
            print("interrupted: the workers and their servers are stopped", file=sys.stderr)
            return 130
        run_file.write_text(json.dumps(run) + "\n", encoding="utf-8")
    results, problems, equivalent = _collect(run)
    result = reporting.Report(
        results, reporting.load_explanations(), run["seconds"], problems, equivalent
    )
    data = result.to_dict()
    (out / "mutation-report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "mutation-report.md").write_text(result.markdown(), encoding="utf-8")
    if args.json:
        print(json.dumps({k: v for k, v in data.items() if k != "results"}, indent=2))
    else:
        _summary(result, out)
    return exit_code(result)


def exit_code(result: reporting.Report) -> int:
    """2: the run itself broke; 1: a target missed or a survivor unexplained; 0: neither."""
    if result.problems:
        return 2
    return 1 if result.failures else 0


def _run_workers(out: Path, count: int, select: list[str], quiet: bool) -> dict[str, object]:
    """Start the workers, relay their progress, wait: where their results are. Interrupted
    (KeyboardInterrupt, SIGTERM), it stops the workers before it raises."""
    started = time.monotonic()
    outs = [out / f"worker-{k}.jsonl" for k in range(count)]
    for stale in out.glob("coverage-*.json"):  # the workers pool theirs through these
        stale.unlink()
    # The server variables would point both workers at one server, whose roles (cluster
    # wide: BYPASSRLS) they would share.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VENUEDB_TEST_DATABASE_URL", "VENUEDB_TEST_PG_BIN")
    }
    commands = []
    for k, worker_out in enumerate(outs):
        commands.append(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "mutation.plugin",
                "--mutation-out",
                str(worker_out),
                "--mutation-shard",
                f"{k}/{count}",
                *[f"--mutation-select={text}" for text in select],
                *_test_files(),
            ]
        )
    workers: list[tuple[subprocess.Popen[str], threading.Thread]] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for command in commands:
            # A session of its own: a terminal's Ctrl-C reaches only this process, which
            # stops each worker once (_stop; pytest abandons its teardown at a second).
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=HERE.parent,
                start_new_session=True,
            )
            assert process.stdout is not None
            relay = threading.Thread(target=_relay, args=(process.stdout, quiet), daemon=True)
            relay.start()
            workers.append((process, relay))
        codes = []
        for process, relay in workers:
            codes.append(process.wait())
            relay.join()
    except KeyboardInterrupt:
        _stop([process for process, _ in workers])
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return {
        "outs": [str(o) for o in outs],
        "codes": codes,
        "seconds": round(time.monotonic() - started, 1),
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# A worker's teardown stops its server and drops its databases: seconds, not minutes.
STOP_GRACE_SECONDS = 60


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    """Stop each worker as Ctrl-C would (its session teardown stops its embedded server)
    and wait for it; kill one that is still there after the grace period. SIGTERM, not
    SIGINT: a shell running us in the background (a CI job) starts us with SIGINT
    ignored, and the workers inherit that; their SIGTERM handler is their own
    (mutation/plugin.py)."""
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _collect(run: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """The mutations' results, what broke the run (a red baseline, a worker that stopped
    early), and the mutations not made as equivalent."""
    results, problems, equivalent = [], [], {}
    for k, (out, code) in enumerate(zip(run["outs"], run["codes"], strict=True)):
        path = Path(out)
        lines = (
            [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            if path.exists()
            else []
        )
        broken = False
        for line in lines:
            if "baseline_failed" in line:
                broken = True
                problems.append(
                    f"worker {k}: a rule test fails on the unmutated schema: "
                    f"{line['baseline_failed']}"
                )
            elif "baseline_verify" in line:
                broken = True
                problems.append(f"worker {k}: venuedb verify is not clean on the unmutated schema")
            elif "equivalent" in line:
                equivalent.update(line["equivalent"])
            elif "id" in line:
                results.append(line)
        if not broken and not any("worker_done" in x for x in lines):
            problems.append(f"worker {k} stopped before its last mutation (pytest exit {code})")
    return results, problems, equivalent


def _summary(result: reporting.Report, out: Path) -> None:
    d = result.to_dict()
    print()
    print(f"mutations: {d['mutations']} generated, {d['applied']} applied, in {d['seconds']:.0f} s")
    print(f"verify score: {d['verify_score']:.1%} (target 100 %)")
    print(f"test score:   {d['test_score']:.1%} (target {reporting.TEST_TARGET:.0%})")
    for r in d["verify_missed"]:
        print(f"  MISSED by verify: {r['id']}: {r['description']}")
    for r in d["test_survivors"]:
        why = r["explanation"] or "NOT EXPLAINED (mutation/survivors.toml)"
        print(f"  survived the tests: {r['id']}: {why}")
    for r in d["not_applied"]:
        print(f"  refused by PostgreSQL: {r['id']}: {r['error']}")
    for failure in d["failures"]:
        print(f"FAIL: {failure}")
    print(f"report: {out / 'mutation-report.md'} and .json")


if __name__ == "__main__":
    sys.exit(main())
