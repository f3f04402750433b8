"""The mutation runner's pytest plugin: one worker's share of the mutations, in one pytest
session (`python -m pytest -p mutation.plugin --mutation-out F ...`, started by
mutation/__main__.py).

The session's own test loop is replaced: the collected rule tests (mutation/domains.toml)
first run once against the migrated template, and must all pass (a red test would "kill"
every mutation). Then, for each mutation, a copy of the template gets the mutation's SQL,
`venuedb verify` runs against it, and the tests of the object's domain run against clones
of it (conftest's template_db), the most likely killers first, until one fails. Each
result is one JSON line in the --mutation-out file.

Module-scoped fixtures (the adversary matrix's world) are torn down between mutations;
the session's server and migrated template are kept."""

from __future__ import annotations

import json
import signal
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _pytest.runner import runtestprotocol
from pytest_postgresql.janitor import DatabaseJanitor

from mutation import kinds, objects, releases
from tests.conftest import MIGRATED_TEMPLATE, TEMPLATE_OVERRIDE, Server
from toolkit.integrity import verify as verifying
from toolkit.server.connection import Target

DOMAINS_FILE = Path(__file__).with_name("domains.toml")
# Tried first for every mutation: the rules every table and function must keep, quick.
FIRST = "tests/test_rules_hold.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mutation", "schema mutation testing (mutation/)")
    group.addoption("--mutation-out", help="JSON lines file this worker writes its results to")
    group.addoption("--mutation-shard", default="0/1", help="K/N: this worker's share")
    group.addoption(
        "--mutation-select",
        action="append",
        default=[],
        help="only mutations whose id contains this (repeatable: any of them)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (the runner's, a CI job's timeout) ends the session as Ctrl-C does: with
    # its teardown, which stops the embedded server. Killed outright, the server would
    # outlive the worker.
    signal.signal(signal.SIGTERM, _interrupted)
    # Started with SIGINT ignored (by a shell running the job in the background), Python
    # leaves it ignored: Ctrl-C must still end the session cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool:
    out = session.config.getoption("mutation_out")
    if not out:
        raise pytest.UsageError("-p mutation.plugin needs --mutation-out")
    if session.config.option.collectonly:
        return False
    Worker(session, Path(out)).run()
    return True


WORKER = pytest.StashKey["Worker"]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Before a baseline test's fixtures go: what its databases show (a module's shared
    database, written while it was set up, included)."""
    worker = item.config.stash.get(WORKER, None)
    if worker is not None and worker.recording:
        worker.record_coverage(item)
    return (yield)


_drop = DatabaseJanitor.drop


def _drop_recording(janitor: DatabaseJanitor) -> None:
    """A test's own database, once its fixtures have closed their sessions (so that
    their statistics are in) and before it is dropped: what the test touched there."""
    worker = _RECORDING[0] if _RECORDING else None
    if worker is not None and worker.recording and worker.current is not None:
        worker.record_coverage(worker.current, only=str(janitor.dbname))
    _drop(janitor)


_RECORDING: list[Worker] = []
DatabaseJanitor.drop = _drop_recording  # type: ignore[method-assign,assignment]


class _SessionOnly:
    """What teardown_exact keeps: the session node and its fixtures (the server, the
    migrated template); module and function fixtures are torn down."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session

    def listchain(self) -> list[pytest.Session]:
        return [self.session]


@dataclass
class Outcome:
    failed: str | None  # the first failing test, if any
    ran: int
    seconds: float


