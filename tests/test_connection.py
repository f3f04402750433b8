"""Which database a command uses: --database-url, DATABASE_URL, .env, the embedded server."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import BadInput
from toolkit.server import connection


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("VENUEDB_HOME", str(tmp_path / "project"))  # no embedded server there
    monkeypatch.chdir(tmp_path)


def test_option_wins_over_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@h/envdb")
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://dotenv@h/dotenvdb\n")
    target = connection.resolve("postgresql://opt:pw@h/optdb")
    assert (target.source, target.url) == ("--database-url", "postgresql://opt:pw@h/optdb")
    assert "pw" not in target.describe()


def test_environment_before_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@h/envdb")
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://dotenv@h/dotenvdb\n")
    assert connection.resolve(None).source == "DATABASE_URL"


def test_dotenv_with_quotes_and_export(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# local settings\nexport OTHER=1\nexport DATABASE_URL='postgresql://u:secret@h:5433/d'\n"
    )
    target = connection.resolve(None)
    assert target.source == ".env"
    assert target.url == "postgresql://u:secret@h:5433/d"
    assert target.masked == "postgresql://u:***@h:5433/d"


def test_dotenv_values_are_taken_as_written(tmp_path: Path) -> None:
    """A password with a $ is not expanded (python-dotenv would by default), a bare
    KEY sets nothing, and a value with an inline comment or double quotes is parsed as
    docker compose parses it."""
    (tmp_path / ".env").write_text(
        'BARE\nDATABASE_URL="postgresql://u:pa$HOME${USER}@h/d"  # the dev database\n'
    )
    target = connection.resolve(None)
    assert target.url == "postgresql://u:pa$HOME${USER}@h/d"
    assert connection.read_dotenv(tmp_path / ".env") == {"DATABASE_URL": target.url}
    assert connection.read_dotenv(tmp_path / "missing.env") == {}


def test_nothing_configured_says_how_to_name_a_database() -> None:
    with pytest.raises(BadInput, match="venuedb db start"):
        connection.resolve(None)


def test_unreachable_database_is_bad_input_with_one_line() -> None:
    target = connection.Target("postgresql://u:topsecret@127.0.0.1:1/nope", "--database-url")
    with pytest.raises(BadInput) as info:
        connection.check_reachable(target)
    message = str(info.value)
    assert "cannot reach postgresql://u:***@127.0.0.1:1/nope" in message
    assert "topsecret" not in message and "\n" not in message
