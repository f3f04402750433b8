"""`pip install` of a wheel gives a whole venuedb (issue 21): the project files ride
inside the package, found in the order toolkit/paths.py documents.

The wheel is built from a copy of the source tree, installed into a fresh virtual
environment outside the checkout, and run from a directory outside it with nothing in
its environment but PATH, HOME and DATABASE_URL. The fresh environment sees this one's
dependencies through a .pth file that names their directory: a plain path line adds the
directory without running the .pth files in it, so the editable install of the checkout
(its finder is started by one of those) stays out of reach, which one test asserts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clihelpers import invoke
from toolkit import paths
from toolkit.engine import revisions as revs
from toolkit.engine.releases import load_releases

ROOT = Path(__file__).resolve().parent.parent

# Built once per session; on one xdist worker, so once per `make test`.
pytestmark = pytest.mark.xdist_group("install")


@dataclass(frozen=True)
class Installed:
    source: Path  # the copy of the source tree the wheel was built from
    venv: Path
    home: Path  # the HOME every run gets: the installed venuedb's state goes under it

    @property
    def venuedb(self) -> Path:
        return self.venv / "bin" / "venuedb"

    def environment(self, **extra: str) -> dict[str, str]:
        # squawk is a binary beside this environment's python; sqlfluff comes in by the .pth.
        search = [self.venv / "bin", Path(sys.executable).parent]
        path = os.pathsep.join([*map(str, search), os.environ.get("PATH", os.defpath)])
        return {"PATH": path, "HOME": str(self.home), **extra}

    def run(self, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venuedb), *args],
            cwd=cwd,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def _source_tree(target: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new ones not ignored), copied:
    the build writes build/ and *.egg-info beside its sources, and a build/ left from an
    earlier build must not supply a file the sources no longer have."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        # Deleted but not yet committed, or a symlink (the .venv of a worktree).
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _builds_without_isolation() -> bool:
    """This environment can build the wheel itself, offline: setuptools has bdist_wheel
    (its own since 70.1, else the `wheel` package, in the test extras)."""
    return any(
        importlib.util.find_spec(name) is not None
        for name in ("wheel", "setuptools.command.bdist_wheel")
    )


def _pip(*args: str) -> None:
    quiet = ("--disable-pip-version-check", "--quiet")
    command = [sys.executable, "-m", "pip", *args, *quiet]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def _build_wheel(source: Path, dist: Path) -> Path:
    isolation = ["--no-build-isolation"] if _builds_without_isolation() else []
    _pip("wheel", "--no-deps", *isolation, "--wheel-dir", str(dist), str(source))
    (wheel,) = dist.glob("venuedb-*.whl")
    return wheel


def _fresh_venv(venv: Path, wheel: Path) -> None:
    """A virtual environment with the wheel alone in it, and this one's dependencies
    visible by a .pth (nothing is downloaded: --no-deps, --no-index)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    _pip("--python", python, "install", "--no-deps", "--no-index", str(wheel))
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    Path(site, "dependencies-of-the-test-environment.pth").write_text("\n".join(ours) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    assert not base.resolve().is_relative_to(ROOT), "the install must be outside the checkout"
    source = _source_tree(base / "source")
    wheel = _build_wheel(source, base / "dist")
    _fresh_venv(base / "venv", wheel)
    home = base / "home"
    home.mkdir()
    return Installed(source, base / "venv", home)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout, with no project files in it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd


def _document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {result.stdout}\n{result.stderr}") from None


def test_the_installed_package_and_its_project_files_lie_in_the_fresh_venv(
    installed: Installed, outside: Path
) -> None:
    code = "import toolkit, toolkit.paths; print(toolkit.__file__, toolkit.paths.project_root())"
    shown = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", code],
        cwd=outside,
        env=installed.environment(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    package, project = map(Path, shown)
    assert package.is_relative_to(installed.venv), f"the checkout's toolkit was imported: {package}"
    assert project == package.parent / "project_files"


def _files(under: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(under)): path.read_bytes()
        for path in under.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_carries_every_file_venuedb_reads_at_run_time(installed: Installed) -> None:
    (package,) = installed.venv.glob("lib/python*/site-packages/toolkit")
    bundled = _files(package / "project_files")
    # What toolkit/paths.py resolves in the project directory.
    read = ("alembic.ini", ".sqlfluff", "migrations", "sql", "runbooks", "monitoring")
    assert {name.split("/")[0] for name in bundled} == set(read)
    sources = {
        name: text for name, text in _files(installed.source).items() if name.split("/")[0] in read
    }
    assert sorted(bundled) == sorted(sources)
    assert [name for name in bundled if bundled[name] != sources[name]] == []


def test_version(installed: Installed, outside: Path) -> None:
    result = installed.run("--version", cwd=outside)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (result.returncode, result.stdout.strip()) == (0, f"venuedb {expected}")


def test_the_installed_venuedb_deploys_a_database(
    installed: Installed, outside: Path, empty_db_url: str
) -> None:
    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = installed.run(*args, "--json", cwd=outside, DATABASE_URL=empty_db_url)
        return result.returncode, _document(result)

    releases = [release.name for release in load_releases()]
    code, status = run("status")
    assert code == 0
    assert [r["release"] for r in status["releases"]] == releases
    assert {r["state"] for r in status["releases"]} == {"pending"}
    assert len(status["pending"]) == len(revs.all_steps())

    code, applied = run("apply")
    assert (code, applied["status"]) == (0, "ok"), applied

    code, verified = run("verify")
    assert (code, verified["verdict"]) == (0, "clean"), verified
    assert verified["postconditions"], "no postcondition was checked"
    assert verified["drift_status"] == "compared"

    code, checked = run("check")
    # An empty database measures nothing for some checks (no_data, exit 5); none may fail.
    assert code in (0, 5), checked
    check_files = sorted((ROOT / "sql" / "checks").glob("*.sql"))
    assert len(checked["checks"]) == len(check_files) > 0
    assert checked["counts"]["error"] == 0, checked
    # Every check found the objects it measures: they ran against the applied schema.
    assert checked["counts"]["not_applicable"] == 0, checked

    code, history = run("history")
    assert code == 0
    assert [r["revision"] for r in history["revisions"]] == [s.revision for s in revs.all_steps()]

    code, status = run("status")
    assert code == 0 and status["pending"] == []
    assert {r["state"] for r in status["releases"]} == {"applied"}


def test_the_installed_venuedb_lints_its_project_files(installed: Installed, outside: Path) -> None:
    result = installed.run("lint", "--json", cwd=outside)
    document = _document(result)
    assert (result.returncode, document["findings"]) == (0, [])


def test_the_embedded_server_state_is_never_in_site_packages(
    installed: Installed, outside: Path, tmp_path: Path
) -> None:
    default = _document(installed.run("db", "status", "--json", cwd=outside))
    state = installed.home / ".local" / "state" / "venuedb"
    assert Path(default["server"]["data_dir"]).is_relative_to(state)
    chosen = tmp_path / "state"
    named = installed.run("db", "status", "--json", cwd=outside, VENUEDB_STATE_DIR=str(chosen))
    assert Path(_document(named)["server"]["data_dir"]).is_relative_to(chosen)


def test_a_project_dir_that_is_not_a_project_is_a_clear_error(
    installed: Installed, outside: Path
) -> None:
    empty = outside / "empty"
    empty.mkdir()
    by_option = installed.run("--project-dir", str(empty), "lint", cwd=outside)
    by_variable = installed.run("check", cwd=outside, VENUEDB_PROJECT_DIR=str(empty))
    for result in (by_option, by_variable):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "VENUEDB_PROJECT_DIR" in result.stderr and str(empty) in result.stderr


# -- the resolution order, in this process ---------------------------------------------------


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither a checkout beside the package nor files installed with it."""
    monkeypatch.setattr(paths, "CHECKOUT_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(paths, "BUNDLED_DIR", tmp_path / "no-bundle")


def _project(at: Path) -> Path:
    (at / "migrations").mkdir(parents=True)
    (at / "alembic.ini").write_text("[alembic]\n")
    return at


def test_no_project_files_anywhere_is_a_clear_error(nowhere: None) -> None:
    with pytest.raises(paths.ProjectNotFound, match="VENUEDB_PROJECT_DIR"):
        paths.project_root()
    result = invoke("lint")
    assert result.exit_code == 2
    assert "VENUEDB_PROJECT_DIR" in result.stderr and "--project-dir" in result.stderr


def test_the_project_dir_option_lasts_one_command(tmp_path: Path) -> None:
    result = invoke("--project-dir", str(tmp_path), "lint")
    assert result.exit_code == 2 and str(tmp_path) in result.stderr
    assert "VENUEDB_PROJECT_DIR" not in os.environ


def test_the_checkout_comes_before_the_installed_files(
    nowhere: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundled = _project(tmp_path / "bundled")
    monkeypatch.setattr(paths, "BUNDLED_DIR", bundled)
    assert paths.project_root() == bundled
    checkout = _project(tmp_path / "checkout")
    monkeypatch.setattr(paths, "CHECKOUT_DIR", checkout)
    assert paths.project_root() == checkout
    assert paths.state_dir() == checkout / ".venuedb"


def test_the_variable_comes_first_and_the_old_name_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old, new = _project(tmp_path / "old"), _project(tmp_path / "new")
    monkeypatch.setenv("VENUEDB_HOME", str(old))
    assert (paths.project_root(), paths.state_dir()) == (old, old / ".venuedb")
    monkeypatch.setenv("VENUEDB_PROJECT_DIR", str(new))
    assert (paths.project_root(), paths.state_dir()) == (new, new / ".venuedb")
    monkeypatch.setenv("VENUEDB_STATE_DIR", str(tmp_path / "state"))
    assert paths.state_dir() == tmp_path / "state"


def test_an_installed_package_keeps_its_state_in_the_users_state_directory(
    nowhere: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(paths, "BUNDLED_DIR", _project(tmp_path / "bundled"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert paths.state_dir() == tmp_path / "home" / ".local" / "state" / "venuedb"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert paths.state_dir() == tmp_path / "xdg" / "venuedb"


@pytest.mark.parametrize(
    "command",
    [
        ["snapshot"],
        ["release-manifest"],
        ["monitoring", "generate"],
        ["new-revision", "bar", "-m", "add a column"],
    ],
)
def test_commands_that_write_project_files_refuse_the_installed_copy(
    nowhere: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    """The installed copy lies in site-packages: a regenerated snapshot, manifest, alert
    file or new revision there is lost at the next install and never reviewed."""
    bundled = _project(tmp_path / "bundled")
    monkeypatch.setattr(paths, "BUNDLED_DIR", bundled)
    before = sorted(p.relative_to(bundled) for p in bundled.rglob("*"))
    result = invoke(*command)
    assert result.exit_code == 2, result.output
    assert "installed with venuedb" in result.stderr and "VENUEDB_PROJECT_DIR" in result.stderr
    assert sorted(p.relative_to(bundled) for p in bundled.rglob("*")) == before
