"""Workbench pages (streamlit AppTest: main and error path of each) and their plain handlers."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CLIP, SmallIndex, write_finished_job
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import handlers, navigation
from core.schema import UNKNOWN

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
TIMEOUT = 120  # the first run in a process loads torch and the model


@pytest.fixture(scope="module")
def engine(index_env: SmallIndex) -> tuple:
    from core.pipeline import open_index

    return open_index(index_env.index)


def _jpeg(store: object, row: int = 0) -> bytes:
    buf = io.BytesIO()
    with Image.open(store.abspath(row)) as im:
        im.convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first dataframe on the page with ``column`` (st.dataframe keys are not exposed)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def _images(at: AppTest) -> int:
    return len(at.get("image"))


# ---- handlers: plain functions -----------------------------------------------------------------
def test_check_upload_names_the_problem() -> None:
    assert "unsupported file type .txt" in handlers.check_upload("notes.txt", 10)
    assert "empty" in handlers.check_upload("a.jpg", 0)
    assert "over the 1 MB upload limit" in handlers.check_upload("a.mp4", 3 * 1024**2, max_mb=1)
    assert handlers.check_upload("clip.MP4", 1000) is None


def test_analyze_upload_image_and_bad_bytes(engine: tuple) -> None:
    model, store = engine
    analysis, error = handlers.analyze_upload("scene.jpg", _jpeg(store), model, store, k=4)
    assert error is None and analysis.kind == "image"
    assert len(analysis.votes[0].neighbors) == 4
    assert set(analysis.votes[0].attributes) == set(store.schema.names)

    analysis, error = handlers.analyze_upload("broken.jpg", b"\x00not an image", model, store)
    assert analysis is None and "broken.jpg" in error and "not a readable image" in error
    analysis, error = handlers.analyze_upload("broken.mp4", b"\x00\x01not a video", model, store)
    assert analysis is None and "broken.mp4" in error


def test_analyze_index_scene_leaves_itself_out(engine: tuple) -> None:
    _, store = engine
    a = handlers.analyze_index_scene(store, 3, k=5)
    assert a.truth == store.labels(3) and a.index_id == 3
    assert 3 not in [n.id for n in a.votes[0].neighbors]
    table = handlers.vote_frame(a.votes[0], store.schema, a.truth)
    assert list(table["Attribute"]) == [attr.display for attr in store.schema.attributes]
    assert set(table["Correct"]) <= {"✓", "✗", "—"}


def test_disagreements_ignore_abstentions(engine: tuple) -> None:
    from core.predict import knn_vote

    _, store = engine
    labels = [store.labels(i) for i in range(3)]
    vote = knn_vote([0.9, 0.8, 0.7], labels, store.schema)
    for nb in vote.neighbors:
        against = handlers.disagreements(vote, nb.labels)
        assert all(nb.labels[a] != vote.attributes[a].value for a in against)
        assert all(vote.attributes[a].value != "unknown" for a in against)


def test_selected_ids_from_plotly_selection() -> None:
    selection = {"points": [
        {"curve_number": 0, "point_index": 4, "customdata": 17},
        {"curve_number": 1, "point_index": 4, "customdata": [23]},
        {"curve_number": 1, "point_index": 5, "customdata": 17},  # duplicate row
        {"curve_number": 2, "point_index": 0, "customdata": -1},  # the placed upload: not a row
        {"curve_number": 3, "point_index": 0},
    ], "point_indices": [4, 4, 5, 0], "box": [], "lasso": []}
    assert handlers.selected_ids(selection) == [17, 23]
    assert handlers.selected_ids({"selection": selection}) == [17, 23]
    assert handlers.selected_ids(None) == [] and handlers.selected_ids({"points": []}) == []


def test_export_selection_csv_and_jsonl(engine: tuple) -> None:
    from core.maps import selection_table

    _, store = engine
    table = selection_table(store, [5, 2, 9])
    csv = pd.read_csv(io.BytesIO(handlers.export_rows(table, "csv")))
    assert csv["id"].tolist() == [5, 2, 9]
    rows = [json.loads(line) for line in handlers.export_rows(table, "jsonl").decode().splitlines()]
    assert [r["id"] for r in rows] == [5, 2, 9] and all(a in rows[0] for a in store.schema.names)
    with pytest.raises(ValueError, match="unknown export format"):
        handlers.export_rows(table, "xlsx")


def test_triage_report_filters_and_focus(engine: tuple) -> None:
    from core.scoring import vote_rows

    _, store = engine
    schema = store.schema
    report = handlers.evaluate_index_split(store, "test", k=5)
    rows = np.flatnonzero(store.meta["split"].to_numpy() == "test")
    assert report["rows"] == len(rows)
    assert all(f["id"] in set(rows.tolist()) for f in report["failures"])
    metrics = handlers.metrics_table(report, schema)
    assert list(metrics["Attribute"]) == [a.display for a in schema.attributes]
    # coverage against accuracy, recomputed from the votes themselves
    votes = vote_rows(store, rows, k=5)
    for a, row in zip(schema.attributes, metrics.itertuples(), strict=True):
        labelled = [i for i, r in enumerate(rows) if store.labels(int(r))[a.name] != UNKNOWN]
        decided = [i for i in labelled if not votes[i].attributes[a.name].abstained]
        assert row[metrics.columns.get_loc("Decided") + 1] == pytest.approx(len(decided) / len(labelled))
        assert all(votes[i].attributes[a.name].share > 0.5 for i in decided)

    focus = handlers.focus_classes(schema)
    assert focus, "the schema should have junction / road-work classes to open the failure list on"
    every = handlers.failure_table(report, schema)
    assert len(every) == len(report["failures"])
    attr = every["attribute"].iat[0] if len(every) else schema.names[0]
    only = handlers.failure_table(report, schema, attributes=[attr])
    assert set(only["attribute"]) <= {attr}
    some = handlers.failure_table(report, schema, classes=focus)
    assert all(handlers.class_key(r.attribute, r.truth) in focus or
               handlers.class_key(r.attribute, r.prediction) in focus for r in some.itertuples())
    with pytest.raises(ValueError, match="holds no 'nosuch' frames"):
        handlers.evaluate_index_split(store, "nosuch")


def test_triage_in_prompt_space_matches_bruteforce_and_blames_each_attributes_own_voters(engine: tuple) -> None:
    from core.predict import class_text_embeddings

    model, store = engine
    space = class_text_embeddings(model, store.schema)
    report = handlers.evaluate_index_split(store, "test", k=5, prompt_space=space)
    emb, meta = store.embeddings(), store.meta
    train = np.flatnonzero(meta["split"].to_numpy() == "train")
    rows = np.flatnonzero(meta["split"].to_numpy() == "test")
    attr = store.schema.attributes[0]
    proj = emb @ space[attr.name].T
    proj /= np.linalg.norm(proj, axis=1, keepdims=True)
    failures = [f for f in report["failures"] if f["attribute"] == attr.name][:10]
    assert failures, "the small index should give some wrong votes to check"
    for f in failures:
        q = f["id"]
        others = train[meta["clip_id"].to_numpy()[train] != meta["clip_id"].iat[q]]  # own clip left out
        top = others[np.argsort(-(proj[others] @ proj[q]), kind="stable")[:5]]
        misled = [nb["id"] for nb in f["misleading"]]
        assert misled and set(misled) <= set(top.tolist())  # the attribute's own prompt-space neighbours
        assert all(meta[attr.name].iat[i] == f["prediction"] for i in misled)
    assert report["rows"] == len(rows)
    plain = handlers.evaluate_index_split(store, "test", k=5)
    assert report["attributes"] != plain["attributes"]


def test_navigation_registry() -> None:
    sections = navigation.sections()
    assert [p.title for p in sections["Explore"]] == ["Scene", "Map", "Search", "Ask"]
    assert [p.title for p in sections["Evaluate"]] == ["Triage"]
    unbuilt = navigation.PageSpec("Later", "views/later.py", ":material/forum:", "Explore", ("core.nosuch",))
    assert not navigation.available(unbuilt)  # no page file, no engine: left out, nothing breaks
    missing_engine = navigation.PageSpec("Scene", "views/scene.py", "", "Explore", ("core.nosuch",))
    assert not navigation.available(missing_engine)
    assert sum(p.default for p in navigation.PAGES) == 1


# ---- pages (AppTest) -------------------------------------------------------------------------------
def test_workbench_opens_on_scene_with_manifest(index_env: SmallIndex) -> None:
    at = _app()
    assert at.title[0].value == "Scene"
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert "Frames" in sidebar and "Created" in sidebar and index_env.model in sidebar
    assert at.info and "Upload" in at.info[0].value


def test_landing_page_draws_before_the_model_has_loaded(index_env: SmallIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from app import state

    started, release, real = threading.Event(), threading.Event(), handlers.open_model

    def held(store: object, name: str | None = None) -> object:  # the model load, held back
        started.set()
        assert release.wait(60), "the test never released the model"
        return real(store, name)

    monkeypatch.setattr(handlers, "open_model", held)
    state._model.clear()  # a model loaded by an earlier test would be served from the cache
    try:
        at = AppTest.from_file(WORKBENCH, default_timeout=30)
        at.run()
        assert not at.exception and at.title[0].value == "Scene"
        assert at.file_uploader(key="scene_upload") is not None and at.info
        sidebar = "\n".join(c.value for c in at.sidebar.caption)
        assert "Loading the model" in sidebar and "Frames" in sidebar
        assert started.wait(30)  # started once the page had drawn, though the page did not ask for it
        at.segmented_control(key="scene_source").set_value("From the index").run()  # votes need no model
        assert not at.exception and "Truth" in _table(at, "Vote").columns
        assert not release.is_set()
    finally:
        release.set()
    from core.index import IndexStore

    at.segmented_control(key="scene_source").set_value("Upload").run()  # an upload waits for the model
    at.file_uploader(key="scene_upload").set_value(("scene.jpg", _jpeg(IndexStore.load(index_env.index), 3),
                                                   "image/jpeg")).run()
    assert not at.exception and not at.error and "Vote" in _table(at, "Vote").columns
    at.run()  # the sidebar, drawn before the page waited, drops its clock on the next run
    assert "Loading the model" not in "\n".join(c.value for c in at.sidebar.caption)


def test_scene_upload_shows_votes_and_k_neighbours(engine: tuple) -> None:
    _, store = engine
    at = _app()
    at.sidebar.slider(key="ss_k").set_value(4).run()
    at.file_uploader(key="scene_upload").set_value(("scene.jpg", _jpeg(store, 7), "image/jpeg")).run()
    assert not at.exception and not at.error
    votes = _table(at, "Vote")
    assert list(votes["Attribute"]) == [a.display for a in store.schema.attributes]
    assert "Neighbours" in [s.value for s in at.subheader]
    assert _images(at) == 1 + 4  # the scene itself + k neighbour thumbnails
    assert _texts(at).count("sim 0.") + _texts(at).count("sim 1.") == 4


def test_scene_bad_upload_shows_error() -> None:
    at = _app()
    at.file_uploader(key="scene_upload").set_value(("dashcam.png", b"GIF89a-not-really", "image/png")).run()
    assert not at.exception
    assert at.error and "dashcam.png" in at.error[0].value
    assert "Neighbours" not in [s.value for s in at.subheader]


@pytest.mark.skipif(not CLIP.is_file(), reason=f"real fixture clip not found at {CLIP}")
def test_scene_clip_has_timeline_and_scrubber(engine: tuple) -> None:
    at = _app()
    at.file_uploader(key="scene_upload").set_value((CLIP.name, CLIP.read_bytes(), "video/mp4")).run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("Timeline") for s in at.subheader)
    video = at.get("video")[0].proto  # the clip plays in the page, its votes as a caption track
    assert [s.label for s in video.subtitles] == ["Votes"] and video.url and video.muted
    scrubber = at.select_slider(key="scene_frame")
    scrubber.set_value(3).run()
    assert not at.exception and "1.5 s" in scrubber.format_func(scrubber.value)


@pytest.mark.skipif(not CLIP.is_file(), reason=f"real fixture clip not found at {CLIP}")
def test_scene_warns_when_the_clip_is_unlike_the_index(index_env: SmallIndex, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from core.familiarity import UNFAMILIAR_REASON, calibrate
    from core.index import IndexStore
    from core.schema import default_schema

    # A copy of the test index whose threshold sits above every frame of the real clip: the small
    # test index is too sparse to flag it by itself (bench/familiarity.py measures the detector on
    # the demo index); here the page's wiring is under test: banner, abstentions, timeline marks.
    index = tmp_path / "strict"
    shutil.copytree(index_env.index, index)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["familiarity"] = {**calibrate(IndexStore.load(index)), "flag_below": 0.999}
    (index / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("SCENESCOPE_INDEX", str(index))
    at = _app()
    at.file_uploader(key="scene_upload").set_value((CLIP.name, CLIP.read_bytes(), "video/mp4")).run()
    assert not at.exception and not at.error
    assert at.warning and UNFAMILIAR_REASON in at.warning[0].value
    votes = _table(at, "Vote")
    assert len(votes) == len(default_schema().names)
    chart = next(c for c in at.get("plotly_chart"))
    assert "unlike this index" in chart.proto.spec


def test_scene_from_index_shows_truth(engine: tuple) -> None:
    at = _app()
    at.segmented_control(key="scene_source").set_value("From the index").run()
    assert not at.exception
    votes = _table(at, "Vote")
    assert "Truth" in votes.columns and "Correct" in votes.columns


def test_scene_prompt_space_votes_and_shows_each_attributes_voters(engine: tuple) -> None:
    from core.predict import class_text_embeddings, vote_batch

    model, store = engine
    at = _app()
    at.segmented_control(key="scene_source").set_value("From the index").run()
    at.segmented_control(key="scene_space").set_value("prompts").run()
    assert not at.exception and not at.error
    split = handlers.index_splits(store)[0]
    row = int(store.meta.index[store.meta["split"].astype(str) == split][0])  # the page's first scene
    # the Scene page votes an indexed frame as Triage does: other clips' train frames
    voters = np.flatnonzero(store.meta["split"].astype(str).to_numpy() == "train")
    expect = vote_batch(store, store.embeddings()[row : row + 1], k=5, exclude="clip", query_rows=[row],
                        among=voters, prompt_space=class_text_embeddings(model, store.schema))[0]
    votes = _table(at, "Vote")
    assert list(votes["Vote"]) == [a.display_of(expect.attributes[a.name].value) for a in store.schema.attributes]
    assert "Voters per attribute" in [s.value for s in at.subheader]
    last = store.schema.attributes[-1]
    at.selectbox(key="scene_voter_attr").set_value(last.name).run()
    assert not at.exception
    assert _texts(at).count("sim ") >= len(expect.attributes[last.name].voters) + len(expect.neighbors)


def test_map_page_draws_and_rejects_bad_upload(mapped_index: SmallIndex, index_env: SmallIndex,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import core.maps

    real_place = core.maps.place_points
    # umap's transform compiles for ~20 s on first use; the page's drawing is what is tested here.
    monkeypatch.setattr(core.maps, "place_points", lambda *a, **kw: real_place(*a, **{**kw, "method": "knn"}))
    at = _app("map")
    assert at.title[0].value == "Map" and not at.error
    assert at.get("plotly_chart"), "the map is drawn"
    assert at.info and "lasso" in at.info[0].value  # nothing selected yet
    for opt in ("split", "correct"):
        at.selectbox(key="map_color").set_value(opt).run()
        assert not at.exception and not at.error

    from core.index import IndexStore

    store = IndexStore.load(index_env.index)
    at.file_uploader(key="map_upload").set_value(("here.jpg", _jpeg(store, 2), "image/jpeg")).run()
    assert not at.exception and not at.error
    at.file_uploader(key="map_upload").set_value(("junk.webp", b"junk", "image/webp")).run()
    assert at.error and "junk.webp" in at.error[0].value


def _plotly_array(value: object) -> np.ndarray:
    """A Plotly JSON array: a list, or plotly 6's typed array ({"dtype", "bdata"} base64)."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def _map_traces(at: AppTest) -> tuple[list[str], np.ndarray]:
    """(trace types, index rows drawn as points) of the Map page's chart."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    points = [_plotly_array(t["customdata"]) for t in spec["data"] if t["type"] == "scattergl"]
    return [t["type"] for t in spec["data"]], np.concatenate(points).astype(np.int64) if points else np.zeros(0)


def test_map_page_density_above_the_point_budget(mapped_index: SmallIndex, index_env: SmallIndex,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the budget the Map draws a density grid of every point plus at most the budget of
    points; a zoom box is re-queried on the server and draws only points inside it."""
    import core.maps
    from core.index import IndexStore

    layout = core.maps.umap_projection(IndexStore.load(index_env.index))  # cached by the fixture
    at = _app("map")
    assert "heatmap" not in _map_traces(at)[0], "below the budget the page draws points only"
    budget = 30
    monkeypatch.setattr(core.maps, "DRAW_POINTS", budget)
    at.run()
    assert not at.exception
    kinds, rows = _map_traces(at)
    assert kinds[0] == "heatmap" and len(rows) == budget and len(set(rows.tolist())) == budget
    x0, x1 = np.quantile(layout[:, 0], [0.2, 0.7])
    y0, y1 = np.quantile(layout[:, 1], [0.1, 0.8])
    inside = np.flatnonzero((layout[:, 0] >= x0) & (layout[:, 0] <= x1) & (layout[:, 1] >= y0) & (layout[:, 1] <= y1))
    assert len(inside) > budget
    assert handlers.zoom_box({"selection": {"box": [{"x": [x1, x0], "y": [y0, y1]}]}}) == (x0, x1, y0, y1)
    at.session_state["map_zoom"] = (float(x0), float(x1), float(y0), float(y1))
    at.run()
    kinds, rows = _map_traces(at)
    assert kinds[0] == "heatmap" and len(rows) == budget and set(rows.tolist()) <= set(inside.tolist())
    assert f"{len(inside)} frames in this box" in _texts(at)
    assert f"Selection · {budget} scenes" in _texts(at), "the box's drawn frames are listed"
    at.button(key="map_zoom_out").click().run()
    assert at.session_state["map_zoom"] is None and not at.exception


