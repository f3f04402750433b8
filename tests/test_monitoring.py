"""The generated monitoring files (issue 19): the committed Prometheus rules and Grafana
dashboard are exactly what the check headers give, cover every check, have the formats'
structure; and every check's runbook link, and every link in runbooks/alerts.md, reaches
an existing heading."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.clihelpers import as_json, invoke
from toolkit.integrity import health_checks as health
from toolkit.integrity import monitoring

ROOT = Path(__file__).resolve().parent.parent
ALL = health.load_checks()
BY_NAME = {c.name: c for c in ALL}
DURATION = re.compile(r"^\d+[smhd]$")


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / monitoring.RULES).read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads((ROOT / monitoring.DASHBOARD).read_text(encoding="utf-8"))


# -- committed == generated ---------------------------------------------------------------


def test_the_committed_files_are_what_the_headers_give() -> None:
    for relative, text in monitoring.generate().items():
        assert (ROOT / relative).read_text(encoding="utf-8") == text, (
            f"{relative} is stale: run `venuedb monitoring generate` and commit it"
        )
    assert monitoring.generate() == monitoring.generate()  # deterministic


def test_check_mode_exits_3_naming_the_files_that_differ(tmp_path: Path) -> None:
    current = invoke("monitoring", "generate", "--check", "--json")
    assert (current.exit_code, as_json(current)["status"]) == (0, "ok"), current.output
    missing = invoke("monitoring", "generate", "--check", "--output-dir", str(tmp_path))
    assert missing.exit_code == 3
    assert "missing  monitoring/prometheus/venuedb-alerts.yml" in missing.stdout
    assert not (tmp_path / "monitoring").exists()  # --check writes nothing
    written = as_json(invoke("monitoring", "generate", "--output-dir", str(tmp_path), "--json"))
    assert written["status"] == "ok"
    assert set(written["files"].values()) == {"missing"}  # the state before writing
    rules = tmp_path / monitoring.RULES
    rules.write_text(rules.read_text() + "# edited by hand\n")
    stale = invoke("monitoring", "generate", "--check", "--output-dir", str(tmp_path), "--json")
    document = as_json(stale)
    assert (stale.exit_code, document["status"]) == (3, "drift")
    assert document["differ"] == [str(monitoring.RULES)]
    again = as_json(invoke("monitoring", "generate", "--output-dir", str(tmp_path), "--json"))
    assert again["files"] == {str(monitoring.RULES): "stale", str(monitoring.DASHBOARD): "current"}
    assert rules.read_text() == monitoring.generate()[monitoring.RULES]
    assert "--check" in invoke("monitoring", "generate", "--help").stdout


# -- the Prometheus rules ----------------------------------------------------------------------


def test_the_rules_have_prometheus_structure_and_cover_every_check() -> None:
    document = yaml.safe_load((ROOT / monitoring.RULES).read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    names = [g["name"] for g in document["groups"]]
    assert len(names) == len(set(names)) and "venuedb" in names
    rules = _rules()
    alerts = [r["alert"] for r in rules]
    assert len(alerts) == len(set(alerts))
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rule["alert"])
        assert DURATION.match(rule["for"]), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook_url"]
    for check in ALL:
        own = [r for r in rules if r["labels"].get("check") == check.name]
        thresholds = [t for t in (check.critical, check.warning) if t]
        # one rule per threshold, plus its error alert
        assert len(own) == len(thresholds) + 1, check.name
        for rule in own:
            assert rule["labels"]["domain"] == check.domain
        for rule in own[: len(thresholds)]:
            assert rule["for"] == check.for_.text
            assert rule["annotations"]["summary"] == check.description
            assert rule["annotations"]["runbook_url"] == check.runbook
        error = own[-1]
        assert error["expr"] == f'venuedb_check_status{{check="{check.name}", state="error"}} == 1'
        assert error["for"] == "15m"


def test_the_seeds_thresholds_become_exact_alerts() -> None:
    rules = {r["alert"]: r for r in _rules()}
    critical = rules["VenuedbConfirmationRateCritical"]
    assert critical["expr"] == 'venuedb_check_value{check="confirmation_rate"} < 90'
    assert critical["for"] == "10m"  # seed 001: "< 90% for >10 minutes"
    assert critical["labels"] == {
        "severity": "critical",
        "check": "confirmation_rate",
        "domain": "booking",
    }
    assert critical["annotations"]["runbook_url"] == "runbooks/alerts.md#confirmation_rate"
    assert rules["VenuedbConfirmationRateWarning"]["expr"].endswith("< 95")
    usage = rules["VenuedbCombinationUsageRateCritical"]["expr"]
    assert usage == (
        'venuedb_check_value{check="combination_usage_rate"} < 2 or '
        'venuedb_check_value{check="combination_usage_rate"} > 30'
    )
    orphans = rules["VenuedbOrphanedConfirmedBookingsCritical"]
    assert (orphans["expr"], orphans["for"]) == (
        'venuedb_check_value{check="orphaned_confirmed_bookings"} > 0',
        "0s",
    )
    down = rules["VenuedbDown"]
    assert (down["expr"], down["for"], down["labels"]["severity"]) == (
        "venuedb_up == 0",
        "5m",
        "critical",
    )
    # Information only: no threshold, so no threshold alert, only its error alert.
    assert "VenuedbConfirmationRateExcludingCancelledWarning" not in rules
    assert "VenuedbConfirmationRateExcludingCancelledError" in rules


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / monitoring.RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_promtool_fires_confirmation_rate_only_after_its_for(tmp_path: Path) -> None:
    """Seed 001: under 90 % for more than 10 minutes. At 85 % the alert is pending at 9
    minutes and firing at 11, with the check's labels and runbook."""
    rule = {r["alert"]: r for r in _rules()}["VenuedbConfirmationRateCritical"]
    labels = {**rule["labels"], "unit": "percent"}
    annotations = {
        **rule["annotations"],
        "description": "confirmation_rate is 85 percent: critical < 90 (window 5m).",
    }
    spec = {
        "rule_files": [str(ROOT / monitoring.RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'venuedb_check_value{check="confirmation_rate", '
                        'domain="booking", unit="percent"}',
                        "values": "85x20",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": rule["alert"], "exp_alerts": []},
                    {
                        "eval_time": "11m",
                        "alertname": rule["alert"],
                        "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the Grafana dashboard -----------------------------------------------------------------


def test_the_dashboard_has_a_panel_per_check_with_its_thresholds() -> None:
    board = _dashboard()
    (variable,) = board["templating"]["list"]
    assert (variable["type"], variable["query"], variable["name"]) == (
        "datasource",
        "prometheus",
        "datasource",
    )
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Deployment"] + [f"{d} checks" for d in sorted({c.domain for c in ALL})]
    by_title = {p["title"]: p for p in panels if p["type"] == "timeseries"}
    assert set(by_title) == set(BY_NAME)
    for name, panel in by_title.items():
        (target,) = panel["targets"]
        assert target["expr"] == f'venuedb_check_value{{check="{name}"}}'
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["links"] == [{"title": "runbook", "url": BY_NAME[name].runbook}]
    steps = {
        name: [
            (s["color"], s["value"]) for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]
        for name, p in by_title.items()
    }
    assert steps["confirmation_rate"] == [("red", None), ("orange", 90), ("green", 95)]
    assert steps["combination_usage_rate"] == [
        ("red", None),
        ("orange", 2),
        ("green", 5),
        ("orange", 15),
        ("red", 30),
    ]
    assert steps["orphaned_confirmed_bookings"] == [("green", None), ("red", 0)]
    assert steps["shadow_mode_event_volume"] == [("green", None)]
    units = {n: p["fieldConfig"]["defaults"]["unit"] for n, p in by_title.items()}
    assert units["confirmation_rate"] == "percent"
    exprs = {t["expr"] for p in panels for t in p.get("targets", [])}
    for metric in (
        "venuedb_up",
        "venuedb_release_applied",
        "venuedb_backfill_done_ratio",
        "venuedb_last_deployment_timestamp_seconds * 1000",
    ):
        assert metric in exprs


# -- runbook links --------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation dropped (hyphens and
    underscores kept), each space a hyphen."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match and not in_code:
            anchor = github_anchor(match[1])
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def _resolves(link: str, base: Path) -> bool:
    file, _, anchor = link.partition("#")
    path = (base / file) if file else base
    return path.is_file() and (not anchor or anchor in anchors(path))


def test_github_anchor_rules() -> None:
    assert github_anchor("confirmation_rate") == "confirmation_rate"
    assert github_anchor("Level 1: disable the feature (about 2 minutes, no data loss)") == (
        "level-1-disable-the-feature-about-2-minutes-no-data-loss"
    )
    assert github_anchor("Level 3: Option C, the database rollback (15-30 minutes)") == (
        "level-3-option-c-the-database-rollback-15-30-minutes"
    )
    assert github_anchor("When a `venuedb check` fires") == "when-a-venuedb-check-fires"


@pytest.mark.parametrize("check", ALL, ids=lambda c: c.name)
def test_every_runbook_header_links_to_a_heading_that_exists(check: health.HealthCheck) -> None:
    match = re.fullmatch(r"(runbooks/[\w.-]+\.md)#([\w-]+)", check.runbook)
    assert match, (
        f"{check.path}: runbook must be runbooks/<file>.md#<anchor>, not {check.runbook!r}"
    )
    path = ROOT / match[1]
    assert path.is_file(), f"{check.path}: {match[1]} does not exist"
    assert match[2] in anchors(path), f"{check.path}: no heading #{match[2]} in {match[1]}"


def test_alerts_md_has_a_section_per_check_and_its_links_resolve() -> None:
    alerts = ROOT / monitoring.ALERTS_RUNBOOK
    found = anchors(alerts)
    assert {c.name for c in ALL} <= found  # each section titled by the check's name
    for url in (monitoring.DOWN_RUNBOOK, monitoring.ERROR_RUNBOOK):
        assert _resolves(url, ROOT), url
    text = alerts.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        assert _resolves(link, alerts.parent if not link.startswith("#") else alerts), link
