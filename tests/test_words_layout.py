"""Words and layout (issue 21): tables and captions read in words a person reads, the demo's API
says what its values mean, and side-by-side images line up. Handlers are checked directly; the
pages through AppTest; the demo through gradio_client on the session's demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SmallIndex
from streamlit.testing.v1 import AppTest

from app import handlers, navigation

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
TIMEOUT = 120
RAW = ("clip_id", "n_frames", "best_id", "best_timestamp_s", "i", "j", "split_i", "path_i")


@pytest.fixture(scope="module")
def engine(index_env: SmallIndex) -> tuple:
    from core.pipeline import open_index

    return open_index(index_env.index)


def _app(page: str) -> AppTest:
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- handlers -------------------------------------------------------------------------------------
def test_segment_and_leakage_tables_use_words(engine: tuple) -> None:
    model, store = engine
    windows = handlers.search_segments(model, store, "a rainy highway")
    table = handlers.segment_table(windows)
    assert not set(RAW) & set(table.columns)
    assert table["Clip"].tolist() == windows["clip_id"].tolist()
    assert table["Matching frames"].tolist() == windows["n_frames"].tolist()

    pairs = handlers.leakage_pairs(store, threshold=0.8)
    leak = handlers.leakage_table(pairs, store)
    assert not set(RAW) & set(leak.columns) and len(leak) == len(pairs)
    if len(pairs):  # each side's clip is that index row's clip
        rows = leak["First frame (row)"].to_numpy()
        assert (leak["First clip"].to_numpy() == store.meta["clip_id"].astype(str).to_numpy()[rows]).all()


def test_kept_patches_image_matches_the_heatmap_size(engine: tuple) -> None:
    if not handlers.tokens_available():
        pytest.skip("token engine (core.tokens) absent")
    from core.tokens import select_images

    model, store = engine
    image = handlers.first_frame(store.abspath(3))
    selection = select_images(model, [image], query="a junction", keep_ratio=0.3)[0]
    heat = handlers.token_heatmap(image, selection, "a junction")
    kept = handlers.token_kept(image, selection)
    assert kept.size == heat.size  # equal widths side by side: equal heights


def test_pruned_vote_table_says_values_in_words(engine: tuple) -> None:
    _, store = engine
    schema = store.schema
    full = {a.name: a.value_names[0] for a in schema.attributes}
    pruned = {a.name: a.value_names[-1] for a in schema.attributes}
    agree = [a.name for a in schema.attributes if full[a.name] == pruned[a.name]]
    table = handlers.pruned_vote_table({"full": full, "pruned": pruned, "agree": agree}, schema)
    assert table["Attribute"].tolist() == [a.display for a in schema.attributes]
    assert table["Full image"].tolist() == [a.display_of(a.value_names[0]) for a in schema.attributes]
    assert table["Kept tokens only"].tolist() == [a.display_of(a.value_names[-1]) for a in schema.attributes]
    assert (table["Same"] == "yes").sum() == len(agree)


# ---- pages ----------------------------------------------------------------------------------------
def test_search_segments_read_in_words(index_env: SmallIndex) -> None:
    at = _app("search")
    at.text_input(key="search_text").set_value("a road in daylight").run()
    assert not at.exception
    segments = [df.value for df in at.dataframe if "Matching frames" in df.value.columns]
    assert segments and not set(RAW) & set(segments[0].columns)
    captions = "\n".join(c.value for c in at.caption)
    assert " 1 frames" not in captions and "1 matching frames" not in captions
    assert not any(f"{x}–{x} s" in captions for x in np.round(np.arange(0, 20, 0.1), 1))  # no "1.0–1.0 s"


def test_triage_layout_pager_per_class_and_leakage_words(index_env: SmallIndex) -> None:
    at = _app("triage")
    at.multiselect(key="triage_classes").set_value([]).run()
    pager = next(n for n in at.number_input if n.key.startswith("triage_page_"))
    assert pager.label.startswith("Page (of ") and any(m.value.startswith("of ") for m in at.markdown)
    assert pager.label == f"Page (of {int(pager.max)})"
    at.slider(key="triage_leak_threshold").set_value(0.8).run()
    leak = [df.value for df in at.dataframe if "Similarity" in df.value.columns]
    assert leak and not set(RAW) & set(leak[0].columns)


# ---- the Gradio demo ------------------------------------------------------------------------------
def test_demo_api_names_outputs_and_types_k(demo_url: str) -> None:
    from gradio_client import Client

    api = Client(demo_url, verbose=False, download_files=False).view_api(print_info=False, return_format="dict")
    named = api["named_endpoints"]
    labels = [r["label"] for e in named.values() for r in e["returns"]]
    assert not [x for x in labels if x.startswith("value_")], labels
    ks = [p for e in ("/classify", "/search") for p in named[e]["parameters"] if p["parameter_name"] in ("k",)]
    assert ks and all(p["python_type"]["type"] == "int" for p in ks)


def test_demo_refuses_a_wrong_type_naming_the_file(demo_url: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    bad = tmp_path / "notes.txt"
    bad.write_text("not a scene")
    with pytest.raises(Exception, match=r"notes\.txt.*unsupported file type \.txt"):
        Client(demo_url, verbose=False, download_files=False).predict(handle_file(str(bad)), 3, api_name="/classify")


def test_demo_times_have_no_float_noise() -> None:
    from app import demo

    out = demo._api_safe({"frames": [{"t": 0.1 * 3 * 4.933333333}], "segments": [{"start_s": 1.4800000000000004}],
                          "similarity": 0.123456789})
    assert out["segments"][0]["start_s"] == 1.48 and out["frames"][0]["t"] == round(0.1 * 3 * 4.933333333, 3)
    assert out["similarity"] == 0.123456789  # only times are rounded


needs_tokens = pytest.mark.skipif(not navigation.available(navigation.PAGES[4]), reason="token engine absent")


@needs_tokens
def test_demo_heatmap_says_votes_in_words(demo_url: str, small_index: SmallIndex) -> None:
    from gradio_client import Client, handle_file

    from core.data import read_manifest

    ds = read_manifest(small_index.data)
    _, summary = Client(demo_url, verbose=False, download_files=False).predict(
        handle_file(str(ds.abspath(ds.frames["path"].iat[2]))), "", 0.5, api_name="/heatmap")
    names = summary["display"]["values"]
    for a, v in summary["pruned"].items():
        assert names[a][v] == ds.schema[a].display_of(v)
