"""Which database a command talks to, and opening connections to it.

Resolution order (docs/design.md): --database-url, else DATABASE_URL, else .env, else
the running embedded server. The chosen URL is always printed masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import BadInput
from toolkit.server.urls import mask_url, masked_first_line, validate_url

if TYPE_CHECKING:
    import psycopg
    from psycopg.abc import Params
    from sqlalchemy.engine import Engine

APPLICATION_NAME = "venuedb"


@dataclass(frozen=True)
class Target:
    url: str
    source: str  # "--database-url" | "DATABASE_URL" | ".env" | "embedded server"

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    def describe(self) -> str:
        return f"database: {self.masked} (from {self.source})"


def read_dotenv(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of a .env file, parsed by python-dotenv (quotes, `export `,
    comments, escapes); {} when there is no readable file. A bare KEY (no `=`) sets
    nothing. Variables are not expanded: a value is taken as written."""
    from dotenv import dotenv_values

    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {key: value for key, value in values.items() if value is not None}


def resolve(database_url: str | None = None, *, cwd: Path | None = None) -> Target:
    """Find the database, or raise BadInput saying how to name one."""
    if database_url:
        return Target(validate_url(database_url), "--database-url")
    env_url = os.environ.get("DATABASE_URL")
    if env_url:
        return Target(validate_url(env_url), "DATABASE_URL")
    dotenv = (cwd or Path.cwd()) / ".env"
    dotenv_url = read_dotenv(dotenv).get("DATABASE_URL")
    if dotenv_url:
        return Target(validate_url(dotenv_url), ".env")
    from toolkit.server.embedded import project_server

    server = project_server()
    status = server.status()
    if status.state == "running":
        return Target(server.url(), "embedded server")
    raise BadInput(
        "no database given: pass --database-url, set DATABASE_URL (or put it in .env), "
        "or start the embedded server with `venuedb db start`"
    )


def connect(target: Target, *, autocommit: bool = True, purpose: str = "") -> psycopg.Connection:
    """A psycopg connection, or BadInput with one clear line when it cannot be reached."""
    import psycopg

    name = f"{APPLICATION_NAME} {purpose}".strip()
    try:
        return psycopg.connect(
            target.url, autocommit=autocommit, connect_timeout=5, application_name=name
        )
    except psycopg.OperationalError as exc:
        raise BadInput(f"cannot reach {target.masked}: {masked_first_line(exc)}") from None


def scalar(conn: psycopg.Connection[Any], query: str, params: Params | None = None) -> Any:
    """The first column of the one row `query` returns: for the queries that always return
    exactly one (an aggregate, SHOW, a SELECT without FROM). No row is a bug, and says so
    instead of "'NoneType' object is not subscriptable"."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from a query that always returns one: {query!r}")
    return row[0]


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    """Whether the table `name` exists: schema-qualified, or else found on the search path."""
    return bool(scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def engine(target: Target, *, purpose: str = "") -> Engine:
    """A SQLAlchemy engine for Alembic (no pooling: one deploy, one session)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from toolkit.server.urls import sqlalchemy_url

    name = f"{APPLICATION_NAME} {purpose}".strip()
    return create_engine(
        sqlalchemy_url(target.url),
        poolclass=NullPool,
        connect_args={"connect_timeout": 5, "application_name": name},
    )


def check_reachable(target: Target) -> None:
    with connect(target, purpose="probe"):
        pass
