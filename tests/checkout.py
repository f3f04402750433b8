"""A copy of the checkout for the toolkit to work from (VENUEDB_HOME, see the `in_project`
fixture): tests edit files or add a revision there, never in the checkout itself."""

from __future__ import annotations

import shutil
from pathlib import Path

from toolkit.engine import revisions as revs

ROOT = Path(__file__).resolve().parent.parent


def copy_checkout(tmp_path: Path, *files: str) -> Path:
    """tmp_path/project: the checkout's migrations/, sql/ and alembic.ini, and `files` of
    its top folder (e.g. ".sqlfluff")."""
    project = tmp_path / "project"
    for part in ("migrations", "sql"):
        shutil.copytree(ROOT / part, project / part)
    for name in ("alembic.ini", *files):
        shutil.copy(ROOT / name, project / name)
    return project


def executing(sql: str) -> str:
    """The source of an upgrade() that executes `sql`."""
    return f'def upgrade() -> None:\n    op.execute("""\n{sql}\n""")\n'


def add_bar_099(project: Path, upgrade: str, downgrade: str = "pass") -> Path:
    """Revision bar_099 ("hazards") on top of the bar branch of `project`: `upgrade` the source
    of its upgrade(), `downgrade` the body of its downgrade(). The revision file."""
    bar_head = [s.revision for s in revs.all_steps() if s.branch == "bar"][-1]
    path = project / "migrations" / "versions" / "bar_099_hazards.py"
    path.write_text(f'''"""hazards"""
from alembic import op

revision = "bar_099"
down_revision = "{bar_head}"
branch_labels = None
depends_on = None


{upgrade}


def downgrade() -> None:
    {downgrade}
''')
    return path
