"""Bad input gets one clear line naming the file and row, never a traceback (issue 18, items 4, 5, 8-10).

Regression cases for each failure the probe found, then property-based tests (hypothesis):
the CLI's one-line contract for `import` and `index`, `import` and `index` agreeing on every
row, numbers (NaN, +-Inf, huge, out of range) and Unicode in paths and JSONL.
Attribute names and values come from the schema, never spelled here.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from core.data import ManifestError, import_table, read_manifest
from core.data.manifest import MAX_FRAME_INDEX, Dataset
from core.schema import UNKNOWN, default_schema

SCHEMA = default_schema()
ATTRS = SCHEMA.names
LIMIT = 80  # characters of a bad value an error may quote
MAX_LINE = 1000  # an error line quoting one value (and listing allowed ones) stays under this
NO_MODEL = "file:/nonexistent/model"  # a valid manifest then fails at the model: still one line


def _labels(i: int = 0) -> dict[str, str]:
    return SCHEMA.sample(random.Random(i))


def _root(tmp: Path, n: int = 3) -> Path:
    """A dataset folder with ``n`` frame files f0.png.. (contents never decoded here)."""
    tmp.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (tmp / f"f{i}.png").write_bytes(b"x")
    return tmp


def _row(i: int, **over: object) -> dict:
    return {"path": f"f{i}.png", "clip_id": f"c{i}", "frame_index": i, "timestamp_s": 0.5 * i,
            "split": "train", **_labels(i), **over}


def _jsonl(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def run_cli(*argv: str) -> tuple[int, str]:
    """main() in-process; returns (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(list(argv))
    return rc, err.getvalue()


def assert_one_line(rc: int, err: str, *must: str) -> str:
    assert rc != 0, err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:2000]
    assert "Traceback" not in err and len(lines[0]) <= MAX_LINE, lines[0][:500]
    for m in must:
        assert m in lines[0], (m, lines[0])
    return lines[0]


