"""The fleet inventory: a TOML file naming the databases a `venuedb fleet` command runs on.

    [defaults]
    concurrency = 4

    [[database]]
    name = "eu-canary"
    url_env = "EU_CANARY_DATABASE_URL"   # the URL read from this variable
    canary = true

    [[database]]
    name = "us-1"
    url = "postgresql://app@db.us-1.internal/venuedb"

The whole file is checked before any database is touched: one mistake is BadInput
(exit 2) naming the entry, and nothing runs.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.server.urls import mask_url, validate_url

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
# Names go into tables, logs and --only: letters, digits and . _ - only.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOP_KEYS = {"defaults", "database"}
_DEFAULT_KEYS = {"concurrency"}
_DATABASE_KEYS = {"name", "url", "url_env", "canary"}


@dataclass(frozen=True)
class FleetDatabase:
    name: str
    url: str  # validated, libpq form; never printed unmasked
    canary: bool
    source: str  # "url" or "$VARIABLE": where the URL came from

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class Inventory:
    path: Path
    databases: tuple[FleetDatabase, ...]
    concurrency: int | None  # from [defaults]; None: not set there

    def select(self, only: list[str]) -> list[FleetDatabase]:
        """The databases named by --only (all without it), in run order: every canary
        first, then the rest, each group in the file's order."""
        if only:
            known = {d.name for d in self.databases}
            unknown = [n for n in only if n not in known]
            if unknown:
                raise BadInput(
                    f"--only {', '.join(unknown)}: not in {self.path}; its databases: "
                    + ", ".join(d.name for d in self.databases)
                )
        chosen = [d for d in self.databases if not only or d.name in only]
        return [d for d in chosen if d.canary] + [d for d in chosen if not d.canary]


def load(path: Path, environ: dict[str, str] | None = None) -> Inventory:
    """Read and check the inventory at `path` (URLs from url_env read from `environ`,
    default the process environment)."""
    environ = dict(os.environ) if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read the inventory {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"the inventory {path} is not valid TOML: {exc}") from None
    where = f"the inventory {path}"
    _no_unknown_keys(data, _TOP_KEYS, where, "top-level key")
    concurrency = _defaults(data.get("defaults", {}), where)
    entries = data.get("database", [])
    if not isinstance(entries, list) or not entries:
        raise BadInput(
            f"{where} names no database: add a [[database]] table with a name and a url or url_env"
        )
    databases: list[FleetDatabase] = []
    for number, entry in enumerate(entries, 1):
        database = _database(entry, number, where, environ)
        if any(d.name == database.name for d in databases):
            raise BadInput(f"{where}: database {number} repeats the name {database.name!r}")
        databases.append(database)
    return Inventory(path, tuple(databases), concurrency)


def check_concurrency(value: int, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise BadInput(
            f"{option} must be a whole number from 1 to {MAX_CONCURRENCY}, not {value!r}"
        )
    return value


def _no_unknown_keys(table: dict[str, Any], allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BadInput(
            f"{where}: unknown {what} {', '.join(map(repr, unknown))} (allowed: "
            f"{', '.join(sorted(allowed))})"
        )


def _defaults(defaults: Any, where: str) -> int | None:
    if not isinstance(defaults, dict):
        raise BadInput(f"{where}: [defaults] must be a table")
    _no_unknown_keys(defaults, _DEFAULT_KEYS, f"{where} [defaults]", "key")
    if "concurrency" not in defaults:
        return None
    return check_concurrency(defaults["concurrency"], f"{where}: [defaults] concurrency")


def _database(entry: Any, number: int, where: str, environ: dict[str, str]) -> FleetDatabase:
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: database {number} must be a [[database]] table")
    name = entry.get("name")
    label = f"{where}: database {number}" + (f" ({name!r})" if isinstance(name, str) else "")
    _no_unknown_keys(entry, _DATABASE_KEYS, label, "key")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(
            f"{label}: name must be letters, digits, '.', '_' or '-' (starting with a letter "
            f"or digit), not {name!r}"
        )
    canary = entry.get("canary", False)
    if not isinstance(canary, bool):
        raise BadInput(f"{label}: canary must be true or false, not {canary!r}")
    if ("url" in entry) == ("url_env" in entry):
        raise BadInput(
            f"{label}: give exactly one of url and url_env (url_env, the name of a variable "
            "holding the URL, keeps the password out of the file)"
        )
    if "url" in entry:
        url, source = entry["url"], "url"
        if not isinstance(url, str):
            raise BadInput(f"{label}: url must be a string")
    else:
        variable = entry["url_env"]
        if not isinstance(variable, str) or not variable:
            raise BadInput(f"{label}: url_env must name an environment variable")
        url, source = environ.get(variable, ""), f"${variable}"
        if not url:
            raise BadInput(f"{label}: url_env {variable} is not set (or empty)")
    try:
        url = validate_url(url)
    except BadInput as exc:
        raise BadInput(f"{label}: {exc}") from None
    return FleetDatabase(name, url, canary, source)
