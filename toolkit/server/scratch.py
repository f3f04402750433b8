"""A scratch database: created empty on a server, dropped whatever happens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database `<prefix><random>` from template0 (pristine, whatever was added to
    template1) beside `server_url`'s database: its URL. Dropped (FORCE) on the way out,
    failure or Ctrl-C included; psycopg.Error when it cannot be created."""
    import psycopg

    from toolkit.server.urls import with_database

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield with_database(server_url, name)
    finally:
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # the scratch database's name says what it is; nothing to protect here