def both(root: Path, text: str | bytes) -> tuple[tuple[int, str], tuple[int, str]]:
    """The same JSONL through `import table` and (as the manifest) through `index`."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    (root / "labels.jsonl").write_bytes(data)
    (root / "manifest.jsonl").write_bytes(data)
    imp = run_cli("import", "table", "--root", str(root), "--labels", str(root / "labels.jsonl"))
    (root / "manifest.jsonl").write_bytes(data)  # a successful import rewrote it
    out = root.parent / (root.name + "-ix")
    idx = run_cli("index", "--data", str(root), "--out", str(out), "--model", NO_MODEL)
    assert not (root.parent / (root.name + "-ix.building")).exists()
    return imp, idx


# ---- item 4 and 10: numbers ------------------------------------------------------------------
BAD_FRAME_INDEX = [1e20, 2**64, 2**63, -1, 1.7, "1.7", {}, [], True, "NaN", float("inf"), "1e400", "x",
                   "9" * 5000]
BAD_TIMESTAMP = ["NaN", "nan", "Infinity", "-Infinity", "inf", {}, [], True, -0.5, "1e999", 10**400]


@pytest.mark.parametrize("value", BAD_FRAME_INDEX, ids=repr)
def test_bad_frame_index_refused_by_import_and_index_with_the_row(tmp_path, value):
    root = _root(tmp_path / "d")
    rows = [_row(0), _row(1, frame_index=value), _row(2)]
    for rc_err in both(root, _jsonl(rows)):
        line = assert_one_line(*rc_err, "row 2", "frame_index")
        assert "no such checkpoint" not in line  # refused at validation, not at the model


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_literals_refused(tmp_path, literal):
    root = _root(tmp_path / "d")
    text = _jsonl([_row(0), json.dumps(_row(1))[:-1] + f', "timestamp_s": {literal}}}'])
    for rc_err in both(root, text):
        assert_one_line(*rc_err, "row 2", "timestamp_s")


@pytest.mark.parametrize("value", BAD_TIMESTAMP, ids=lambda v: repr(v)[:20])
def test_bad_timestamps_refused(tmp_path, value):
    root = _root(tmp_path / "d")
    for rc_err in both(root, _jsonl([_row(0), _row(1, timestamp_s=value)])):
        assert_one_line(*rc_err, "row 2", "timestamp_s")


def test_largest_int64_frame_index_is_kept_exactly(tmp_path):
    root = _root(tmp_path / "d")
    (root / "labels.jsonl").write_text(_jsonl([_row(0, frame_index=MAX_FRAME_INDEX), _row(1)]))
    import_table(root, root / "labels.jsonl")
    ds = read_manifest(root)
    assert ds.frames["frame_index"].tolist() == [MAX_FRAME_INDEX, 1]
    assert ds.frames["frame_index"].dtype == np.int64


@pytest.mark.parametrize("values", [[2**63, 1], [2**64 - 1, 1]])
def test_uint64_parquet_values_do_not_wrap(tmp_path, values):
    root = _root(tmp_path / "d")
    rows = [_row(i) for i in range(2)]
    table = pa.table({**{k: [r[k] for r in rows] for k in rows[0] if k != "frame_index"},
                      "frame_index": pa.array(values, pa.uint64())})
    pq.write_table(table, root / "labels.parquet")
    with pytest.raises(ManifestError, match=r"labels\.parquet row 1: frame_index .* out of range"):
        import_table(root, root / "labels.parquet")
    pq.write_table(table, root / "manifest.parquet")
    with pytest.raises(ManifestError, match=r"manifest\.parquet row 1: frame_index"):
        read_manifest(root)


def test_huge_frame_index_fails_before_embedding_and_leaves_no_building(tmp_path):
    from core.index import build_index, building_path

    root = _root(tmp_path / "d")
    frames = read_manifest_frames(root, [_row(0), _row(1)])
    frames["frame_index"] = frames["frame_index"].astype(object)
    frames.loc[1, "frame_index"] = 2**64  # a Dataset made in code, never read from a manifest

    class NeverEmbeds:
        embed_dim, identity = 4, "never@0"

        def embed_batch(self, pixels):
            raise AssertionError("embedded a frame of a table that should have been refused")

    out = tmp_path / "ix"
    with pytest.raises(ManifestError, match="row 2: frame_index .* out of range"):
        build_index(Dataset(root, frames, SCHEMA), NeverEmbeds(), out, progress=False)
    assert not building_path(out).exists() and not out.exists()


def read_manifest_frames(root: Path, rows: list[dict]):
    (root / "manifest.jsonl").write_text(_jsonl(rows))
    return read_manifest(root).frames


def test_duplicates_refused_by_index_as_by_import(tmp_path):
    root = _root(tmp_path / "d")
    for rc_err in both(root, _jsonl([_row(0), _row(1), _row(1, clip_id="c9")])):
        assert_one_line(*rc_err, "row 3", "duplicate path", "first at row 2")


# ---- item 8: errors that name the file and row and quote little -------------------------------
def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CASES = {
    "nul byte in path": lambda: json.dumps(_row(1, path="f1\u0000.png")),
    "path part over 255 bytes": lambda: json.dumps(_row(1, path="é" * 200 + ".png")),
    "deeply nested json": lambda: json.dumps(_row(1))[:-1] + f', "extra": {_deep(100_000)}}}',
    "5000-digit integer": lambda: json.dumps(_row(1))[:-1] + ', "frame_index": ' + "7" * 5000 + "}",
    "1M-character label": lambda: json.dumps(_row(1, **{ATTRS[0]: "q" * 1_000_000})),
    "1M-character split": lambda: json.dumps(_row(1, split="v" * 1_000_000)),
    "lone surrogate in path": lambda: json.dumps(_row(1, path="f1\ud800.png")),
    "label as an object": lambda: json.dumps(_row(1, **{ATTRS[0]: {"a": [1, 2]}})),
    "not an object": lambda: "[1, 2, 3]",
    "broken json": lambda: '{"path": "f1.png", ',
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_error_names_file_and_row_and_quotes_little(tmp_path, case):
    root = _root(tmp_path / "d")
    text = _jsonl([_row(0), CASES[case]()])
    for name, (rc, err) in zip(("labels.jsonl", "manifest.jsonl"), both(root, text), strict=True):
        line = assert_one_line(rc, err, name, "row 2")
        assert re.search(rf"(.)\1{{{LIMIT}}}", line) is None, line  # the bad value is quoted short


def test_non_utf8_manifest_names_file_and_row(tmp_path):
    root = _root(tmp_path / "d")
    data = (_jsonl([_row(0)]) + json.dumps(_row(1, clip_id="cé"), ensure_ascii=False)).encode().replace("é".encode(), b"\xff")
    for name, rc_err in zip(("labels.jsonl", "manifest.jsonl"), both(root, data), strict=True):
        assert_one_line(*rc_err, name, "row 2", "UTF-8")


# ---- item 9: JSONL lines end at \n only --------------------------------------------------------
@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\u0085"])  # splitlines() splits at each; JSON allows them raw
def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path, sep):
    root = _root(tmp_path / "d")
    rows = [_row(0, clip_id=f"a{sep}b"), _row(1)]
    (root / "labels.jsonl").write_text(_jsonl(rows).replace("\\u" + f"{ord(sep):04x}", sep))
    assert sep in (root / "labels.jsonl").read_text()  # raw in the file, not escaped
    import_table(root, root / "labels.jsonl")
    assert read_manifest(root).frames["clip_id"].tolist() == [f"a{sep}b", "c1"]


# whole-file JSON (BDD100K labels, DriveLM QA) fails the same ways as a JSONL row, naming the line
@pytest.mark.parametrize(("data", "says"), [
    (b'[\n  {"name": "a.jpg"},\n  {"name": }\n]', "invalid JSON at line 3"),
    (b'[\n\n  "\xff"]', "line 3: not UTF-8 text"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[" + b"9" * 5000 + b"]", "invalid JSON (Exceeds the limit"),
])
def test_whole_file_json_errors_name_file_and_line(tmp_path, data, says):
    from core.jsonl import read_json
    from core.vqa.drivelm_format import DriveLMError, load_json

    (tmp_path / "labels.json").write_bytes(data)
    for read, error in ((lambda p: read_json(p, ManifestError), ManifestError), (load_json, DriveLMError)):
        with pytest.raises(error) as e:
            read(tmp_path / "labels.json")
        assert str(e.value).startswith(f"{tmp_path / 'labels.json'}") and says in str(e.value), str(e.value)
        assert "\n" not in str(e.value)


# ---- item 5: rejected weights ------------------------------------------------------------------
class Evil:
    def __reduce__(self):
        return (print, ("a pickle ran",))


def _model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "assets/scenescope-tiny/open_clip_config.json", folder)
    return folder


def test_pickled_weights_refused_in_one_line(tmp_path, capsys):
    import torch

    folder = _model_folder(tmp_path)
    torch.save({"w": Evil()}, folder / "weights.pt")
    root = _root(tmp_path / "d")
    (root / "manifest.jsonl").write_text(_jsonl([_row(0)]))
    rc, err = run_cli("index", "--data", str(root), "--out", str(tmp_path / "ix"),
                      "--model", f"file:{folder / 'weights.pt'}")
    assert_one_line(rc, err, "weights.pt", "refused", "pickled")
    assert "a pickle ran" not in capsys.readouterr().out


@pytest.mark.parametrize("blob", [b"\x00" * 64, b"\xff" * 8 + b"{}", b""])
def test_broken_safetensors_refused_in_one_line(tmp_path, blob):
    folder = _model_folder(tmp_path)
    (folder / "open_clip_model.safetensors").write_bytes(blob)
    root = _root(tmp_path / "d")
    (root / "manifest.jsonl").write_text(_jsonl([_row(0)]))
    rc, err = run_cli("index", "--data", str(root), "--out", str(tmp_path / "ix"), "--model", f"file:{folder}")
    assert_one_line(rc, err, "open_clip_model.safetensors", "refused")


# ---- property-based ----------------------------------------------------------------------------
NASTY_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\u0000", "\u2028", "\u0085", "é", "日本", "🚗", "a\nb", "NaN", "-1",
                     "../x.png", "/etc/passwd", "x" * 300, "\ud800"]),
)
NASTY_NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.sampled_from([2**63, 2**63 - 1, 2**64, 10**30, 1e20, 1.7, -0.0, True, False]),
)
NASTY = st.one_of(NASTY_TEXT, NASTY_NUMBER, st.none(), st.just({}), st.just([]),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
COLUMNS = ["path", "clip_id", "frame_index", "timestamp_s", "split", *ATTRS]


def _valid(col: str) -> st.SearchStrategy:
    """A valid value of a column (label values never in another spelling, which only import maps)."""
    if col in ATTRS:
        return st.sampled_from([*SCHEMA[col].value_names, UNKNOWN])
    if col == "path":
        return st.sampled_from([f"f{i}.png" for i in range(3)])  # duplicates happen across rows
    if col == "frame_index":
        return st.one_of(st.integers(0, MAX_FRAME_INDEX), st.integers(0, 10**6).map(float))
    if col == "timestamp_s":
        return st.floats(0, 1e9, allow_subnormal=False)
    if col == "split":
        return st.just("train")
    return st.text(min_size=1, max_size=8).filter(lambda t: t.strip())


@st.composite
def ROW(draw) -> dict:
    """A valid row, then maybe one column made nasty and maybe one optional column left out."""
    row = {c: draw(_valid(c)) for c in COLUMNS}
    if draw(st.booleans()):
        row[draw(st.sampled_from(COLUMNS))] = draw(NASTY)
    if draw(st.booleans()):
        row.pop(draw(st.sampled_from(["clip_id", "frame_index", "timestamp_s", "split"])))
    return row


# allow_subnormal=False on every float strategy: a library loaded earlier in the test session
# (compiled with fast-math) can set flush-to-zero, and hypothesis then refuses to draw subnormals.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _dump(rows: list[dict]) -> str:
    # allow_nan: JSON's NaN/Infinity literals are in the input space too (Python's json emits them)
    return _jsonl([json.dumps(r, allow_nan=True) for r in rows])


def _accepts(fn) -> tuple[bool, str]:
    try:
        fn()
    except ManifestError as e:
        return False, str(e)
    return True, ""


@SETTINGS
@given(rows=st.lists(ROW(), min_size=1, max_size=3))
def test_import_and_index_agree_on_every_row(tmp_path_factory, rows):
    root = _root(tmp_path_factory.mktemp("agree"))
    text = _dump(rows).encode("utf-8", "surrogatepass")
    (root / "labels.jsonl").write_bytes(text)
    (root / "manifest.jsonl").write_bytes(text)
    ok_index, why_index = _accepts(lambda: read_manifest(root))
    ok_import, why_import = _accepts(lambda: import_table(root, root / "labels.jsonl"))
    assert ok_import == ok_index, (why_import, why_index)
    if ok_import:
        a = read_manifest(root).frames  # as import wrote it (it may assign splits)
        (root / "manifest.jsonl").write_bytes(text)
        b = read_manifest(root).frames
        assert a.drop(columns="split").sort_values("path").reset_index(drop=True).equals(
            b.drop(columns="split").sort_values("path").reset_index(drop=True))
        for f in (a, b):
            assert all(math.isfinite(t) and t >= 0 for t in f["timestamp_s"])
            assert all(0 <= i <= MAX_FRAME_INDEX for i in f["frame_index"])
    else:
        for why in (why_import, why_index):
            assert " row " in why and len(why) < MAX_LINE + len(str(root)), why


@SETTINGS
@given(rows=st.lists(ROW(), min_size=1, max_size=3), garbage=st.one_of(st.none(), st.binary(max_size=40)))
def test_cli_gives_one_line_never_a_traceback(tmp_path_factory, rows, garbage):
    root = _root(tmp_path_factory.mktemp("cli"))
    text = _dump(rows).encode("utf-8", "surrogatepass") + (garbage or b"")
    for rc, err in both(root, text):
        if rc == 0:  # import accepted it; index never reaches success (no such model)
            assert err == ""
            continue
        line = assert_one_line(rc, err)
        named = ("labels.jsonl" in line or "manifest.jsonl" in line or "/nonexistent/model" in line)
        assert named, line


@SETTINGS
@given(name=st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=40)
       .filter(lambda s: s.strip() and s not in (".", "..") and len(s.encode()) <= 250))
def test_unicode_paths_round_trip_through_import_and_index(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("uni")
    (root / name).write_bytes(b"x")
    rows = [{"path": name, **_labels(0)}]
    (root / "labels.jsonl").write_text(_jsonl(rows), encoding="utf-8")
    import_table(root, root / "labels.jsonl")
    ds = read_manifest(root)
    assert ds.frames["path"].tolist() == [name] and ds.abspath(name).read_bytes() == b"x"
