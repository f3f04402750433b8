"""Database URLs: parsing, validation, and masking of passwords wherever one is printed."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from toolkit.errors import BadInput

_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
# The password runs to the LAST '@' of the URL: a raw '@' inside it (p@ss) must not
# leave its tail ("ss") printed as if it were the host.
_PASSWORD_IN_URL = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>\S*)(?P<tail>@)", re.I
)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PASSWORD_KV = re.compile(r"(?P<head>password\s*=\s*)(?P<pw>'[^']*'|\S+)", re.I)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return mask_text(url)
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if _safe_port(parts) else "")
    return mask_text(urlunsplit(parts._replace(netloc=netloc)))


def mask_text(text: str) -> str:
    """Mask every password found in free text (URLs, `password=` pairs)."""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}***{m['tail']}", text)
    return _PASSWORD_KV.sub(lambda m: f"{m['head']}***", text)


def masked_first_line(exc: BaseException) -> str:
    """The first non-blank line of `exc`'s message, passwords masked; its class name when
    the message is empty (psycopg raises some with none), so a report never crashes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return mask_text(lines[0] if lines else type(exc).__name__)


def _safe_port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def validate_url(url: str) -> str:
    """Return the URL in libpq form (postgresql://...) or raise BadInput saying what is wrong."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BadInput(f"malformed database URL {mask_text(url)!r}: {exc}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise BadInput(
            f"malformed database URL {mask_url(url)!r}: expected postgresql://user:password@host:port/dbname"
        )
    _refuse_unencoded_userinfo(url, parts)
    try:
        port = parts.port
    except ValueError:
        raise BadInput(
            f"malformed database URL {mask_url(url)!r}: the port is not a number"
        ) from None
    if port is not None and not 0 < port < 65536:
        raise BadInput(f"malformed database URL {mask_url(url)!r}: port {port} is out of range")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname and "dbname=" not in parts.query:
        raise BadInput(f"malformed database URL {mask_url(url)!r}: it names no database")
    if not parts.hostname and "host=" not in parts.query:
        raise BadInput(f"malformed database URL {mask_url(url)!r}: it names no host")
    return urlunsplit(parts._replace(scheme="postgresql"))


def _refuse_unencoded_userinfo(url: str, parts: SplitResult) -> None:
    """A raw '@', '/', '?' or '#' in the password makes the URL ambiguous: libpq and Python
    split it at different places, and the piece after it would be printed as a host name."""
    if parts.netloc.count("@") > 1 or ("@" not in parts.netloc and "@" in url):
        raise BadInput(
            f"malformed database URL {mask_text(url)!r}: the user or password contains a raw "
            "'@', '/', '?' or '#'; percent-encode it (e.g. '@' as %40)"
        )
    if _BAD_PERCENT.search(parts.netloc):
        # libpq would refuse it quoting the raw token, i.e. the password itself.
        raise BadInput(
            f"malformed database URL {mask_url(url)!r}: a '%' in the user or password is not "
            "followed by two hex digits; write a literal '%' as %25"
        )


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy's psycopg 3 dialect."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/"))


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))
