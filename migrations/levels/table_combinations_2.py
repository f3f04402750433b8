"""table-combinations, level 2: seed 000's "Level 2: Rollback Database Migration".

The rule "no booking is ever committed as confirmed without tables" goes: the seed's
trigger booking_assignment_validation and its function validate_booking_has_assignments,
and with them the other half of the same rule that booking_003 installed, the trigger
booking_assignment_removal_validation (it refuses taking the last table from a confirmed
booking) and validate_booking_assignment_removal. The index
idx_booking_table_assignments_booking_id stays (the seed: "may want to keep for
performance"), and so do table_adjacencies, the planner and every later release.

No row is written or deleted. Each trigger's exact definition and state and each
function's grants are captured first, so the restore (`venuedb rollout
table-combinations`) brings back exactly what was there: the functions from their
released files, then their grants, then the triggers.
"""

from __future__ import annotations

from typing import Any

from alembic import op

from toolkit.ops import (
    capture_triggers,
    function_acl,
    install_sql_file,
    restore_function_acl,
    restore_triggers,
)

TRIGGERS = [
    ("bookings", "booking_assignment_validation"),
    ("booking_table_assignments", "booking_assignment_removal_validation"),
]
# Counted by the plan: no row is written or deleted.
TABLES = ["bookings", "booking_table_assignments"]
FUNCTIONS = {
    "public.validate_booking_has_assignments()": "functions/validate_booking_has_assignments/v1.sql",
    "public.validate_booking_assignment_removal()": (
        "functions/validate_booking_assignment_removal/v1.sql"
    ),
}


def describe(conn: Any) -> list[str]:
    """The steps, as the plan shows them."""
    return [
        "DROP TRIGGER booking_assignment_validation ON bookings (seed 000)",
        "DROP TRIGGER booking_assignment_removal_validation ON booking_table_assignments",
        "DROP FUNCTION validate_booking_has_assignments() (seed 000)",
        "DROP FUNCTION validate_booking_assignment_removal()",
        "keep idx_booking_table_assignments_booking_id, table_adjacencies and every later "
        "release; no row written or deleted",
    ]


def apply(details: dict[str, Any]) -> None:
    details["triggers"] = capture_triggers(TRIGGERS)
    details["acl"] = {signature: function_acl(signature) for signature in FUNCTIONS}
    op.execute("""
DROP TRIGGER IF EXISTS booking_assignment_validation ON public.bookings;
DROP TRIGGER IF EXISTS booking_assignment_removal_validation ON public.booking_table_assignments;
DROP FUNCTION IF EXISTS public.validate_booking_has_assignments();
DROP FUNCTION IF EXISTS public.validate_booking_assignment_removal();
""")


def restore(details: dict[str, Any]) -> None:
    for signature, path in FUNCTIONS.items():
        install_sql_file(path)
        restore_function_acl(signature, details.get("acl", {}).get(signature))
    restore_triggers(details.get("triggers", []), TRIGGERS)


def postconditions(details: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        ("trigger", "bookings.booking_assignment_validation", "absent"),
        ("trigger", "booking_table_assignments.booking_assignment_removal_validation", "absent"),
        ("function_version", "validate_booking_has_assignments", "absent"),
        ("function_version", "validate_booking_assignment_removal", "absent"),
        ("index", "idx_booking_table_assignments_booking_id", ""),
        ("table", "table_adjacencies", ""),
    ]
