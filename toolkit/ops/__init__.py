"""The stable surface revision files import, and nothing else: SQL files, online DDL,
the shadow-table swap, the building blocks of level-2 rollback steps.

A revision is released history, frozen once shipped: what it imports must keep working
for as long as it exists. So revisions (migrations/versions/, migrations/levels/) import
from here only (tests/test_layers.py enforces it), and a name here is never removed or
changed incompatibly. The released revisions written before this package existed import
toolkit.online, toolkit.sqlfiles, toolkit.shadow_swap and toolkit.level_steps, which
re-export these modules.
"""

from toolkit.ops.level_steps import (
    branch_head,
    capture_triggers,
    function_acl,
    function_version,
    notice,
    restore_function_acl,
    restore_triggers,
    revision_module,
)
from toolkit.ops.online import (
    create_index_concurrently,
    drop_index_concurrently,
    in_rehearsal,
    outside_transaction,
)
from toolkit.ops.shadow_swap import ExclusionSwap, preflight, replace_exclusion_constraint
from toolkit.ops.sql_files import collecting, execute_sql, install_sql_file

__all__ = [
    "ExclusionSwap",
    "branch_head",
    "capture_triggers",
    "collecting",
    "create_index_concurrently",
    "drop_index_concurrently",
    "execute_sql",
    "function_acl",
    "function_version",
    "in_rehearsal",
    "install_sql_file",
    "notice",
    "outside_transaction",
    "preflight",
    "replace_exclusion_constraint",
    "restore_function_acl",
    "restore_triggers",
    "revision_module",
]
