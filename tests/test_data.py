"""Importers, manifests, clip-grouped splits and the cross-split leakage check.

Attribute names and values come from the schema (never spelled here), so the tests follow the
YAML if it changes.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data import (
    SPLITS,
    ManifestError,
    SplitError,
    assign_splits,
    check_grouped,
    find_leakage,
    import_bdd100k,
    import_hsd,
    import_table,
    read_manifest,
    write_manifest,
)
from core.data.importers import BDD100K_SOURCE
from core.schema import UNKNOWN, default_schema

SCHEMA = default_schema()


# ---- helpers ---------------------------------------------------------------------------------
def _touch(root: Path, rel: str) -> str:
    # Manifests check only that the file exists; image contents do not matter here.
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\xff\xd8 not decoded")
    return rel


def _good_rows(root: Path, n: int = 8, clips: int = 4, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "path": _touch(root, f"img/f{i:03d}.jpg"),
                "clip_id": f"clip{i % clips}",
                "frame_index": i // clips,
                "timestamp_s": 0.5 * (i // clips),
                **SCHEMA.sample(rng),
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _no_manifest(root: Path) -> bool:
    leftovers = [p.name for p in root.iterdir() if p.name.startswith((".manifest", "manifest"))]
    return leftovers == []


def _a_bad_value(attr_index: int = 0) -> tuple[str, str]:
    attr = SCHEMA.attributes[attr_index]
    bad = "not_a_value"
    assert bad not in attr.value_names
    return attr.name, bad


# ---- import_table ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_import_table_good(tmp_path, kind):
    rows = _good_rows(tmp_path)
    table = tmp_path / f"labels.{kind}"
    if kind == "jsonl":
        _write_jsonl(table, rows)
    else:
        _write_csv(table, rows, "," if kind == "csv" else "\t")
    out = import_table(tmp_path, table)
    assert out == tmp_path / "manifest.jsonl"
    ds = read_manifest(tmp_path)
    assert len(ds) == len(rows)
    for i, row in enumerate(rows):
        assert ds.labels(i) == {a: row[a] for a in SCHEMA.names}
        assert ds.frames.loc[i, "clip_id"] == row["clip_id"]
        assert ds.frames.loc[i, "frame_index"] == row["frame_index"]
    check_grouped(ds.frames)
    assert set(ds.frames["split"]) <= set(SPLITS)


def test_import_table_keeps_given_splits_and_accepts_display_names(tmp_path):
    rows = _good_rows(tmp_path, n=6, clips=3)
    for r in rows:
        r["split"] = SPLITS[int(r["clip_id"][-1]) % len(SPLITS)]
        # Display names in any case are accepted and stored as value names.
        for a in SCHEMA:
            r[a.name] = a.value(r[a.name]).display.upper()
    rows[0][SCHEMA.names[0]] = UNKNOWN
    import_table(tmp_path, _write_csv(tmp_path / "t.csv", rows))
    ds = read_manifest(tmp_path)
    assert list(ds.frames["split"]) == [r["split"] for r in rows]
    assert ds.labels(0)[SCHEMA.names[0]] == UNKNOWN
    for i in range(1, len(rows)):
        for a in SCHEMA:
            assert a.value(ds.labels(i)[a.name]).display.upper() == rows[i][a.name]


def test_import_table_from_parquet_table(tmp_path):
    rows = _good_rows(tmp_path)
    pd.DataFrame(rows).to_parquet(tmp_path / "labels.parquet")
    import_table(tmp_path, tmp_path / "labels.parquet")
    ds = read_manifest(tmp_path)
    assert [ds.labels(i) for i in range(len(ds))] == [{a: r[a] for a in SCHEMA.names} for r in rows]


def test_import_table_relative_to_root_and_parquet(tmp_path):
    rows = _good_rows(tmp_path)
    _write_jsonl(tmp_path / "labels.jsonl", rows)
    (tmp_path / "manifest.jsonl").write_text("stale")
    out = import_table(tmp_path, "labels.jsonl", fmt="parquet")
    assert out.name == "manifest.parquet"
    # The other format's manifest goes, so a reader cannot pick up a stale one.
    assert not (tmp_path / "manifest.jsonl").exists()
    assert len(read_manifest(tmp_path)) == len(rows)


BAD_TABLE_CASES = {
    "missing file": (lambda r, root: r.update(path="img/nowhere.jpg"), "file not found"),
    "unknown value": (lambda r, root: r.update({_a_bad_value()[0]: _a_bad_value()[1]}), "not_a_value"),
    "escaping path": (lambda r, root: r.update(path="../x.jpg"), "escapes the dataset root"),
    "absolute path": (lambda r, root: r.update(path=str(root / "img" / "f000.jpg")), "must be relative"),
    "missing label": (lambda r, root: r.pop(SCHEMA.names[-1]), "missing"),
    "bad split": (lambda r, root: r.update(split="holdout"), "split"),
    "duplicate path": (lambda r, root: r.update(path="img/f000.jpg"), "duplicate path"),
    "rule broken": (None, "cannot go with"),
}


def _rule_breaking_labels() -> dict[str, str]:
    """A label set that breaks one of the schema's only_with rules (found, not spelled)."""
    for a in SCHEMA:
        for v in a.values:
            for other, allowed in v.only_with.items():
                bad = [w for w in SCHEMA[other].value_names if w not in allowed]
                if bad:
                    labels = {x.name: x.values[0].name for x in SCHEMA}
                    labels[a.name], labels[other] = v.name, bad[0]
                    return labels
    pytest.skip("schema has no rules to break")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("case", list(BAD_TABLE_CASES))
