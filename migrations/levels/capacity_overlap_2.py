"""capacity-overlap, level 2: seed 003's "Emergency rollback".

allocations_no_overlap (scoped to the restaurant, INITIALLY IMMEDIATE) is swapped back to
allocations_resource_window_excl with exactly the seed's definition, online: the same
shadow-table swap as booking_005 (its DOWNGRADE), so writes are blocked only for the
swap's brief lock, and a pre-flight refuses to start when rows would violate the old,
wider rule. booking_confirmation_results and its rows stay.

confirm_hold_assignment_tx goes back to v11 only when capacity-overlap is the last
release applied on the booking branch: the V3 coordinator (assignment-pipeline-v3)
reads v12's `confirmed` column, and booking-integrity replaced v12 by v13, so with either
applied the function in place is kept (restoring v11 would break or undo a later
release). The restore (`venuedb rollout capacity-overlap`) swaps allocations_no_overlap
back in the same way and reinstalls v12 only if this level replaced it.
"""

from __future__ import annotations

from typing import Any

from alembic import op

from toolkit.ops import (
    branch_head,
    function_acl,
    function_version,
    install_sql_file,
    notice,
    restore_function_acl,
    revision_module,
)

CONFIRM = "public.confirm_hold_assignment_tx(uuid, uuid, text, uuid)"
CONFLICTS = "public.confirm_hold_conflicts(uuid, uuid[], tstzrange)"
RELEASE_LAST = "booking_007"
# Counted by the plan: every row is copied by the swap, none lost.
TABLES = ["allocations"]
OLD_DEFINITION = (
    'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&) '
    "WHERE ((NOT shadow)) DEFERRABLE INITIALLY DEFERRED"
)


def _swaps() -> Any:
    """booking_005's swaps: this level runs its DOWNGRADE forward, the restore its UPGRADE."""
    return revision_module("booking_005")


def _restores_v11(head: str | None, version: str | None) -> bool:
    return head == RELEASE_LAST and version == "12"


def describe(conn: Any) -> list[str]:
    head = conn.execute(
        "SELECT version_num FROM alembic_version WHERE version_num LIKE 'booking%'"
    ).fetchone()
    version = conn.execute(
        "SELECT obj_description(to_regprocedure(%s), 'pg_proc')", (CONFIRM,)
    ).fetchone()[0]
    version = (version or "").removeprefix("venuedb:version=") or None
    steps = [
        "swap allocations_no_overlap back to allocations_resource_window_excl (seed 003), "
        "online: shadow table, batched copy, brief lock; pre-flight refuses rows that would "
        "violate it",
    ]
    if _restores_v11(head[0] if head else None, version):
        steps.append("confirm_hold_assignment_tx v12 -> v11 (drops confirm_hold_conflicts)")
    else:
        steps.append(
            f"keep confirm_hold_assignment_tx v{version}: a later release needs it "
            "(assignment-pipeline-v3's coordinator reads v12's result; booking-integrity "
            "installed v13)"
        )
    steps.append("keep booking_confirmation_results and every later release")
    return steps


def apply(details: dict[str, Any]) -> None:
    from toolkit.shadow_swap import replace_exclusion_constraint

    replace_exclusion_constraint(_swaps().DOWNGRADE)
    version = function_version("confirm_hold_assignment_tx")
    # A replay (verify's reference) follows the decision recorded on the database.
    if "function_restored" in details:
        restores = True
    elif "function_kept" in details:
        restores = False
    else:
        restores = _restores_v11(branch_head("booking"), version)
    if not restores:
        details["function_kept"] = version
        notice(
            f"confirm_hold_assignment_tx v{version} kept: a later release on the booking "
            "branch needs it"
        )
        return
    details["acl"] = {CONFIRM: function_acl(CONFIRM), CONFLICTS: function_acl(CONFLICTS)}
    op.execute(f"DROP FUNCTION {CONFIRM};\nDROP FUNCTION {CONFLICTS};")
    install_sql_file("functions/confirm_hold_assignment_tx/v11.sql")
    restore_function_acl(CONFIRM, details["acl"][CONFIRM])
    details["function_restored"] = "11"


def restore(details: dict[str, Any]) -> None:
    from toolkit.shadow_swap import replace_exclusion_constraint

    replace_exclusion_constraint(_swaps().UPGRADE)
    if details.get("function_restored"):
        op.execute(f"DROP FUNCTION {CONFIRM}")
        install_sql_file("functions/confirm_hold_conflicts/v1.sql")
        install_sql_file("functions/confirm_hold_assignment_tx/v12.sql")
        for signature, acl in details.get("acl", {}).items():
            restore_function_acl(signature, acl)


def postconditions(details: dict[str, Any]) -> list[tuple[str, str, str]]:
    checks = [
        ("constraint", "allocations.allocations_no_overlap", "absent"),
        ("constraint", "allocations.allocations_resource_window_excl", OLD_DEFINITION),
        ("table", "booking_confirmation_results", ""),
    ]
    if details.get("function_restored"):
        checks += [
            ("function_version", "confirm_hold_assignment_tx", "11"),
            ("function_version", "confirm_hold_conflicts", "absent"),
        ]
    return checks
