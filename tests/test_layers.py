"""The toolkit's layers (issue 20): revisions import the ops surface and nothing else.

A revision is released history and never edited, so whatever it imports must keep
working for as long as it exists: toolkit.ops is that promise. The revisions released
before it existed import three compatibility modules that only re-export toolkit.ops.
"""

from __future__ import annotations

import ast
from pathlib import Path

from toolkit.paths import project_root

# The compatibility module -> the toolkit.ops module it re-exports.
COMPATIBILITY = {
    "toolkit.online": "toolkit.ops.online",
    "toolkit.sqlfiles": "toolkit.ops.sql_files",
    "toolkit.shadow_swap": "toolkit.ops.shadow_swap",
}
# What the ops layer may lean on besides itself: the toolkit's shared utilities.
UTILITIES = {
    "toolkit.errors",
    "toolkit.paths",
    "toolkit.backoff",
    "toolkit.durations",
    "toolkit.progress",
}


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "toolkit":
            found += [(node.lineno, f"toolkit.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(n, m) for n, m in found if m == "toolkit" or m.startswith("toolkit.")]


def _revision_files() -> list[Path]:
    migrations = project_root() / "migrations"
    return sorted([*migrations.glob("versions/*.py"), *migrations.glob("levels/*.py")])


def test_revisions_import_only_the_ops_surface() -> None:
    offenders = [
        f"{path.relative_to(project_root())}:{line}: {module}"
        for path in _revision_files()
        for line, module in _imports(path)
        if not (module == "toolkit.ops" or module.startswith("toolkit.ops."))
        and module not in COMPATIBILITY
    ]
    assert _revision_files(), "no revision file found: the test would check nothing"
    assert offenders == []


def test_the_compatibility_modules_only_re_export_ops() -> None:
    for name, ops_module in COMPATIBILITY.items():
        path = project_root() / (name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        code = [n for n in tree.body if not isinstance(n, ast.Expr)]  # the docstring
        assert len(code) == 1, f"{name} does more than re-export"
        (node,) = code
        assert isinstance(node, ast.ImportFrom), f"{name} does more than re-export"
        assert node.module == ops_module, f"{name} re-exports {node.module}"


def test_ops_leans_only_on_itself_and_the_shared_utilities() -> None:
    """At import time: ops must stay importable by a revision without the engine,
    the CLI or the venue application behind it."""
    offenders = [
        f"{path.relative_to(project_root())}:{line}: {module}"
        for path in sorted((project_root() / "toolkit" / "ops").glob("*.py"))
        for line, module in _imports(path, top_level_only=True)
        if not module.startswith("toolkit.ops") and module not in UTILITIES
    ]
    assert offenders == []
