"""The suite's ``--quick`` flag: small settings that check a bench script runs, not its figures.

Each script passes its quick settings as argparse defaults, so options given on the command line
still win over them (``--quick --model X``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def parse_args(ap: argparse.ArgumentParser, quick: dict[str, Any], argv: Sequence[str] | None = None
               ) -> argparse.Namespace:
    """Parse ``argv`` with ``--quick`` added; under it, ``quick`` replaces the parser's defaults."""
    settings = ", ".join(_option(k, v) for k, v in quick.items())
    ap.add_argument("--quick", action="store_true",
                    help=f"small settings for `make bench`, checking the script runs ({settings})")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**quick)
        args = ap.parse_args(argv)
    return args


def _option(name: str, value: Any) -> str:
    """How the setting would be typed: ``--name value``, ``--flag`` for a switch."""
    flag = "--" + name.replace("_", "-")
    if value is True:
        return flag
    return f"{flag} {' '.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
