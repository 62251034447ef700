"""The Gradio demo's named API, called the way the README shows: gradio_client on a launched demo."""

from __future__ import annotations

import os

import pytest
from conftest import CLIP, SmallIndex

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def client(demo_url: str) -> Client:
    return Client(demo_url, verbose=False, download_files=False)


def test_demo_runs_offline_and_local(demo_url: str) -> None:
    assert demo_url.startswith("http://127.0.0.1:")
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
    from app import demo

    assert demo.QUEUE_MAX > 0  # a bounded queue: extra requests are refused, not piled up


def test_named_endpoints_are_listed(client: Client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/classify", "/search"} <= set(named)


def test_classify_image(client: Client, small_index: SmallIndex) -> None:
    from core.data import read_manifest

    ds = read_manifest(small_index.data)
    image = ds.abspath(ds.frames["path"].iat[0])
    result = client.predict(handle_file(str(image)), 4, api_name="/classify")
    assert result["kind"] == "image" and len(result["neighbors"]) == 4
    assert set(result["labels"]) == set(ds.schema.names)
    assert all("scene_path" in n and 0 <= n["similarity"] <= 1.0001 for n in result["neighbors"])
    names = result["display"]["attributes"]
    assert [names[a.name] for a in ds.schema.attributes] == [a.display for a in ds.schema.attributes]


def test_classify_in_prompt_space_names_each_attributes_voters(client: Client, small_index: SmallIndex) -> None:
    from core.data import read_manifest
    from core.models import load_model
    from core.pipeline import classify_path, open_index
    from core.predict import class_text_embeddings

    ds = read_manifest(small_index.data)
    image = ds.abspath(ds.frames["path"].iat[0])
    result = client.predict(handle_file(str(image)), 5, "prompts", api_name="/classify")
    model, store = open_index(small_index.index)
    expect = classify_path(image, load_model(small_index.model), store, k=5,
                           prompt_space=class_text_embeddings(model, store.schema)).to_dict()
    assert result["labels"] == expect["labels"]
    assert {a: v["voters"] for a, v in result["attributes"].items()} == \
        {a: v["voters"] for a, v in expect["attributes"].items()}
    with pytest.raises(Exception, match="'pixels'.*not in the list of choices"):
        client.predict(handle_file(str(image)), 5, "pixels", api_name="/classify")


@pytest.mark.skipif(not CLIP.is_file(), reason=f"real fixture clip not found at {CLIP}")
def test_classify_real_clip(client: Client) -> None:
    result = client.predict(handle_file(str(CLIP)), 3, api_name="/classify")
    assert result["kind"] == "clip" and len(result["frames"]) >= 15  # ~8.8 s at 2 frames/s
    assert result["segments"] and {"attribute", "value", "start_s", "end_s"} <= set(result["segments"][0])


def test_classify_bad_file_is_a_clear_error(client: Client, tmp_path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\x00 definitely not a jpeg")
    with pytest.raises(Exception, match="broken.jpg"):
        client.predict(handle_file(str(bad)), 5, api_name="/classify")


def test_search_text(client: Client) -> None:
    hits = client.predict("snowy night, approaching a 5-way intersection", 5, api_name="/search")
    assert len(hits) == 5
    sims = [h["similarity"] for h in hits]
    assert sims == sorted(sims, reverse=True)
    with pytest.raises(Exception, match="empty search text"):
        client.predict("   ", 5, api_name="/search")


def test_heatmap_endpoint(client: Client, small_index: SmallIndex) -> None:
    from app import demo

    if not demo.tokens_available():
        pytest.skip("token engine (core.tokens) absent")
    from core.data import read_manifest

    ds = read_manifest(small_index.data)
    image = ds.abspath(ds.frames["path"].iat[1])
    heat, summary = client.predict(handle_file(str(image)), "a traffic light", 0.25, api_name="/heatmap")
    assert 0 < summary["kept_tokens"] < summary["total_tokens"]
    assert set(summary["full"]) == set(summary["pruned"]) == set(ds.schema.names)
    assert heat  # an image the client can fetch


def test_ask_endpoint(client: Client, small_index: SmallIndex) -> None:
    from app import handlers
    from core.pipeline import open_index

    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/ask" in named
    model, store = open_index(small_index.index)
    image = store.abspath(int(store.meta.index[store.meta["split"].astype(str) == "test"][0]))
    out, heat = client.predict(handle_file(str(image)), "What is the weather?", "", "retrieval", 0.25, 5,
                               api_name="/ask")
    expect, _ = handlers.ask(handlers.analyze_file(image, model, store, k=5), "What is the weather?", model, store,
                             heatmap=False)
    assert out["answer"] == expect.answer.text and out["confidence"] == pytest.approx(expect.answer.confidence)
    assert [c["id"] for c in out["evidence"]] == [c.id for c in expect.evidence]
    assert all("scene_path" in c and c["role"] in ("supports", "contradicts", "split") for c in out["evidence"])
    assert out["kept_tokens"] < out["total_tokens"] and heat
    with pytest.raises(Exception, match="does not cover 'colour'"):
        client.predict(handle_file(str(image)), "What colour is the sky?", "", "retrieval", 0.25, 5, api_name="/ask")
