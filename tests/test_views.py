"""Views: filtering and counts against a pandas reference, saved views round trip."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.index import IndexStore
from core.schema import default_schema
from core.views import (
    CLIP,
    SPLIT,
    TAGS,
    TAGS_COLUMN,
    VOTE,
    ViewError,
    familiarity_band,
    frame_table,
    load_views,
    make_view,
    save_view,
    value_counts,
    view_rows,
    views_path,
)

SCHEMA = default_schema()
WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


def _meta(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({"path": f"f/{i}.jpg", "clip_id": f"c{i % 7}", "frame_index": i, "timestamp_s": 0.0,
                     "split": rng.choice(["train", "val", "test"]), **SCHEMA.sample(rng),
                     TAGS_COLUMN: rng.choice(["", "blurry", "blurry,review", "review"])})
    return pd.DataFrame(rows)


def _pick(meta: pd.DataFrame, rng: random.Random) -> dict[str, tuple[str, ...]]:
    a, b = SCHEMA.names[0], SCHEMA.names[-1]
    return {a: tuple(rng.sample(sorted(set(meta[a])), 2)), b: tuple(rng.sample(sorted(set(meta[b])), 1))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_view_rows_and_counts_match_pandas(seed: int) -> None:
    meta = _meta(seed=seed)
    rng = random.Random(seed)
    votes = np.array(rng.choices(["correct", "wrong", "abstained"], k=len(meta)), dtype=object)
    labels = _pick(meta, rng)
    fields = {SPLIT: ("train", "test"), TAGS: ("review",), VOTE: ("wrong", "abstained")}
    view = make_view("v", labels, fields, SCHEMA)
    table = frame_table(meta, SCHEMA, vote=votes)

    # Reference: plain pandas boolean indexing, each filter written out independently.
    tagged = meta[TAGS_COLUMN].str.split(",").apply(lambda t: "review" in t)
    conds = {a: meta[a].isin(v) for a, v in labels.items()}
    conds[SPLIT] = meta["split"].isin(["train", "test"])
    conds[TAGS] = tagged
    conds[VOTE] = pd.Series(votes).isin(["wrong", "abstained"])
    ref = np.flatnonzero(np.logical_and.reduce(list(conds.values())))
    assert np.array_equal(view_rows(table, view), ref)
    assert len(ref) > 0

    counts = value_counts(table, view, [SCHEMA.names[0], SPLIT, CLIP, TAGS])
    a0 = SCHEMA.names[0]
    others = np.logical_and.reduce([c for k, c in conds.items() if k != a0])
    assert counts[a0] == meta[a0][others].value_counts().to_dict()
    others_split = np.logical_and.reduce([c for k, c in conds.items() if k != SPLIT])
    assert counts[SPLIT] == meta["split"][others_split].value_counts().to_dict()
    assert counts[CLIP] == meta["clip_id"][np.logical_and.reduce(list(conds.values()))].value_counts().to_dict()
    others_tags = np.logical_and.reduce([c for k, c in conds.items() if k != TAGS])
    flat = pd.Series([t for s in meta[TAGS_COLUMN][others_tags] for t in s.split(",") if t])
    assert counts[TAGS] == flat.value_counts().to_dict()


def test_empty_view_keeps_everything_and_missing_field_is_refused() -> None:
    meta = _meta(50)
    table = frame_table(meta, SCHEMA)
    assert np.array_equal(view_rows(table, make_view("all")), np.arange(50))
    with pytest.raises(ViewError, match="vote"):
        view_rows(table, make_view("v", fields={VOTE: ["wrong"]}))


def test_view_checked_against_schema() -> None:
    a = SCHEMA.names[0]
    with pytest.raises(ViewError, match="unknown attribute"):
        make_view("v", {"no_such_attribute": ["x"]}, schema=SCHEMA)
    with pytest.raises(ViewError, match="unknown value"):
        make_view("v", {a: ["no_such_value"]}, schema=SCHEMA)
    with pytest.raises(ViewError, match="unknown field"):
        make_view("v", fields={"weather_mood": ["x"]}, schema=SCHEMA)


def test_saved_views_round_trip(tmp_path) -> None:
    path = views_path(tmp_path, tmp_path / "indexes" / "demo")
    a = SCHEMA.names[1]
    v1 = make_view("rainy test", {a: SCHEMA[a].value_names[:2]}, {SPLIT: ["test"]}, SCHEMA)
    v2 = make_view("tagged", fields={TAGS: ["review"]}, schema=SCHEMA)
    save_view(path, v1, SCHEMA)
    saved = save_view(path, v2, SCHEMA)
    assert load_views(path, SCHEMA) == saved == {"rainy test": v1, "tagged": v2}
    with pytest.raises(ViewError, match="name"):
        save_view(path, make_view(" "), SCHEMA)
    path.write_text("{not json")
    with pytest.raises(ViewError, match=str(path.name)):
        load_views(path, SCHEMA)


def test_familiarity_bands() -> None:
    bands = familiarity_band(np.array([0.0, 0.1, 0.9, np.nan]), flag_below=0.01)
    assert list(bands) == ["unlike this index", "less familiar", "typical", ""]


# ---- the workbench: the sidebar's view on every page, correct and undo (AppTest) ---------------
def _own_index(small: object, tmp: object) -> object:
    """A copy of the session's small index and its dataset (corrections must not touch the shared one)."""
    shutil.copytree(small.data, tmp / "data")
    shutil.copytree(small.index, tmp / "index")
    manifest = json.loads((tmp / "index" / "manifest.json").read_text())
    manifest["dataset"] = str(tmp / "data")
    (tmp / "index" / "manifest.json").write_text(json.dumps(manifest))
    return tmp / "index"


