"""The mutation scores and the survivors, from the workers' JSON lines: written as
mutation/results/mutation-report.{md,json} and printed.

verify's score is the share of applied mutations `venuedb verify` exits 3 on; the tests'
score the share a rule test fails on. A mutation that survives the tests must be
explained in mutation/survivors.toml (why it is harmless, or what catches it instead);
one that verify misses has no excuse."""

from __future__ import annotations

import fnmatch
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SURVIVORS_FILE = Path(__file__).with_name("survivors.toml")
TEST_TARGET = 0.95  # the floor for the tests; verify's is 1.0


@dataclass
class Report:
    results: list[dict[str, Any]]
    explained: list[tuple[str, str]]
    seconds: float
    problems: list[str] = field(default_factory=list)  # a broken baseline, a crashed worker
    # Mutations not made: the catalog proves they change nothing (id -> why).
    equivalent: dict[str, str] = field(default_factory=dict)

    @property
    def applied(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["error"]]

    @property
    def not_applied(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["error"]]

    @property
    def verify_missed(self) -> list[dict[str, Any]]:
        return [r for r in self.applied if not r["verify_detected"]]

    @property
    def test_survivors(self) -> list[dict[str, Any]]:
        return [r for r in self.applied if not r["killed_by"]]

    @property
    def unexplained(self) -> list[dict[str, Any]]:
        return [r for r in self.test_survivors if explanation(self.explained, r["id"]) is None]

    @property
    def stale_explanations(self) -> list[str]:
        """Entries of survivors.toml that match mutations this run tried, none of which
        survived: the tests kill them now, the entry is to remove."""
        ran = [r["id"] for r in self.applied]
        surviving = [r["id"] for r in self.test_survivors]
        return [
            pattern
            for pattern, why in self.explained
            if any(explanation([(pattern, why)], i) for i in ran)
            and not any(explanation([(pattern, why)], i) for i in surviving)
        ]

    def score(self, rows: list[dict[str, Any]], what: str) -> float:
        if not rows:
            return 0.0
        hit = sum(1 for r in rows if (r["verify_detected"] if what == "verify" else r["killed_by"]))
        return hit / len(rows)

    @property
    def failures(self) -> list[str]:
        """Why the run must not exit 0."""
        found = list(self.problems)
        if not self.applied:
            found.append("no mutation was applied: nothing was measured")
        if self.verify_missed:
            found.append(f"venuedb verify missed {len(self.verify_missed)} mutation(s)")
        if self.not_applied:
            found.append(f"PostgreSQL refused {len(self.not_applied)} generated mutation(s)")
        if self.unexplained:
            found.append(
                f"{len(self.unexplained)} mutation(s) survived the tests with no explanation "
                f"in {SURVIVORS_FILE.name}"
            )
        if self.applied and self.score(self.applied, "tests") < TEST_TARGET:
            found.append(f"the tests kill under {TEST_TARGET:.0%} of the mutations")
        return found

    def groups(self, key: str) -> list[tuple[str, int, float, float]]:
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self.applied:
            by[r[key] or "(none)"].append(r)
        return [
            (name, len(rows), self.score(rows, "verify"), self.score(rows, "tests"))
            for name, rows in sorted(by.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.failures,
            "failures": self.failures,
            "seconds": round(self.seconds, 1),
            "mutations": len(self.results),
            "applied": len(self.applied),
            "verify_score": round(self.score(self.applied, "verify"), 4),
            "test_score": round(self.score(self.applied, "tests"), 4),
            "by_release": _table(self.groups("release")),
            "by_object_kind": _table(self.groups("object_kind")),
            "by_mutation_kind": _table(self.groups("kind")),
            "verify_missed": [_brief(r) for r in self.verify_missed],
            "test_survivors": [
                _brief(r) | {"explanation": explanation(self.explained, r["id"])}
                for r in self.test_survivors
            ],
            "not_applied": [_brief(r) | {"error": r["error"]} for r in self.not_applied],
            "equivalent": self.equivalent,
            "stale_explanations": self.stale_explanations,
            "results": self.results,
        }

    def markdown(self) -> str:
        d = self.to_dict()
        lines = [
            "# Schema mutation testing",
            "",
            f"{d['applied']} mutations applied in {d['seconds']:.0f} s "
            f"({len(self.not_applied)} refused by PostgreSQL; {len(self.equivalent)} not made, "
            "proven equivalent).",
            "",
            f"- **verify score: {d['verify_score']:.1%}** (target 100 %): "
            f"{len(self.applied) - len(self.verify_missed)} of {d['applied']} detected",
            f"- **test score: {d['test_score']:.1%}** (target {TEST_TARGET:.0%}): "
            f"{len(self.applied) - len(self.test_survivors)} of {d['applied']} killed",
            "",
            "Verdict: " + ("**pass**" if d["ok"] else "**FAIL**: " + "; ".join(d["failures"])),
            "",
        ]
        for title, key in (
            ("release", "by_release"),
            ("object kind", "by_object_kind"),
            ("mutation kind", "by_mutation_kind"),
        ):
            lines += [
                f"## By {title}",
                "",
                f"| {title} | mutations | verify | tests |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {row['name']} | {row['mutations']} | {row['verify']:.1%} | {row['tests']:.1%} |"
                for row in d[key]
            ]
            lines.append("")
        lines += ["## Missed by verify", ""]
        lines += [f"- `{r['id']}`: {r['description']}" for r in d["verify_missed"]] or ["None."]
        lines += ["", "## Survived the tests", ""]
        lines += [
            f"- `{r['id']}` ({r['release']}): {r['description']}.  \n"
            f"  {r['explanation'] or '**not explained**'}"
            for r in d["test_survivors"]
        ] or ["None."]
        if self.equivalent:
            lines += [
                "",
                f"## Not made: equivalent ({len(self.equivalent)})",
                "",
                "Mutations of these kinds the catalog proves change nothing a role bound by "
                "row level security can do:",
                "",
            ]
            lines += [f"- `{i}`: {why}" for i, why in sorted(self.equivalent.items())]
        if d["not_applied"]:
            lines += ["", "## Refused by PostgreSQL", ""]
            lines += [f"- `{r['id']}`: {r['error']}" for r in d["not_applied"]]
        if d["stale_explanations"]:
            lines += ["", f"## Explained in {SURVIVORS_FILE.name} but now killed", ""]
            lines += [f"- `{i}`" for i in d["stale_explanations"]]
        return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, int, float, float]]) -> list[dict[str, Any]]:
    return [
        {"name": n, "mutations": c, "verify": round(v, 4), "tests": round(t, 4)}
        for n, c, v, t in rows
    ]


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "release", "description", "sql")}


def load_explanations(path: Path = SURVIVORS_FILE) -> list[tuple[str, str]]:
    """(id or fnmatch pattern, why) of every explained survivor, in file order."""
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return [(entry["id"], entry["why"]) for entry in data.get("survivor", [])]


def explanation(explained: list[tuple[str, str]], mutation_id: str) -> str | None:
    """The first entry whose id is the mutation's or a pattern matching it."""
    for pattern, why in explained:
        if pattern == mutation_id or fnmatch.fnmatchcase(mutation_id, pattern):
            return why
    return None
