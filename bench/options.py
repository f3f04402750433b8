"""The command-line options several benchmarks share, declared once so that each means the
same in every benchmark (and `python -m bench` can pass --scale and --seed to all of them)."""

from __future__ import annotations

import argparse


def scaled_parser(
    description: str | None, *, scale_help: str | None = None, seed_help: str | None = None
) -> argparse.ArgumentParser:
    """A benchmark's argument parser with --scale (of the generated data, 1.0 the issue's
    row counts) and --seed (of everything generated or chosen at random)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0, help=scale_help)
    parser.add_argument("--seed", type=int, default=1, help=seed_help)
    return parser


def add_no_compare(parser: argparse.ArgumentParser, index: str, release: str) -> None:
    """--no-compare: skip the comparison runs without `index`, the schema as it was before
    `release` added it."""
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help=f"skip the runs without {index} (as before {release})",
    )


def add_write_rate(parser: argparse.ArgumentParser) -> None:
    """--rate: the writes per second of bench.migrations_under_load.writers, all kinds
    together."""
    parser.add_argument("--rate", type=float, default=100.0, help="writes per second, in all")