def test_import_table_bad_row_fails_whole_import(tmp_path, kind, case):
    rows = _good_rows(tmp_path, n=5)
    mutate, message = BAD_TABLE_CASES[case]
    if case == "bad split":
        for r in rows:
            r["split"] = "train"
    if mutate is None:
        rows[2].update(_rule_breaking_labels())
    else:
        mutate(rows[2], tmp_path)
    table = tmp_path / f"labels.{kind}"
    (_write_jsonl if kind == "jsonl" else _write_csv)(table, rows)
    # CSV rows count the header as row 1, like a spreadsheet; JSONL rows are lines.
    row_no = 4 if kind == "csv" else 3
    with pytest.raises(ManifestError) as info:
        import_table(tmp_path, table)
    msg = str(info.value)
    assert table.name in msg and f"row {row_no}" in msg and message in msg, msg
    assert _no_manifest(tmp_path)


def test_import_table_malformed_json_line(tmp_path):
    rows = _good_rows(tmp_path, n=3)
    lines = [json.dumps(r) for r in rows]
    lines.insert(1, "")  # blank lines are skipped but still counted
    lines[2] = lines[2][:-5]
    table = tmp_path / "labels.jsonl"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"labels\.jsonl row 3: invalid JSON"):
        import_table(tmp_path, table)
    table.write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    with pytest.raises(ManifestError, match=r"labels\.jsonl row 2: expected a JSON object"):
        import_table(tmp_path, table)
    assert _no_manifest(tmp_path)


def test_import_table_csv_row_numbers_with_blank_lines(tmp_path):
    rows = _good_rows(tmp_path, n=3)
    rows[2]["path"] = "img/gone.jpg"
    table = _write_csv(tmp_path / "t.csv", rows)
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:2] + ["", ""] + lines[2:]) + "\n")
    with pytest.raises(ManifestError, match=r"t\.csv row 6: file not found"):
        import_table(tmp_path, table)
    table.write_text(lines[0] + "\n" + lines[1] + ",extra\n")
    with pytest.raises(ManifestError, match=r"t\.csv row 2: more cells"):
        import_table(tmp_path, table)


