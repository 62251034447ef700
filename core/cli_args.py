"""Option helpers shared by the ``scenescope`` sub-commands (core.cli and each feature's cli module)."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.schema import Schema


def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers, e.g. ``3,2,2,1,1,1``."""
    return tuple(float(x) for x in text.split(","))


def ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers, e.g. ``176,320``."""
    return tuple(int(x) for x in text.split(","))


# Command-line parsers of the field types an options dataclass may use (a tuple is a comma list).
_OPTION_TYPES: dict[Any, Any] = {int: int, float: float, str: str, tuple[int, ...]: ints,
                                 tuple[int, int]: ints, tuple[float, ...]: floats}


def add_dataclass_options(s: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per field of ``cls``, left ``None`` when not given (the field's default
    applies; :func:`given_options` collects the rest), so the options cannot drift from the dataclass."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind = _OPTION_TYPES.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {hints[f.name]} in _OPTION_TYPES")
        default = f.default if f.default is not MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        s.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None,
                       help=f"default {shown} ({cls.__name__})")


def given_options(a: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (see :func:`add_dataclass_options`)."""
    return {f.name: getattr(a, f.name) for f in fields(cls) if getattr(a, f.name, None) is not None}


def schema_option(a: argparse.Namespace) -> Schema:
    """The ``--schema`` file, else the bundled schema; a bad file is one error line naming it."""
    from core.schema import load_schema

    return load_schema(a.schema)


def frame_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


class _VoteSpaces(Sequence):
    """``core.predict.VOTE_SPACES``, read when argparse first looks at it (to check a value or to
    write a help text): importing core.predict loads numpy, which building the parser need not."""

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        from core.predict import VOTE_SPACES

        return VOTE_SPACES[i]

    def __len__(self) -> int:
        from core.predict import VOTE_SPACES

        return len(VOTE_SPACES)


def add_vote_space(s: argparse.ArgumentParser) -> None:
    # A metavar, else add_argument itself reads the choices to lay out the usage line.
    s.add_argument("--vote-space", choices=_VoteSpaces(), default="embedding", metavar="SPACE",
                   help="%(choices)s: neighbours by the whole embedding (default), or per attribute by its value prompts")