@pytest.fixture(scope="module")
def own_index(mapped_index: object, tmp_path_factory: pytest.TempPathFactory) -> object:
    return _own_index(mapped_index, tmp_path_factory.mktemp("views-app"))


def _points(at: object) -> int:
    # Each map trace is named "<category> (<points>)"; plotly ships the coordinates as binary.
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name", "") for t in spec["data"] if t.get("type") == "scattergl"]
    return sum(int(re.search(r"\(([\d,]+)\)$", n).group(1).replace(",", "")) for n in names)


def test_sidebar_view_followed_by_map_search_triage_and_saved(own_index, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SCENESCOPE_INDEX", str(own_index))
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    meta = IndexStore.load(own_index).meta
    n_test = int((meta["split"] == "test").sum())
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _points(at) == len(meta)
    at.multiselect(key="fv_split").select("test").run()
    assert _points(at) == n_test
    assert any(f"{n_test:,} of {len(meta):,} frames" in m.value for m in at.sidebar.markdown)

    at.switch_page("views/search.py").run()
    assert at.multiselect(key="fv_split").value == ["test"]
    at.text_input(key="search_text").input("a sunny road").run()
    assert not at.exception, [e.value for e in at.exception]
    # Each frame hit's caption opens with its split ("test · <clip> · <time>").
    hits = [c.value.split(" · ")[0] for c in at.main.caption if re.match(r"^(train|val|test) · ", c.value)]
    assert hits and set(hits) == {"test"}

    at.switch_page("views/triage.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="fv_split").value == ["test"]
    at.text_input(key="fv__name").input("test frames").run()
    at.button(key="fv__save").click().run()
    saved = load_views(views_path(tmp_path, own_index), SCHEMA)
    assert saved["test frames"].fields == {SPLIT: ("test",)}


def test_triage_relabel_and_undo_restore_the_manifest(own_index, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SCENESCOPE_INDEX", str(own_index))
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    data = IndexStore.load(own_index).data_root
    before = (data / "manifest.jsonl").read_bytes()
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/triage.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="triage_act_relabel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Corrected" in s.value for s in at.success), [e.value for e in at.error]
    assert (data / "manifest.jsonl").read_bytes() != before
    assert IndexStore.load(own_index).manifest["labels_version"] == 1
    at.button(key="triage_act_undo").click().run()
    assert any("Undone" in s.value for s in at.success)
    assert (data / "manifest.jsonl").read_bytes() == before


def test_import_page_names_the_bad_row_then_writes_the_manifest(tmp_path) -> None:
    rng = random.Random(0)
    rows = [{"path": f"f{i}.jpg", **SCHEMA.sample(rng)} for i in range(4)]
    for r in rows:
        (tmp_path / r["path"]).write_bytes(b"x")  # the importer checks the files exist
    a = SCHEMA.names[0]
    bad = pd.DataFrame([*rows[:2], {**rows[2], a: "not_a_value"}, rows[3]])
    bad.to_csv(tmp_path / "labels.csv", index=False)
    # The page alone: the workbench's first page would load a model this page never needs.
    at = AppTest.from_file(str(Path(WORKBENCH).parent / "views" / "import_data.py"), default_timeout=60)
    at.run()
    at.text_input(key="import_root").input(str(tmp_path))
    at.text_input(key="import_labels").input("labels.csv").run()
    at.button(key="import_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "labels.csv row 4" in at.error[0].value and "not_a_value" in at.error[0].value
    assert not (tmp_path / "manifest.jsonl").exists()
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    at.button(key="import_go").click().run()
    assert "Wrote" in at.success[0].value
    assert len(read_manifest_rows(tmp_path)) == 4


def read_manifest_rows(root: Path) -> list[dict]:
    from core.data import read_manifest

    return read_manifest(root).frames.to_dict("records")
