"""Alembic environment for venuedb.

- One transaction per revision (`transaction_per_migration`): a failing revision
  rolls back alone and leaves the database at the previous one.
- A connectable passed in `config.attributes["connection"]` (an Engine or a
  Connection, the cookbook convention that pytest-alembic follows) is used as is;
  the venuedb toolkit passes its own connection after taking the deploy lock and
  setting lock_timeout / statement_timeout.
- Run plainly (`alembic upgrade heads`), it finds the database the way the toolkit
  does (-x url=..., DATABASE_URL, .env, the embedded server), takes the same
  advisory deploy lock and sets lock_timeout (-x lock_timeout=1s by default).
- Every online path records a checksum per revision over the revision and the SQL files
  it installs, and refuses to run while a released file differs from
  migrations/released.json without an acceptance (toolkit/engine/checksums.py); run plainly, it
  also writes a deployment record (command `alembic`).
- The -x durations are parsed and bounded like the toolkit's options and reach SQL
  only as a whole number of milliseconds: a crafted value cannot inject SQL.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection, Engine

config = context.config
x_args = context.get_x_argument(as_dictionary=True)


def _x_duration(name: str, default: str, bounds_name: str) -> float:
    """An -x duration, validated with the toolkit's parser (BadInput names it and the range)."""
    from toolkit import durations

    bounds = getattr(durations, bounds_name)
    return durations.parse_bounded(x_args.get(name, default), bounds, option=f"-x {name}")


def _configure(connection: Connection, callbacks: list[Any]) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        transaction_per_migration=True,
        on_version_apply=[*callbacks, *config.attributes.get("on_version_apply", ())],
    )


def _by_the_toolkit() -> bool:
    """venuedb apply/rollback pass their deployment's id: they refused changed released
    files themselves before connecting, and write their own deployment record."""
    return "venuedb_deployment_id" in config.attributes


def run_offline() -> None:
    context.configure(
        url=x_args.get("url") or config.get_main_option("sqlalchemy.url") or "postgresql://",
        dialect_name="postgresql",
        literal_binds=True,
        transaction_per_migration=True,
        on_version_apply=config.attributes.get("on_version_apply", ()),
    )
    from toolkit.durations import to_milliseconds

    # The toolkit sets these per session; a script applied by hand keeps the same guard.
    lock_ms = to_milliseconds(_x_duration("lock_timeout", "1s", "LOCK_TIMEOUT"))
    statement_ms = to_milliseconds(_x_duration("statement_timeout", "0", "STATEMENT_TIMEOUT"))
    context.get_context().impl.static_output(
        "-- venuedb: keep these when applying this script by hand\n"
        f"SET lock_timeout = '{lock_ms}ms';\n"
        f"SET statement_timeout = '{statement_ms}ms';\n"
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection, also: tuple[Any, ...] = ()) -> None:
    from toolkit.engine.checksums import Recorder
    from toolkit.ops.sql_files import collecting

    # Every path records one checksum per revision over its file and the SQL files it
    # installs, inside the revision's own transaction (toolkit/engine/checksums.py).
    with collecting() as installed:
        recorder = Recorder(installed, config.attributes.get("venuedb_deployment_id"))
        _configure(connection, [recorder, *also])
        with context.begin_transaction():
            context.run_migrations()


def _refuse_changed_released_files(connection: Connection) -> None:
    from toolkit.engine.checksums import refuse_changed_files

    if not _by_the_toolkit():
        refuse_changed_files(connection.connection.driver_connection)


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        _refuse_changed_released_files(connectable)
        _run_on(connectable)
        return
    if isinstance(connectable, Engine):
        with connectable.connect() as connection:
            _refuse_changed_released_files(connection)
            _run_on(connection)
            connection.commit()
        return
    _run_standalone()


def _run_standalone() -> None:
    from toolkit.durations import to_postgres
    from toolkit.engine import locks
    from toolkit.engine.checksums import PlainRun
    from toolkit.server import connection as db

    # Validate every -x value before connecting: a bad one changes nothing.
    lock_wait = _x_duration("lock_wait", "30s", "LOCK_WAIT")
    lock_timeout = _x_duration("lock_timeout", "1s", "LOCK_TIMEOUT")
    target = db.resolve(x_args.get("url"))
    engine = db.engine(target, purpose="alembic")
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.autocommit = True
        locks.acquire(driver, locks.DEPLOY_LOCK, lock_wait, "deploy")
        # A venuedb deploy whose lock session was lost may still be migrating.
        locks.acquire(driver, locks.DEPLOY_WORK_LOCK, 0, "deploy (its migration session)")
        try:
            # A bound parameter, never text pasted into SQL.
            driver.execute(
                "SELECT set_config('lock_timeout', %s, false)", (to_postgres(lock_timeout),)
            )
            # Refuses changed released files, then records the run like `venuedb apply`.
            run = PlainRun.begin(driver, getattr(config.cmd_opts, "revision", None))
            failure: BaseException | None = None
            driver.autocommit = False
            try:
                _run_on(connection, also=(run.on_step,))
            except BaseException as exc:
                failure = exc
                raise
            finally:
                driver.rollback()
                driver.autocommit = True
                run.finish(driver, failure)
        finally:
            driver.rollback()
            driver.autocommit = True
            locks.release(driver, locks.DEPLOY_WORK_LOCK)
            locks.release(driver, locks.DEPLOY_LOCK)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
