"""The README's exit-code table and the code agree: every status a command can put in its
--json document appears there with the exit code the code gives it."""

from __future__ import annotations

import re
from pathlib import Path

from toolkit.errors import VenuedbError
from toolkit.integrity import health_checks as checks
from toolkit.integrity import verify

README = Path(__file__).resolve().parents[1] / "README.md"


def _table() -> set[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Exit codes and JSON status words", 1)[1].split("\n#", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            for status in re.findall(r"`([a-z_]+)`", cells[1]):
                rows.add((int(cells[0]), status))
    return rows


def _errors(cls: type[VenuedbError]) -> list[type[VenuedbError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _errors(sub)
    return found


def test_every_error_class_is_in_the_table() -> None:
    table = _table()
    for cls in _errors(VenuedbError):
        assert (cls.exit_code, cls.status) in table, cls.__name__


def test_every_verify_verdict_is_in_the_table() -> None:
    table = _table()
    for status, code in verify.EXIT_CODES.items():
        assert (code, status) in table, status


def test_every_check_status_is_in_the_table() -> None:
    table = _table()
    for status in checks.STATUSES:
        assert (checks.exit_code(status), status) in table, status


def test_only_ok_clean_and_warning_exit_zero() -> None:
    assert {status for code, status in _table() if code == 0} == {"ok", "clean", "warning"}
