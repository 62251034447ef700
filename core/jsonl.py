"""JSON Lines read one way for every table the project keeps (manifests, QA tables).

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
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{path} row {line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for n, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path} row {n}: invalid JSON ({e.msg})") from None
        except RecursionError:
            raise error(f"{path} row {n}: invalid JSON (nested too deeply)") from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise error(f"{path} row {n}: invalid JSON ({one_line(str(e), 80)})") from None
        if not isinstance(row, dict):
            raise error(f"{path} row {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
        numbers.append(n)
    return rows, numbers


__all__ = ["read_jsonl"]
