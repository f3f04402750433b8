"""Run revision helpers (toolkit/ops/online.py, toolkit/ops/shadow_swap.py) outside a revision.

Those helpers talk to Alembic through its module proxies: `alembic.context` (the
EnvironmentContext: offline mode, config.attributes such as venuedb_rehearse) and `op`
(the Operations: the bind, execute, autocommit_block). Alembic installs both only while
migrations/env.py runs revisions; `operations()` installs them around any block, on a
connection of the caller's, so that e.g. a rollback step that is not a revision can call
`replace_exclusion_constraint(DOWNGRADE)` exactly as booking_005's downgrade() does.

Like a revision under env.py, the block runs in one transaction that commits when the
block ends and rolls back when it raises; a helper that steps out of it
(`outside_transaction()`, the shadow swap's copy and swap) commits what the block did so
far, as it does in a revision. Nothing here writes alembic_version.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.operations import Operations
    from sqlalchemy.engine import Connection, Engine


@contextmanager
def operations(
    bind: Engine | Connection, attributes: Mapping[str, Any] | None = None
) -> Iterator[Operations]:
    """Yield an Operations with the `alembic.context` and `op` proxies installed.

    `bind`: an Engine (a connection is opened and closed here) or a Connection that is
    not in a transaction (begin_transaction and autocommit_block must own it: with a
    transaction of the caller's open, Alembic would neither commit it nor step out of
    it). `attributes` go to config.attributes, e.g. {"venuedb_rehearse": True}.
    """
    from alembic.operations import Operations
    from alembic.runtime.environment import EnvironmentContext
    from sqlalchemy.engine import Engine

    from toolkit.engine.revisions import alembic_config, script_directory

    with ExitStack() as stack:
        conn = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        if conn.in_transaction():
            raise RuntimeError(
                "operations() needs a connection that is not in a transaction: commit or "
                "roll back first (the block's helpers commit in steps, as in a revision)"
            )
        config = alembic_config(conn)
        config.attributes.update(attributes or {})
        env = stack.enter_context(EnvironmentContext(config, script_directory()))
        env.configure(connection=conn, target_metadata=None)
        stack.enter_context(env.begin_transaction())
        yield stack.enter_context(Operations.context(env.get_context()))