def test_import_table_failed_import_keeps_old_manifest(tmp_path):
    rows = _good_rows(tmp_path, n=4)
    import_table(tmp_path, _write_jsonl(tmp_path / "good.jsonl", rows))
    before = (tmp_path / "manifest.jsonl").read_bytes()
    rows[1]["path"] = "img/gone.jpg"
    with pytest.raises(ManifestError, match="row 2"):
        import_table(tmp_path, _write_jsonl(tmp_path / "bad.jsonl", rows))
    assert (tmp_path / "manifest.jsonl").read_bytes() == before
    assert not list(tmp_path.glob(".manifest*"))


def test_import_table_table_level_errors(tmp_path):
    rows = _good_rows(tmp_path, n=4)
    for r in rows:
        r.pop(SCHEMA.names[1])
    with pytest.raises(ManifestError, match=f"missing column.*{SCHEMA.names[1]}"):
        import_table(tmp_path, _write_csv(tmp_path / "t.csv", rows))
    with pytest.raises(ManifestError, match="not found"):
        import_table(tmp_path, tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ManifestError, match="unsupported"):
        import_table(tmp_path, tmp_path / "t.xlsx")
    (tmp_path / "empty.csv").write_text("path\n")
    with pytest.raises(ManifestError):
        import_table(tmp_path, tmp_path / "empty.csv")
    assert _no_manifest(tmp_path)


def test_import_table_split_errors(tmp_path):
    rows = _good_rows(tmp_path, n=4, clips=2)
    rows[0]["split"] = "train"
    with pytest.raises(ManifestError, match="row 3: no split"):
        import_table(tmp_path, _write_csv(tmp_path / "t.csv", rows))
    # A clip given on both sides of a split is leakage: refuse it.
    for i, r in enumerate(rows):
        r["split"] = "train" if i < 3 else "test"
    with pytest.raises(ManifestError, match="clip1"):
        import_table(tmp_path, _write_csv(tmp_path / "t.csv", rows))
    assert _no_manifest(tmp_path)


# ---- HSD sentences ---------------------------------------------------------------------------
def _rule_pairs() -> list[tuple[str, str]]:
    """(attribute, other) pairs tied by only_with rules, e.g. the place/stage pair of HSD."""
    pairs = {(a.name, other) for a in SCHEMA for v in a.values for other in v.only_with}
    assert pairs, "the default schema has rules between attributes"
    return sorted(pairs)


def test_import_hsd_round_trip_every_ruled_pair(tmp_path):
    rng = random.Random(1)
    rows, expected = [], []
    for attr, other in _rule_pairs():
        for v in SCHEMA[attr].value_names:
            allowed = SCHEMA.allowed(other, {attr: v})
            assert allowed, f"{attr}={v} allows no {other}"
            for w in allowed:
                labels = SCHEMA.sample(rng, fixed={attr: v, other: w})
                rel = _touch(tmp_path, f"hsd/{len(rows):04d}.jpg")
                rows.append({"path": rel, "sentence": SCHEMA.to_sentence(labels)})
                expected.append(labels)
    import_hsd(tmp_path, _write_csv(tmp_path / "labels.tsv", rows, "\t"))
    ds = read_manifest(tmp_path)
    assert [ds.labels(i) for i in range(len(ds))] == expected


def test_import_hsd_sentence_without_optional_part(tmp_path):
    sentence = "Approaching Construction zone on highway road in cloudy weather on dry surface"
    _touch(tmp_path, "a.jpg")
    import_hsd(tmp_path, _write_jsonl(tmp_path / "l.jsonl", [{"path": "a.jpg", "sentence": sentence}]))
    labels = read_manifest(tmp_path).labels(0)
    known = {a: v for a, v in labels.items() if v != UNKNOWN}
    assert len(known) == len(SCHEMA.names) - 1
    for a, v in known.items():
        assert SCHEMA[a].value(v).sentence.lower() in sentence.lower()


