"""The CI/CD examples in ci/: the GitHub Actions and GitLab CI pipelines declare the steps of
ci/pipeline.sh in the script's own order, and those steps, run through the real CLI in that
order on a fresh database, deploy it and leave reports that say so; a drifted schema, a check
that measured nothing and a deploy lock held elsewhere fail their step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml

from toolkit.engine.locks import DEPLOY_LOCK, try_lock

CI = Path(__file__).resolve().parent.parent / "ci"
PIPELINE = CI / "pipeline.sh"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
# The venv's bin first on PATH: venuedb (and the python3 the script reads the JSON with).
VENV_BIN = Path(sys.executable).parent

# Top-level keys of a .gitlab-ci.yml that are not jobs.
GITLAB_GLOBALS = frozenset(
    {"stages", "variables", "default", "workflow", "include", "image", "services", "cache"}
    | {"before_script", "after_script", "pages"}
)
STEP_CALL = re.compile(r"ci/pipeline\.sh\s+([a-z]+)")


def _load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a mapping"
    return document


def _calls(commands: list[str]) -> list[str]:
    """The pipeline.sh steps these shell commands run, in order."""
    return [step for command in commands for step in STEP_CALL.findall(command)]


def github_jobs() -> dict[str, dict[str, Any]]:
    jobs = _load(GITHUB)["jobs"]
    assert isinstance(jobs, dict)
    return jobs


def github_steps(job: dict[str, Any]) -> list[str]:
    return _calls([step["run"] for step in job["steps"] if "run" in step])


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    """The jobs in the order GitLab runs them: by stage, then as written."""
    document = _load(GITLAB)
    stages: list[str] = document["stages"]
    jobs = {name: job for name, job in document.items() if name not in GITLAB_GLOBALS}
    for name, job in jobs.items():
        assert job["stage"] in stages, f"job {name}'s stage is not in stages"
    return dict(sorted(jobs.items(), key=lambda item: stages.index(item[1]["stage"])))


def gitlab_steps(job: dict[str, Any]) -> list[str]:
    # after_script runs after script, whether script passed or not.
    return _calls(job.get("script", []) + job.get("after_script", []))


def example_order(jobs: dict[str, dict[str, Any]], steps_of: Any) -> list[str]:
    """The steps of the example path: every job but the production one (the one bound to an
    environment), in job order."""
    return [step for job in jobs.values() if "environment" not in job for step in steps_of(job)]


def script_order() -> list[str]:
    listed = subprocess.run(
        [str(PIPELINE), "steps"], capture_output=True, text=True, check=True, timeout=30
    )
    return listed.stdout.split()


def ci_check_names() -> str:
    """CHECK_NAMES of the example's database job: the checks that measure something on an
    empty database."""
    names = github_jobs()["rehearse"]["env"]["CHECK_NAMES"]
    assert names == gitlab_jobs()["rehearse"]["variables"]["CHECK_NAMES"]
    return str(names)


def pipeline(
    *steps: str, url: str | None, artifacts: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    """ci/pipeline.sh STEPS as a CI job runs it: venuedb on PATH, DATABASE_URL and the
    artifacts directory given, nothing else of the test's environment deciding for it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "VENUEDB_RECORDS_DIR", "GITHUB_ACTIONS")
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ARTIFACTS_DIR"] = str(artifacts)
    if url is not None:
        env["DATABASE_URL"] = url
    env.update(settings)
    return subprocess.run(
        [str(PIPELINE), *steps], capture_output=True, text=True, env=env, timeout=900
    )


