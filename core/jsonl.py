"""JSON read one way for every table the project keeps: JSON Lines (manifests, QA tables) and
whole-file JSON (image-label lists such as BDD100K's).

Lines end at "\n" only, as JSONL defines: ``str.splitlines()`` would also split inside strings that
hold U+2028 or U+0085 and reject valid files. Every failure names the file and the line, and quotes
at most a short piece of what was wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.quote import one_line


def read_jsonl(path: Path, error: type[Exception] = ValueError) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON objects of ``path`` and their 1-based line numbers (blank lines skipped); a file that
    cannot be read, is not UTF-8, or holds a line that is not a JSON object raises ``error``."""
    text = _decoded(path, error, "row")
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for n, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{path} row {n}", error)
        if not isinstance(row, dict):
            raise error(f"{path} row {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
        numbers.append(n)
    return rows, numbers


def read_json(path: Path, error: type[Exception] = ValueError) -> Any:
    """The JSON value of the whole file ``path``; failures raise ``error`` naming the file and line."""
    text = _decoded(path, error, "line")
    return parse_json(text.removeprefix("\ufeff"), str(path), error, at_line=True)


def _decoded(path: Path, error: type[Exception], unit: str) -> str:
    """The file's text; unreadable or non-UTF-8 bytes raise ``error`` naming the ``unit`` (row, line)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{path} {unit} {line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def parse_json(text: str, where: str, error: type[Exception] = ValueError, at_line: bool = False) -> Any:
    """``json.loads(text)``; every way it can fail raises ``error`` starting with ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: invalid JSON{f' at line {e.lineno}' if at_line else ''} ({e.msg})") from None
    except RecursionError:
        raise error(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise error(f"{where}: invalid JSON ({one_line(str(e), 80)})") from None


__all__ = ["parse_json", "read_json", "read_jsonl"]