def test_import_hsd_bad_rows(tmp_path):
    rng = random.Random(2)
    good = [
        {"path": _touch(tmp_path, f"{i}.jpg"), "sentence": SCHEMA.to_sentence(SCHEMA.sample(rng))}
        for i in range(3)
    ]
    bad_sentence = [dict(r) for r in good]
    bad_sentence[1]["sentence"] = "Somewhere over the rainbow"
    with pytest.raises(ManifestError, match=r"l\.csv row 3: sentence does not follow"):
        import_hsd(tmp_path, _write_csv(tmp_path / "l.csv", bad_sentence))
    broken = [dict(r) for r in good]
    broken[2]["sentence"] = SCHEMA.to_sentence(_rule_breaking_labels())
    with pytest.raises(ManifestError, match=r"l\.jsonl row 3: .*cannot go with"):
        import_hsd(tmp_path, _write_jsonl(tmp_path / "l.jsonl", broken))
    missing = [dict(r) for r in good]
    missing[0]["path"] = "gone.jpg"
    with pytest.raises(ManifestError, match=r"l\.jsonl row 1: file not found"):
        import_hsd(tmp_path, _write_jsonl(tmp_path / "l.jsonl", missing))
    escaping = [dict(r) for r in good]
    escaping[1]["path"] = "../x.jpg"
    with pytest.raises(ManifestError, match=r"row 2: .*escapes"):
        import_hsd(tmp_path, _write_jsonl(tmp_path / "l.jsonl", escaping))
    no_col = [{"path": r["path"]} for r in good]
    with pytest.raises(ManifestError, match="missing column"):
        import_hsd(tmp_path, _write_jsonl(tmp_path / "l.jsonl", no_col))
    assert _no_manifest(tmp_path)


# ---- BDD100K ---------------------------------------------------------------------------------
def _set_path(item: dict, key_path: str, value: str) -> None:
    node = item
    *parents, last = key_path.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = value


def _bdd_items() -> tuple[list[dict], list[dict[str, str]]]:
    """One image per alias in the schema (plus an unmapped value), and the labels expected."""
    sourced = [a for a in SCHEMA if BDD100K_SOURCE in a.sources]
    assert sourced, "the default schema maps some attributes from BDD100K"
    base = {a.name: UNKNOWN for a in SCHEMA}
    items, expected = [], []
    for a in sourced:
        aliases = [(v.name, al) for v in a.values for al in v.aliases.get(BDD100K_SOURCE, ())]
        assert aliases, f"{a.name} has a BDD100K source but no aliases"
        for k, (value, alias) in enumerate(aliases + [(UNKNOWN, "undefined")]):
            item: dict = {"name": f"{a.name}-{k}.jpg", "labels": [{"category": "car"}]}
            _set_path(item, a.sources[BDD100K_SOURCE], alias.upper() if k == 0 else alias)
            items.append(item)
            expected.append({**base, a.name: value})
    return items, expected


def test_import_bdd100k_maps_aliases(tmp_path):
    items, expected = _bdd_items()
    for it in items:
        _touch(tmp_path, f"images/{it['name']}")
    (tmp_path / "labels.json").write_text(json.dumps(items))
    import_bdd100k(tmp_path, tmp_path / "labels.json", images_subdir="images")
    ds = read_manifest(tmp_path)
    assert [ds.labels(i) for i in range(len(ds))] == expected
    assert list(ds.frames["path"]) == [f"images/{it['name']}" for it in items]
    # Attributes BDD100K does not label are unknown everywhere.
    for a in SCHEMA:
        if BDD100K_SOURCE not in a.sources:
            assert set(ds.frames[a.name]) == {UNKNOWN}
    check_grouped(ds.frames)


def test_import_bdd100k_fixed_split(tmp_path):
    items, _ = _bdd_items()
    for it in items:
        _touch(tmp_path, f"img/val/{it['name']}")
    (tmp_path / "l.json").write_text(json.dumps(items))
    import_bdd100k(tmp_path, "l.json", images_subdir="img/val", split="val", fmt="parquet")
    assert set(read_manifest(tmp_path).frames["split"]) == {"val"}