def test_triage_page_metrics_failures_leakage(index_env: SmallIndex) -> None:
    at = _app("triage")
    assert not at.error
    assert [m.label for m in at.metric][:5] == ["Frames", "Macro F1", "Decided", "F1 when decided", "Failures"]
    metrics = _table(at, "F1 when decided")
    assert len(metrics) > 0 and metrics["Decided"].between(0, 1).all()
    assert at.multiselect(key="triage_classes").value, "failures open on the focus classes"
    at.multiselect(key="triage_classes").set_value([]).run()
    at.multiselect(key="triage_attrs").set_value([]).run()
    assert not at.exception
    assert any("failures match" in c.value for c in at.caption)
    at.slider(key="triage_leak_threshold").set_value(0.8).run()
    assert not at.exception
    assert any(m.label == "Cross-split near-duplicates" for m in at.metric)
    at.segmented_control(key="triage_space").set_value("prompts").run()
    assert not at.exception and not at.error
    assert [m.label for m in at.metric][:5] == ["Frames", "Macro F1", "Decided", "F1 when decided", "Failures"]


def test_bad_index_shows_error_not_traceback(index_env: SmallIndex, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{}")
    monkeypatch.setenv("SCENESCOPE_INDEX", str(tmp_path / "broken"))
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.error and "Cannot open index" in at.error[0].value


def test_search_page_text_and_bad_image(index_env: SmallIndex) -> None:
    at = _app("search")
    assert at.info  # asks for a query first
    at.slider(key="search_k").set_value(12).run()
    at.text_input(key="search_text").set_value("snowy night, approaching a 5-way intersection").run()
    assert not at.exception and not at.error
    assert "Scenes · top 12" in [s.value for s in at.subheader]
    assert _images(at) >= 12
    at.segmented_control(key="search_mode").set_value("Image").run()
    at.file_uploader(key="search_image").set_value(("q.jpg", b"nope", "image/jpeg")).run()
    assert at.error and "q.jpg" in at.error[0].value


@pytest.mark.skipif(not navigation.available(navigation.PAGES[4]), reason="token engine (core.tokens) absent")
def test_tokens_page_heatmap_and_votes(engine: tuple) -> None:
    _, store = engine
    at = _app("tokens")
    assert at.info  # asks for a scene
    at.file_uploader(key="tokens_upload").set_value(("scene.jpg", _jpeg(store, 11), "image/jpeg")).run()
    at.text_input(key="tokens_query").set_value("traffic light at the intersection").run()
    at.slider(key="tokens_keep").set_value(0.5).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    kept, total = (int(x) for x in metrics["Kept tokens"].split(" / "))
    assert kept == round(total * 0.5) or abs(kept - total * 0.5) <= 1
    assert _images(at) == 2  # heatmap + kept patches
    assert sum("Vote" in df.value.columns for df in at.dataframe) == 2  # full and pruned votes
    # Occlusion scoring with feature surgery: offered only with a query, and the page still draws.
    assert "occlusion" in at.selectbox(key="tokens_method_query").options
    at.selectbox(key="tokens_method_query").set_value("occlusion").run()
    at.checkbox(key="tokens_surgery").check().run()
    assert not at.exception and not at.error and _images(at) == 2
    at.checkbox(key="tokens_read_in").uncheck().run()  # pruned vote without the read-in
    assert not at.exception and not at.error and sum("Vote" in df.value.columns for df in at.dataframe) == 2
    at.text_input(key="tokens_query").set_value("").run()  # query-free: dense methods only
    assert "occlusion" not in at.selectbox(key="tokens_method").options
    assert not at.exception and not at.error
    at.file_uploader(key="tokens_upload").set_value(("bad.png", b"\x89PNG broken", "image/png")).run()
    assert at.error and "bad.png" in at.error[0].value


@pytest.mark.skipif(not navigation.available(navigation.PAGES[5]), reason="fine-tuning engine (core.jobs) absent")
def test_train_page_shows_finished_comparison(engine: tuple, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, store = engine
    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    job_id = write_finished_job(tmp_path, store)
    at = _app("train")
    assert not at.error
    assert at.selectbox(key="train_pick").value == job_id
    labels = [m.label for m in at.metric]
    assert {"Macro F1 before", "Macro F1 after", "Failures fixed / new"} <= set(labels)
    assert _table(at, "Δ F1")["Attribute"].tolist() == [a.display for a in store.schema.attributes]
    assert len(at.get("plotly_chart")) == 2  # the curves and the side-by-side maps
    # Error path: options the engine refuses are reported, nothing starts.
    at.number_input(key="train_opt_epochs").set_value(0)
    at.get("form_submit_button")[0].click().run()
    assert at.error and "epochs must be at least 1" in at.error[0].value


@pytest.mark.skipif(not navigation.available(navigation.PAGES[5]), reason="fine-tuning engine (core.jobs) absent")
def test_train_page_starts_and_cancels_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             index_env: SmallIndex) -> None:
    from toy import write_toy_dataset, write_toy_model

    from core.jobs import job_status

    monkeypatch.setenv("SCENESCOPE_WORKSPACE", str(tmp_path))
    write_toy_dataset(tmp_path / "toy", n=12)
    write_toy_model(tmp_path / "models" / "toy")
    at = _app("train")
    assert at.info and "No fine-tuning jobs" in at.info[0].value
    at.selectbox(key="train_data").set_value(str(tmp_path / "toy"))
    at.selectbox(key="train_base").set_value(f"file:{tmp_path / 'models' / 'toy'}")
    at.number_input(key="train_opt_epochs").set_value(1)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error
    job_id = at.session_state["train_job"]
    # lr left empty: the job takes the base model's default, which the field shows with its source
    lr = at.number_input(key="train_opt_lr")
    assert lr.value is None and lr.proto.placeholder == "default 1e-05" and "no finetune_defaults.json" in lr.proto.help
    assert job_status(tmp_path, job_id)["spec"]["options"]["lr"] is None
    at.button(key=f"train_cancel_{job_id}").click().run()
    assert not at.exception
    deadline = time.time() + 30
    while job_status(tmp_path, job_id)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.2)
    assert job_status(tmp_path, job_id)["state"] in ("cancelled", "interrupted")