class Worker:
    def __init__(self, session: pytest.Session, out: Path) -> None:
        self.session = session
        self.config = session.config
        self.out = out
        # Passed where pytest wants the next Item: only its listchain() is read.
        self.keep: Any = _SessionOnly(session)
        shard = str(self.config.getoption("mutation_shard"))
        self.index, self.count = (int(x) for x in shard.split("/"))
        self.items = [
            i
            for i in session.items
            if "template_db" in getattr(i, "fixturenames", ())
            and not any(word in i.name for word in EXCLUDED)
            and i.nodeid.split("[")[0] not in EXCLUDED_TESTS
        ]
        self.domains, self.always = _load_domains()
        self.hints: dict[str, list[str]] = _domains_file().get("first", {})
        self.sources = {_path(i): Path(str(i.path)).read_text(encoding="utf-8") for i in self.items}
        self.coverage: dict[str, set[str]] = {}
        self.recording = False
        self.current: pytest.Item | None = None
        self.config.stash[WORKER] = self
        _RECORDING.append(self)
        self.kills: Counter[str] = Counter()
        self.kills_by_kind: dict[str, Counter[str]] = {}
        self.kills_by_object: dict[str, Counter[str]] = {}
        self.kills_by_object_kind: dict[str, Counter[str]] = {}
        self.kills_by_table: dict[str, Counter[str]] = {}

    def say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"[worker {self.index}] {line}", flush=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def run(self) -> None:
        started = time.monotonic()
        self.out.write_text("", encoding="utf-8")
        self.out.with_name(f"coverage-{self.index}.json").unlink(missing_ok=True)
        if not self.items:
            raise pytest.UsageError("no collected test clones the migrated template")
        # The workers' servers and templates are alike: each runs its share of the
        # baseline, learning what those tests touch, and they pool what they learnt.
        self.recording = True
        try:
            baseline = self.run_tests(self.items[self.index :: self.count], stop_at_first=False)
        finally:
            self.recording = False
        server, template = self.config.stash[MIGRATED_TEMPLATE]
        pooled = self.pool_coverage(baseline.failed)
        if baseline.failed or pooled is None:
            failed = baseline.failed or "(another worker's share)"
            self.write({"baseline_failed": failed})
            self.say(f"the rule tests fail on the unmutated schema: {failed}")
            return
        self.coverage = pooled
        base_verify = self.verify_copy(server, template)
        if base_verify["exit_code"] != 0:
            self.write({"baseline_verify": base_verify})
            self.say(f"venuedb verify is not clean on the unmutated schema: {base_verify}")
            return
        mutations = self.generate(server, template)
        # By object, not by mutation: a worker that found one mutation's killer tries it
        # first on the object's others.
        order = list(dict.fromkeys(m.object for m in mutations))
        owner = {obj: n % self.count for n, obj in enumerate(order)}
        mine = [m for m in mutations if owner[m.object] == self.index]
        self.write(
            {
                "worker": self.index,
                "generated": len(mutations),
                "assigned": len(mine),
                "tests": len(self.items),
                "baseline_seconds": round(baseline.seconds, 1),
            }
        )
        self.say(
            f"{len(mutations)} mutations generated, {len(mine)} mine; "
            f"{len(self.items)} rule tests pass on the unmutated schema "
            f"({baseline.seconds:.0f} s)"
        )
        for n, mutation in enumerate(mine, 1):
            try:
                result = self.one(server, template, mutation)
            except Exception as exc:  # one broken mutation must not end the worker's run
                result = mutation.to_dict() | {
                    "verify_detected": False,
                    "verify": None,
                    "killed_by": None,
                    "tests_run": 0,
                    "seconds": 0.0,
                    "error": f"the runner failed on it: {type(exc).__name__}: {exc}".splitlines()[
                        0
                    ],
                }
            self.write(result)
            verdict = "verify: " + ("detected" if result["verify_detected"] else "MISSED")
            tests = (
                f"killed by {result['killed_by']}" if result["killed_by"] else "SURVIVED the tests"
            )
            if result.get("error"):
                verdict, tests = "NOT APPLIED", result["error"]
            self.say(
                f"{n}/{len(mine)} {mutation.id}: {verdict}, {tests} "
                f"({result['tests_run']} tests, {result['seconds']:.1f} s)"
            )
        self.write({"worker_done": self.index, "seconds": round(time.monotonic() - started, 1)})

    def generate(self, server: Server, template: str) -> list[kinds.Mutation]:
        scratch = f"mutation_attribution_{self.index}"
        with psycopg.connect(server.base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
            conn.execute(f'CREATE DATABASE "{scratch}"')
        try:
            credited = releases.attribute(server.url(scratch))
        finally:
            with psycopg.connect(server.base_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        equivalent: dict[str, str] = {}
        with psycopg.connect(server.url(template)) as conn:
            found = kinds.generate(objects.read(conn), conn, credited, equivalent)
        if self.index == 0:
            self.write({"equivalent": equivalent})
        wanted = list(self.config.getoption("mutation_select"))
        return [m for m in found if not wanted or any(w in m.id for w in wanted)]

    def one(self, server: Server, template: str, mutation: kinds.Mutation) -> dict[str, Any]:
        started = time.monotonic()
        name = f"mutant_{self.index}"
        record: dict[str, Any] = mutation.to_dict() | {
            "verify_detected": False,
            "verify": None,
            "killed_by": None,
            "tests_run": 0,
            "error": None,
        }
        _fresh_copy(server, name, template)
        try:
            try:
                with psycopg.connect(server.url(name)) as conn:
                    conn.execute(mutation.sql)
            except psycopg.Error as exc:
                record["error"] = f"PostgreSQL refused the mutation: {exc}".splitlines()[0]
                return record
            record["verify"] = self.verify(server.url(name))
            record["verify_detected"] = record["verify"]["exit_code"] == 3
            self.config.stash[TEMPLATE_OVERRIDE] = name
            try:
                outcome = self.run_tests(self.ordered(mutation), stop_at_first=True)
            finally:
                del self.config.stash[TEMPLATE_OVERRIDE]
            record["killed_by"] = outcome.failed
            record["tests_run"] = outcome.ran
            if outcome.failed:
                self.kills[outcome.failed] += 1
                for prior, key in (
                    (self.kills_by_kind, mutation.kind),
                    (self.kills_by_object, mutation.object),
                    (self.kills_by_object_kind, mutation.object_kind),
                    (self.kills_by_table, mutation.table or mutation.object),
                ):
                    prior.setdefault(key, Counter())[outcome.failed] += 1
        finally:
            with psycopg.connect(server.base_url, autocommit=True) as conn:
                if mutation.revert:
                    conn.execute(mutation.revert)
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            record["seconds"] = round(time.monotonic() - started, 2)
        return record

    def verify_copy(self, server: Server, template: str) -> dict[str, Any]:
        """verify on an unmutated copy: it must be clean, or no detection means anything."""
        name = f"mutant_{self.index}"
        _fresh_copy(server, name, template)
        try:
            return self.verify(server.url(name))
        finally:
            with psycopg.connect(server.base_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def verify(self, url: str) -> dict[str, Any]:
        """`venuedb verify` on the mutated database: the function the command runs, in
        this process (building the command line for each call would double its cost)."""
        found = verifying.verify(Target(url, "mutation"))
        named = [f"{d.get('kind')} {d.get('name')}" for d in found.drift + found.tamper] + [
            f"postcondition {p.get('kind')} {p.get('object')}"
            for p in found.postconditions
            if not p.get("ok")
        ]
        return {"exit_code": found.exit_code, "verdict": found.status, "named": named}

    def ordered(self, mutation: kinds.Mutation) -> list[pytest.Item]:
        """The tests that may kill it: tests/test_rules_hold.py's, domains.toml's
        `always`, and those of the object's domain that touched its table or function in
        the baseline run (any of the domain's for a role). First the tests that killed
        another mutation of the same object; then domains.toml's `first` tests of its
        kind, and the test that killed most of its kind; then those whose id names the
        object or its table; then the killers of the same kind, then of the same table;
        then those whose module names the object; then the killers of the same kind of
        object; then test_rules_hold's; then the most killing."""
        domain = self.domains.get(_branch(mutation.release), None)

        # A SQL function PostgreSQL inlines into its caller's query is never counted in
        # the statistics (auth.uid()): what no test is seen touching, every test may.
        seen = {n for touched in self.coverage.values() for n in touched}
        everywhere = mutation.object_kind == "role" or (
            mutation.uncounted and not set(mutation.relevant_names) & seen
        )

        def candidate(item: pytest.Item) -> bool:
            if _path(item) == FIRST or item.nodeid in self.always:
                return True
            if domain is not None and _path(item) not in domain.files:
                return False
            touched = self.coverage.get(item.nodeid, set())
            return everywhere or bool(touched & set(mutation.relevant_names))

        items = [i for i in self.items if candidate(i)]
        priors = [
            self.kills_by_object.get(mutation.object, Counter()),
            self.kills_by_kind.get(mutation.kind, Counter()),
            self.kills_by_table.get(mutation.table or mutation.object, Counter()),
            self.kills_by_object_kind.get(mutation.object_kind, Counter()),
        ]
        # The one test that killed most of this kind's mutations so far, when it killed
        # at least half of them (the grants check for table.grants_widened): tried before
        # the tests that merely name the object.
        kills_of_kind = priors[1]
        top = kills_of_kind.most_common(1)
        kind_killer = (
            top[0][0]
            if top and top[0][1] >= 2 and 2 * top[0][1] >= sum(kills_of_kind.values())
            else None
        )
        name = mutation.object.split("(")[0].rsplit(".", 1)[-1]
        table = (mutation.table or "").rsplit(".", 1)[-1]
        # The object's name, and a trigger's function: what a test module that means it
        # would write.
        terms = {name} | ({n for n in mutation.relevant_names if n != table} if table else set())

        def rank(pair: tuple[int, pytest.Item]) -> tuple[int, ...]:
            index, item = pair
            by_object, by_kind, by_table, by_object_kind = (-p[item.nodeid] for p in priors)
            # A parametrised test whose id names the object or its table (rls_matrix[sales]).
            in_id = 0 if name in item.name or (table and f"[{table}]" in item.name) else 1
            named = 0 if any(t in self.sources[_path(item)] for t in terms) else 1
            first = 0 if _path(item) == FIRST else 1
            return (
                by_object,
                0 if item.nodeid.split("[")[0] in self.hints.get(mutation.kind, ()) else 1,
                0 if item.nodeid == kind_killer else 1,
                in_id,
                by_kind,
                by_table,
                named,
                by_object_kind,
                first,
                -self.kills[item.nodeid],
                index,
            )

        return _kept_together([item for _, item in sorted(enumerate(items), key=rank)])

    def pool_coverage(self, failed: str | None) -> dict[str, set[str]] | None:
        """Write this worker's coverage beside its results, wait for every worker's:
        the whole map, or None when a worker's share of the baseline failed."""
        mine = self.out.with_name(f"coverage-{self.index}.json")
        data = {"failed": failed, "coverage": {k: sorted(v) for k, v in self.coverage.items()}}
        mine.with_suffix(".tmp").write_text(json.dumps(data), encoding="utf-8")
        mine.with_suffix(".tmp").replace(mine)  # whole or absent, for the others' reads
        pooled: dict[str, set[str]] = {}
        for k in range(self.count):
            theirs = self.out.with_name(f"coverage-{k}.json")
            deadline = time.monotonic() + 1800
            while not theirs.exists():
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.5)
            other = json.loads(theirs.read_text(encoding="utf-8"))
            if other["failed"]:
                return None
            pooled.update({k2: set(v) for k2, v in other["coverage"].items()})
        return pooled

    def record_coverage(self, item: pytest.Item, only: str | None = None) -> None:
        """The tables and functions the test's databases show activity on (statistics,
        track_functions = all: tests/conftest.py), read while they still exist. A
        module's shared database counts for each of its tests."""
        if MIGRATED_TEMPLATE not in self.config.stash:
            return
        server, template = self.config.stash[MIGRATED_TEMPLATE]
        touched: set[str] = set()
        with psycopg.connect(server.base_url, autocommit=True) as conn:
            names = (
                [only]
                if only
                else [
                    r[0]
                    for r in conn.execute(
                        "SELECT datname FROM pg_database WHERE NOT datistemplate "
                        "AND datname NOT IN ('postgres', %s)",
                        (template,),
                    ).fetchall()
                ]
            )
            # Statistics reach shared memory when a backend ends: wait for the test's
            # sessions to be gone (a module's open ones stay; theirs arrive later).
            for _ in range(5):
                open_sessions = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s) "
                    "AND pid <> pg_backend_pid()",
                    (names,),
                ).fetchone()
                if not open_sessions or open_sessions[0] == 0:
                    break
                time.sleep(0.02)
        for name in names:
            try:
                with psycopg.connect(server.url(name), autocommit=True) as conn:
                    touched |= {r[0] for r in conn.execute(_TOUCHED).fetchall()}
            except psycopg.Error:
                continue  # dropped meanwhile
        self.coverage.setdefault(item.nodeid, set()).update(touched)

    def run_tests(self, items: list[pytest.Item], stop_at_first: bool) -> Outcome:
        started = time.monotonic()
        failed, ran = None, 0
        for position, item in enumerate(items):
            last = position == len(items) - 1
            nextitem: Any = self.keep if last or (failed and stop_at_first) else items[position + 1]
            self.current = item
            reports = runtestprotocol(item, log=False, nextitem=nextitem)
            self.current = None
            ran += 1
            if any(r.failed for r in reports) and failed is None:
                failed = item.nodeid
                if stop_at_first:
                    if not last:
                        self.session._setupstate.teardown_exact(self.keep)
                    break
        return Outcome(failed, ran, time.monotonic() - started)