@pytest.mark.parametrize(
    "name, message",
    [("gone.jpg", "file not found"), ("../../x.jpg", "escapes"), ("/etc/passwd", "relative"), ("", "missing 'name'")],
)
def test_import_bdd100k_bad_rows(tmp_path, name, message):
    items, _ = _bdd_items()
    for it in items:
        _touch(tmp_path, f"images/{it['name']}")
    items[1]["name"] = name
    (tmp_path / "labels.json").write_text(json.dumps(items))
    with pytest.raises(ManifestError) as info:
        import_bdd100k(tmp_path, tmp_path / "labels.json")
    msg = str(info.value)
    assert "labels.json row 2" in msg and message in msg, msg
    assert _no_manifest(tmp_path)


def test_import_bdd100k_malformed_json(tmp_path):
    (tmp_path / "labels.json").write_text('[{"name": "a.jpg", ')
    with pytest.raises(ManifestError, match=r"labels\.json: invalid JSON"):
        import_bdd100k(tmp_path, tmp_path / "labels.json")
    (tmp_path / "labels.json").write_text('{"name": "a.jpg"}')
    with pytest.raises(ManifestError, match="expected a JSON list"):
        import_bdd100k(tmp_path, tmp_path / "labels.json")
    assert _no_manifest(tmp_path)


# ---- manifests -------------------------------------------------------------------------------
def test_parquet_manifest_round_trip(tmp_path):
    rows = _good_rows(tmp_path, n=10)
    for i, r in enumerate(rows):
        r["split"] = SPLITS[int(r["clip_id"][-1]) % 3]
        if i == 3:
            r[SCHEMA.names[0]] = UNKNOWN
    write_manifest(tmp_path, rows, fmt="jsonl")
    from_jsonl = read_manifest(tmp_path).frames
    write_manifest(tmp_path, rows, fmt="parquet")
    assert not (tmp_path / "manifest.jsonl").exists()
    from_parquet = read_manifest(tmp_path).frames
    pd.testing.assert_frame_equal(from_jsonl, from_parquet)
    assert from_parquet.loc[3, SCHEMA.names[0]] == UNKNOWN
    assert list(from_parquet["timestamp_s"]) == [r["timestamp_s"] for r in rows]


def test_write_manifest_names_origin_and_row(tmp_path):
    rows = _good_rows(tmp_path, n=3)
    rows[1]["frame_index"] = "seven"
    with pytest.raises(ManifestError, match="src.csv row 9: frame_index"):
        write_manifest(tmp_path, rows, origin="src.csv", row_numbers=[8, 9, 10])
    assert _no_manifest(tmp_path)


# ---- splits ----------------------------------------------------------------------------------
def _frames(sizes: list[int], group: str = "clip_id") -> pd.DataFrame:
    keys = [f"g{g}" for g, n in enumerate(sizes) for _ in range(n)]
    return pd.DataFrame({group: keys, "path": [f"{i}.jpg" for i in range(len(keys))]})


def test_assign_splits_never_splits_a_group():
    rng = random.Random(0)
    for trial in range(60):
        sizes = [rng.randint(1, 25) for _ in range(rng.randint(1, 40))]
        frames = _frames(sizes)
        out = assign_splits(frames, seed=trial)
        check_grouped(out)
        assert len(out) == len(frames) and set(out["split"]) <= set(SPLITS)
        assert out["split"].notna().all()
        # Enough groups: every split gets some.
        if len(sizes) >= 3:
            assert set(out["split"]) == set(SPLITS)
        # Deterministic, and independent of row order.
        assert out.equals(assign_splits(frames, seed=trial))
        shuffled = frames.sample(frac=1.0, random_state=trial)
        again = assign_splits(shuffled, seed=trial).sort_index()
        assert list(again["split"]) == list(out["split"])


