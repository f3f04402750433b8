"""Database URLs: validation with one clear message, passwords never printed."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from toolkit.errors import BadInput
from toolkit.server.urls import mask_text, mask_url, masked_first_line, validate_url


def test_mask_url_hides_the_password() -> None:
    assert mask_url("postgresql://app:s3cret@db.example:5432/venuedb") == (
        "postgresql://app:***@db.example:5432/venuedb"
    )


def test_mask_url_leaves_passwordless_urls_alone() -> None:
    assert mask_url("postgresql://app@localhost/venuedb") == "postgresql://app@localhost/venuedb"


def test_mask_text_hides_keyword_passwords_and_urls_in_messages() -> None:
    text = "failed: host=db password=hunter2 and postgres://u:pw@h/d"
    masked = mask_text(text)
    assert "hunter2" not in masked and "pw@" not in masked


@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
    password=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789-_.~!$&'()*+,;=",
        min_size=4,
        max_size=30,
    ),
)
def test_no_password_survives_masking(user: str, password: str) -> None:
    url = f"postgresql://{user}:{password}@db.internal:6543/venuedb"
    assume(password not in url.replace(f":{password}@", ":@"))  # not also the user or host
    assert password not in mask_url(url)
    assert password not in mask_text(f"could not connect to {url}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "expected postgresql://"),
        ("mysql://u:p@h/db", "expected postgresql://"),
        ("postgresql://u:p@h:99999/db", "port"),
        ("postgresql://u:p@h:abc/db", "port"),
        ("postgresql://u:p@h:5432/", "names no database"),
        ("postgresql:///db", "names no host"),
    ],
)
def test_malformed_urls_are_rejected_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(BadInput, match=reason) as info:
        validate_url(url)
    assert ":p@" not in str(info.value)


def test_postgres_scheme_is_normalised() -> None:
    assert validate_url("postgres://u:p@h/db") == "postgresql://u:p@h/db"


# Each password is "Xk9v<nasty>Qz7w": neither half may appear anywhere in what is printed.
NASTY = ["@", ":", "/", "%40", "#", "?", "@@", ":@/", "%"]


@pytest.mark.parametrize("nasty", NASTY)
def test_nasty_passwords_never_printed_even_in_part(nasty: str) -> None:
    from tests.clihelpers import invoke

    url = f"postgresql://app:Xk9v{nasty}Qz7w@127.0.0.1:1/venuedb"
    printed = [mask_url(url), mask_text(f"could not connect to {url}: refused")]
    try:
        validate_url(url)
    except BadInput as exc:
        printed.append(str(exc))
    for command in (["status"], ["apply"], ["status", "--json"]):
        result = invoke(*command, "--database-url", url)
        assert result.exit_code == 2, result.output
        printed.append(result.output)
    for text in printed:
        assert "Xk9v" not in text and "Qz7w" not in text, text


def test_a_raw_at_in_the_password_is_refused_with_the_fix() -> None:
    with pytest.raises(BadInput, match="%40") as info:
        validate_url("postgresql://app:p@ss@db.internal/venuedb")
    assert "ss@db" not in str(info.value) and "p@" not in str(info.value)


def test_an_error_is_reported_by_its_first_line_masked_and_never_crashes() -> None:
    """One helper for every report of an exception (issue 20): three of its copies raised
    IndexError on an empty message, and some did not mask."""
    assert masked_first_line(RuntimeError("")) == "RuntimeError"
    assert masked_first_line(RuntimeError("\n  \n")) == "RuntimeError"
    assert (
        masked_first_line(RuntimeError("\n  cannot reach postgresql://u:s3cret@db/x\nDETAIL: y"))
        == "cannot reach postgresql://u:***@db/x"
    )
