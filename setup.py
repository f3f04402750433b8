"""The wheel carries the project's files inside the package, in toolkit/project_files/.

alembic.ini, migrations/, sql/, runbooks/, monitoring/ and .sqlfluff stay at the top of
the checkout, where they are edited and reviewed; `venuedb` reads them at run time
(toolkit/paths.py). An editable install reads the checkout itself, so nothing is copied
then; a wheel (`pip install .`, `pip wheel .`) gets a copy, made while the package is
built (build_py). Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# What toolkit/paths.py resolves under the project directory.
PROJECT_FILES = ("alembic.ini", ".sqlfluff", "migrations", "sql", "runbooks", "monitoring")
BUNDLE = Path("toolkit", "project_files")


def _project_files() -> list[Path]:
    """Every project file, relative to the checkout (bytecode caches left out)."""
    found: list[Path] = []
    for name in PROJECT_FILES:
        path = Path(name)
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        found += [p for p in candidates if p.is_file() and "__pycache__" not in p.parts]
    return found


class BuildPyWithProjectFiles(build_py):
    """build_py, then a fresh copy of the project files under toolkit/project_files/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        bundle = Path(self.build_lib, BUNDLE)
        # A reused build/ directory must not ship a file deleted from the checkout since.
        shutil.rmtree(bundle, ignore_errors=True)
        for source in _project_files():
            target = bundle / source
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        bundled = [str(Path(self.build_lib, BUNDLE, p)) for p in _project_files()]
        return [*super().get_outputs(include_bytecode), *bundled]

    def get_source_files(self) -> list[str]:
        # The sdist takes build_py's source files: with these, a wheel built from the sdist
        # (`python -m build`) carries the same project files as one built from the checkout.
        return [*super().get_source_files(), *map(str, _project_files())]


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