def test_assign_splits_fractions_by_frames():
    rng = random.Random(3)
    sizes = [rng.randint(1, 10) for _ in range(400)]
    out = assign_splits(_frames(sizes), fractions=(0.7, 0.15, 0.15), seed=5)
    share = out["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.7, abs=0.05)
    assert share["val"] == pytest.approx(0.15, abs=0.05)
    assert share["test"] == pytest.approx(0.15, abs=0.05)
    seeds = {tuple(assign_splits(_frames(sizes), seed=s)["split"]) for s in range(3)}
    assert len(seeds) == 3
    only_test = assign_splits(_frames(sizes[:20]), fractions=(0, 0, 1))
    assert set(only_test["split"]) == {"test"}


def test_assign_splits_other_group_and_errors():
    out = assign_splits(_frames([3, 4, 5, 6], group="drive"), group="drive")
    check_grouped(out, group="drive")
    with pytest.raises(ValueError, match="clip_id"):
        assign_splits(_frames([2], group="drive"))
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(_frames([2]), fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(_frames([2]), fractions=(1, -1, 1))
    assert assign_splits(_frames([])).empty


def test_check_grouped_names_the_leaking_group():
    frames = _frames([2, 2])
    frames["split"] = ["train", "train", "train", "test"]
    with pytest.raises(SplitError, match="g1"):
        check_grouped(frames)
    frames["split"] = ["train", "train", "test", "test"]
    check_grouped(frames)


# ---- leakage ---------------------------------------------------------------------------------
def _embeddings(n: int = 80, d: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_leakage_finds_planted_cross_split_duplicate(backend):
    x = _embeddings()
    splits = np.array([SPLITS[i % 3] for i in range(len(x))])
    noise = np.random.default_rng(1).normal(scale=0.01, size=x.shape[1])
    x[40] = x[5] + noise  # 5 is test, 40 is val
    x[3] = x[6]  # both train: not leakage
    out = find_leakage(x, splits, threshold=0.95, backend=backend)
    assert list(out.columns) == ["i", "j", "split_i", "split_j", "similarity"]
    assert len(out) == 1
    row = out.iloc[0]
    assert (row.i, row.j, row.split_i, row.split_j) == (5, 40, "test", "val")
    assert row.similarity > 0.99


def test_leakage_not_crowded_out_by_within_split_duplicates():
    x = _embeddings(n=60)
    splits = np.array(["train"] * 50 + ["test"] * 10)
    for i in range(1, 12):
        x[i] = x[0]  # twelve identical train frames
    x[55] = x[0]
    out = find_leakage(x, splits, threshold=0.95, k=3)
    # Every train copy pairs with the test copy; none of the train-train pairs appear.
    assert set(zip(out.i, out.j, strict=True)) == {(i, 55) for i in range(12)}
    assert (out.split_i != out.split_j).all()


def test_leakage_backends_agree_and_sorted():
    x = _embeddings(n=120, d=16, seed=4)
    splits = np.array([SPLITS[i % 3] for i in range(len(x))])
    a = find_leakage(x, splits, threshold=0.5, k=4, backend="numpy")
    b = find_leakage(x, splits, threshold=0.5, k=4, backend="faiss")
    assert len(a) > 0
    pd.testing.assert_frame_equal(a[["i", "j"]], b[["i", "j"]])
    np.testing.assert_allclose(a.similarity, b.similarity, atol=1e-5)
    assert a.similarity.is_monotonic_decreasing
    assert (a.similarity >= 0.5).all() and (a.i < a.j).all()


def test_leakage_edge_cases():
    x = _embeddings(n=10)
    empty = find_leakage(x, ["train"] * 10)
    assert empty.empty and list(empty.columns) == ["i", "j", "split_i", "split_j", "similarity"]
    x[1] = 0.0  # zero vectors must not produce NaN or matches
    assert find_leakage(x, ["train", "test"] * 5, threshold=0.9).empty
    with pytest.raises(ValueError, match="split labels"):
        find_leakage(x, ["train"] * 9)
    with pytest.raises(ValueError):
        find_leakage(x[0], ["train"])


def test_no_attribute_names_spelled_in_data_code():
    # The schema YAML is the only place attribute names are spelled.
    root = Path(__file__).resolve().parents[1] / "core" / "data"
    words = set(SCHEMA.names) | {v.name for a in SCHEMA for v in a.values if len(v.name) > 3}
    for path in root.glob("*.py"):
        text = path.read_text()
        for w in words:
            assert not re.search(rf"['\"]{re.escape(w)}['\"]", text), f"{path.name} spells {w!r}"