def _fresh_copy(server: Server, name: str, template: str) -> None:
    """Database `name`, a new copy of `template` (whatever a broken run left under that
    name dropped). The worker's own server (fsync off): file by file is the quicker copy
    (tests/conftest.py CloningJanitor)."""
    with psycopg.connect(server.base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')


_BRANCHES: dict[str, str] = {}


def _branch(release: str) -> str:
    if not _BRANCHES:
        _BRANCHES.update(releases.branches())
    return _BRANCHES.get(release, "core")


def _kept_together(ranked: list[pytest.Item]) -> list[pytest.Item]:
    """The ranking, but a module with a module-scoped fixture (the attacker matrix's world)
    runs all its tests where its first one ranks: interleaved with other modules, its
    fixture would be built again at every return to it."""
    out: list[pytest.Item] = []
    placed: set[str] = set()
    for item in ranked:
        if item.nodeid in placed:
            continue
        group = [item]
        if _module_scoped(item):
            group = [i for i in ranked if _path(i) == _path(item) and i.nodeid not in placed]
        out += group
        placed.update(i.nodeid for i in group)
    return out


def _module_scoped(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        d.scope == "module" and d.argname != "template_db"  # a name: nothing to rebuild
        for defs in info.name2fixturedefs.values()
        for d in defs
    )


_TOUCHED = """
SELECT relname::text FROM pg_stat_user_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del + coalesce(seq_scan, 0) + coalesce(idx_scan, 0) > 0
UNION
SELECT funcname::text FROM pg_stat_user_functions WHERE calls > 0
"""


@dataclass(frozen=True)
class Domain:
    files: frozenset[str]


def _domains_file() -> dict[str, Any]:
    return tomllib.loads(DOMAINS_FILE.read_text(encoding="utf-8"))


def _load_domains() -> tuple[dict[str, Domain], frozenset[str]]:
    """The domains' test files, and the tests run for every mutation of any object."""
    data = _domains_file()
    domains = {name: Domain(frozenset(d["tests"])) for name, d in data["domain"].items()}
    return domains, frozenset(data.get("always", {}).get("tests", ()))


EXCLUDED = tuple(_domains_file().get("exclude", {}).get("words", ()))
EXCLUDED_TESTS = frozenset(_domains_file().get("exclude", {}).get("tests", ()))


def _path(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]