def document(artifacts: Path, name: str) -> dict[str, Any]:
    parsed = json.loads((artifacts / name).read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return parsed


def test_both_pipelines_run_the_script_steps_in_its_order() -> None:
    order = script_order()
    assert order == ["lint", "sql", "rehearse", "apply", "verify", "check", "records"]
    github, gitlab = github_jobs(), gitlab_jobs()
    assert example_order(github, github_steps) == order
    assert example_order(gitlab, gitlab_steps) == order
    # Production runs exactly the database steps the example rehearsed, in the same order.
    database_steps = order[order.index("rehearse") :]
    assert github_steps(github["rehearse"]) == database_steps
    assert github_steps(github["production"]) == database_steps
    assert gitlab_steps(gitlab["rehearse"]) == database_steps
    assert gitlab_steps(gitlab["production"]) == database_steps


def test_github_workflow_gates_production_and_keeps_the_artifacts() -> None:
    workflow = _load(GITHUB)
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert triggers is not None, "the workflow names no trigger"
    assert {"push", "pull_request"} <= set(triggers)
    jobs = github_jobs()
    assert jobs["rehearse"]["needs"] == "lint"
    assert jobs["rehearse"]["services"]["postgres"]["image"] == "postgres:15"
    assert "localhost:5432" in jobs["rehearse"]["env"]["DATABASE_URL"]
    production = jobs["production"]
    assert production["needs"] == "rehearse"
    assert production["environment"] == "production"
    assert "refs/heads/main" in production["if"]
    assert production["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    for name, job in jobs.items():
        steps = job["steps"]
        upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
        assert len(upload) == 1 and upload[0]["with"]["path"] == "artifacts/", name
        # The reports of a failed step are what the artifact is for.
        assert upload[0]["if"] == "${{ !cancelled() }}", name
        assert steps[-1] is upload[0], name
        records = [s for s in steps if "ci/pipeline.sh records" in s.get("run", "")]
        assert all(s["if"] == "${{ !cancelled() }}" for s in records), name


def test_gitlab_pipeline_gates_production_and_keeps_the_artifacts() -> None:
    document = _load(GITLAB)
    assert document["stages"] == ["lint", "rehearse", "deploy"]
    jobs = gitlab_jobs()
    assert list(jobs) == ["lint", "rehearse", "production"]
    assert jobs["rehearse"]["services"][0]["name"] == "postgres:15"
    assert "@postgres:5432/" in jobs["rehearse"]["variables"]["DATABASE_URL"]
    production = jobs["production"]
    assert production["needs"] == ["rehearse"]
    assert production["environment"]["name"] == "production"
    assert production["rules"] == [
        {
            "if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
            "when": "manual",
            "allow_failure": False,
        }
    ]
    # Not DATABASE_URL itself: a project variable of that name would override the
    # throwaway database's URL in the rehearse job.
    assert production["variables"]["DATABASE_URL"] == "$PRODUCTION_DATABASE_URL"
    for name, job in jobs.items():
        assert job["artifacts"]["when"] == "always", name
        assert job["artifacts"]["paths"] == ["artifacts/"], name


def test_a_step_without_a_database_url_fails_before_running_anything(tmp_path: Path) -> None:
    result = pipeline("verify", url=None, artifacts=tmp_path / "artifacts")
    assert result.returncode == 2
    assert "FAIL verify (exit 2): DATABASE_URL is not set" in result.stderr
    assert not (tmp_path / "artifacts" / "verify.json").exists()


def test_the_example_pipeline_deploys_a_fresh_database(empty_db_url: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    check_names = ci_check_names()
    for step in example_order(github_jobs(), github_steps):
        result = pipeline(step, url=empty_db_url, artifacts=artifacts, CHECK_NAMES=check_names)
        assert result.returncode == 0, f"{step}:\n{result.stdout}\n{result.stderr}"
        assert f"==> venuedb pipeline: {step}" in result.stdout
        assert f"PASS {step}" in result.stdout

    lint = document(artifacts, "lint.json")
    assert lint["status"] == "ok" and lint["findings"] == []

    sql = (artifacts / "upgrade.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE alembic_version" in sql and "CREATE TABLE" in sql

    rehearse = document(artifacts, "rehearse.json")
    apply = document(artifacts, "apply.json")
    assert rehearse["status"] == "ok" and rehearse["rehearsed"] is True
    assert apply["status"] == "ok" and apply["rehearsed"] is False
    # The rehearsal left the target alone: apply still found every revision pending, and
    # did what the rehearsal planned.
    planned = [revision["revision"] for revision in rehearse["planned"]]
    assert planned and apply["done"] == planned
    assert isinstance(apply["deployment_id"], int)
    record = Path(apply["record"])
    assert record.parent == artifacts / "deployment-records" and record.is_file()

    verify = document(artifacts, "verify.json")
    assert verify["status"] == "clean" and verify["clean"] is True

    check = document(artifacts, "check.json")
    assert check["status"] == "ok"
    assert sorted(c["name"] for c in check["checks"]) == sorted(check_names.split())

    records = document(artifacts, "records.json")
    newest = records["records"][0]
    assert (newest["id"], newest["command"], newest["result"]) == (
        apply["deployment_id"],
        "apply",
        "succeeded",
    )
    status = document(artifacts, "status.json")
    assert status["status"] == "ok" and status["pending"] == []


def test_a_drifted_schema_fails_the_verify_step(db_url: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    assert pipeline("verify", url=db_url, artifacts=artifacts).returncode == 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap")

    result = pipeline("verify", "check", url=db_url, artifacts=artifacts)

    assert result.returncode == 3, result.stderr
    assert "FAIL verify (exit 3): drift" in result.stderr
    verify = document(artifacts, "verify.json")
    assert verify["status"] == "drift"
    assert "public.allocations.allocations_no_overlap" in {d["name"] for d in verify["drift"]}
    # The pipeline stopped at the failing step.
    assert "==> venuedb pipeline: check" not in result.stdout


def test_a_check_that_measured_nothing_fails_the_check_step(db_url: str, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    # Every check, on a database without bookings or sales: the rates measure nothing.
    result = pipeline("check", url=db_url, artifacts=artifacts)

    assert result.returncode == 5, result.stderr
    assert "FAIL check (exit 5): no_data: nothing was measured" in result.stderr
    assert document(artifacts, "check.json")["status"] == "no_data"
    # The checks the example names measure something even there.
    named = pipeline("check", url=db_url, artifacts=artifacts, CHECK_NAMES=ci_check_names())
    assert named.returncode == 0, named.stderr
    assert document(artifacts, "check.json")["status"] == "ok"


def test_a_deploy_lock_held_elsewhere_fails_apply_after_its_retries(
    empty_db_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    with psycopg.connect(empty_db_url, autocommit=True) as other_deploy:
        assert try_lock(other_deploy, DEPLOY_LOCK)
        result = pipeline(
            "apply",
            url=empty_db_url,
            artifacts=artifacts,
            LOCK_WAIT="1s",
            LOCKED_RETRIES="1",
            LOCKED_PAUSE="0",
        )
        untouched = other_deploy.execute(
            "SELECT to_regclass('public.alembic_version') IS NULL"
        ).fetchone()

    assert result.returncode == 4, result.stderr
    assert "apply: lock held (exit 4), attempt 1 of 2" in result.stderr
    assert "FAIL apply (exit 4): another deploy still holds the lock after 2 attempts" in (
        result.stderr
    )
    assert document(artifacts, "apply.json")["status"] == "locked"
    assert untouched == (True,)


def test_the_script_is_executable_and_strict() -> None:
    # Both pipelines call it as ci/pipeline.sh: git must keep its executable bit.
    assert os.access(PIPELINE, os.X_OK)
    text = PIPELINE.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
