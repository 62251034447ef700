"""Ask (issue 19): the app layer (app.handlers.ask) against the k-NN vote, and the Ask page (AppTest)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SmallIndex
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import handlers
from core.schema import UNKNOWN

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")
TIMEOUT = 120  # the first run in a process loads torch and the model


@pytest.fixture(scope="module")
def engine(index_env: SmallIndex) -> tuple:
    from core.pipeline import open_index

    return open_index(index_env.index)


def _test_rows(store: object, n: int) -> list[int]:
    return [int(r) for r in store.meta.index[store.meta["split"].astype(str) == "test"][:n]]


def _reference_vote(store: object, row: int) -> object:
    """The core k-NN vote of an indexed frame under Triage's leave-out rule, called directly."""
    from core.predict import vote_batch

    voters = np.flatnonzero(store.meta["split"].astype(str).to_numpy() == "train")
    return vote_batch(store, store.embeddings()[row : row + 1], k=5, exclude="clip", query_rows=[row],
                      among=voters)[0]


# ---- the app layer -----------------------------------------------------------------------------
def test_retrieval_answer_is_the_knn_vote(engine: tuple) -> None:
    model, store = engine
    schema = store.schema
    decided = 0
    for row in _test_rows(store, 4):
        expect = _reference_vote(store, row)
        analysis = handlers.analyze_index_scene(store, row, k=5)
        for a in schema.attributes:
            result, error = handlers.ask(analysis, a.questions[0], model, store, heatmap=False)
            assert error is None
            av = expect.attributes[a.name]
            labels = [n.labels.get(a.name, UNKNOWN) for n in expect.neighbors]
            known = [v for v in labels if v != UNKNOWN]
            if av.abstained:
                assert not result.answer.definite and result.answer.reason
                continue
            top, count = Counter(known).most_common(1)[0]  # the majority, counted here
            assert av.value == top
            assert result.answer.definite and a.value(top).answer.lower() in result.answer.text.lower()
            assert result.answer.confidence == pytest.approx(count / len(known))
            support = {c.id for c in result.evidence if c.role == "supports"}
            assert support == {n.id for n in expect.neighbors if n.labels.get(a.name) == top}
            against = {c.id for c in result.evidence if c.role == "contradicts"}
            assert against == {n.id for n in expect.neighbors if n.labels.get(a.name) not in (top, UNKNOWN)}
            decided += 1
    assert decided  # the small index decides some attributes


def test_multiple_choice_picks_the_voted_option(engine: tuple) -> None:
    model, store = engine
    schema = store.schema
    sets = handlers.choice_sets(schema)
    for row in _test_rows(store, 6):
        expect = _reference_vote(store, row)
        analysis = handlers.analyze_index_scene(store, row, k=5)
        for a in schema.attributes:
            av = expect.attributes[a.name]
            q = a.questions[0]
            result, error = handlers.ask(analysis, q, model, store, options=sets[q], heatmap=False)
            assert error is None and sets[q][-1] == schema.qa.no_answer
            if av.abstained:
                assert result.letter == chr(ord("A") + len(sets[q]) - 1)  # the no-answer option
            else:
                pick = sets[q].index(a.display_of(av.value))
                assert result.letter == chr(ord("A") + pick) and result.answer.text == sets[q][pick]


def test_question_errors_are_one_line(engine: tuple) -> None:
    model, store = engine
    analysis = handlers.analyze_index_scene(store, _test_rows(store, 1)[0], k=5)
    when = handlers.when_question(store.schema, "construction_zone", "entering")
    cases = {"   ": "empty", "x" * 513: "513 characters", "What colour is the sky?": "does not cover 'colour'",
             when: "upload a clip"}
    for question, expected in cases.items():
        result, error = handlers.ask(analysis, question, model, store)
        assert result is None and expected in error and "\n" not in error
    result, error = handlers.ask(analysis, "What is the weather?", model, store, options=["Sunny"])
    assert result is None and "at least 2 options" in error


def test_heatmap_keeps_the_asked_share_of_tokens(engine: tuple) -> None:
    from core.tokens import keep_count

    model, store = engine
    analysis = handlers.analyze_index_scene(store, _test_rows(store, 1)[0], k=5)
    result, _ = handlers.ask(analysis, "Is there a construction zone ahead?", model, store, keep_ratio=0.3)
    kept, total = result.kept
    assert kept == keep_count(total, 0.3) < total and isinstance(result.heatmap, Image.Image)


def test_clip_answer_over_time_and_when_window(engine: tuple) -> None:
    from app.handlers.scene import SceneAnalysis
    from core.scoring import vote_rows
    from core.vqa.questions import clip_place, event_stages, place_attribute, stage_attribute

    model, store = engine
    schema = store.schema
    meta = store.meta
    clip_id = meta["clip_id"][meta["clip_id"].duplicated(keep=False)].iloc[0]
    rows = meta.index[meta["clip_id"] == clip_id]
    rows = [int(r) for r in rows[np.argsort(meta.loc[rows, "timestamp_s"].to_numpy(), kind="stable")]]
    votes = vote_rows(store, rows, k=5)
    times = meta.loc[rows, "timestamp_s"].to_numpy(dtype=float)
    analysis = SceneAnalysis(str(clip_id), "clip", times, votes, [np.zeros((8, 8, 3), np.uint8)] * len(rows))
    pa, sa = place_attribute(schema).name, stage_attribute(schema).name
    found = clip_place(schema, [store.labels(r) for r in rows])  # the place the clip drives through
    place = found[0] if found else place_attribute(schema).values[-1].name
    stage = event_stages(schema, place)[0]
    question = handlers.when_question(schema, place, stage)
    result, error = handlers.ask(analysis, question, model, store, heatmap=False)
    assert error is None and len(result.timeline) >= 1
    assert result.timeline[0].start_s == times[0] and result.timeline[-1].end_s == pytest.approx(analysis.duration)
    # a frame lies in the window exactly when its own vote sees the place at that stage
    for t, v in zip(times, votes, strict=True):
        ap, ast = v.attributes[pa], v.attributes[sa]
        holds = (not ap.abstained and not ast.abstained and ap.value == place and ast.value == stage
                 and min(ap.share, ast.share) >= 0.5)
        assert holds == any(a <= t < b for a, b in result.window), (t, question)
    if result.window:
        assert result.answer.definite and result.answer.text.endswith(" s")
    else:
        assert not result.answer.definite and "no frame" in result.answer.reason


def test_vlm_answerer_says_when_it_is_not_installed(engine: tuple, tmp_path: Path) -> None:
    model, store = engine
    ok, note = handlers.vlm_status(tmp_path / "scenescope-vqa-tiny")
    assert not ok and "not installed" in note and "scenescope train-vqa" in note
    analysis = handlers.analyze_index_scene(store, _test_rows(store, 1)[0], k=5)
    result, error = handlers.ask(analysis, "What is the weather?", model, store, answerer="vlm",
                                 vlm_folder=tmp_path / "scenescope-vqa-tiny")
    assert result is None and "not installed" in error


def test_vlm_answerer_when_installed(engine: tuple, tmp_path: Path) -> None:
    """A VLM folder (random weights: the wiring is under test, not the answers) switches the
    answerer on; the retrieval answer stays beside it as the second opinion."""
    from core.vqa.vlm import VLM, VLMConfig, train_tokenizer
    from core.vqa.vlm_folder import save_vlm

    model, store = engine
    sets = handlers.choice_sets(store.schema)
    tok = train_tokenizer([q for q in sets] + [o for opts in sets.values() for o in opts], vocab_size=300)
    cfg = VLMConfig(vision_model=model.name, vision_identity=model.identity, vision_dim=int(model.embed_dim),
                    vocab_size=tok.get_vocab_size(), hidden=32, layers=1, heads=2, intermediate=64,
                    recovery_heads=next(h for h in (4, 2, 1) if model.embed_dim % h == 0), max_new_tokens=4)
    folder = save_vlm(VLM(cfg, model, tok), tmp_path / "vlm")
    assert handlers.vlm_status(folder)[0]
    analysis = handlers.analyze_index_scene(store, _test_rows(store, 1)[0], k=5)
    question = "What is the weather?"
    result, error = handlers.ask(analysis, question, model, store, options=sets[question], answerer="vlm",
                                 keep_ratio=0.5, vlm_folder=folder, heatmap=False)
    assert error is None and result.answerer == "vlm" and result.letter is not None
    expect, _ = handlers.ask(analysis, question, model, store, options=sets[question], heatmap=False)
    assert result.second_opinion.text == expect.answer.text
    assert [c.id for c in result.evidence] == [c.id for c in expect.evidence]
    assert result.to_dict()["second_opinion"]["answer"] == expect.answer.text


# ---- the page (AppTest) ----------------------------------------------------------------------
def _jpeg(store: object, row: int) -> bytes:
    buf = io.BytesIO()
    with Image.open(store.abspath(row)) as im:
        im.convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


def _ask_page() -> AppTest:
    at = AppTest.from_file(WORKBENCH, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/ask.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _answer_shown(at: AppTest) -> str:
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = [s.value for s in at.success] + [w.value for w in at.warning]
    assert shown, "no answer on the page"
    assert any(m.label == "Confidence" and m.value.endswith("%") for m in at.metric)
    assert "Evidence" in [s.value for s in at.subheader]
    return "\n".join(shown)


def test_ask_page_index_scene_suggested_question_and_errors(engine: tuple) -> None:
    model, store = engine
    at = _ask_page()
    at.segmented_control(key="ask_source").set_value("From the index").run()
    answerers = at.segmented_control(key="ask_answerer").options
    if handlers.vlm_status()[0]:
        assert len(answerers) == 2
    else:
        assert len(answerers) == 1 and any("not installed" in c.value for c in at.caption)
    question = "What is the weather?"
    at.pills(key="ask_suggested").set_value(question).run()
    assert at.text_input(key="ask_question").value == question
    shown = _answer_shown(at)
    split = handlers.index_splits(store)[0]  # the page's first scene
    row = int(store.meta.index[store.meta["split"].astype(str) == split][0])
    expect, _ = handlers.ask(handlers.analyze_index_scene(store, row, k=5), question, model, store, heatmap=False)
    assert expect.answer.text in shown
    assert len(at.get("image")) >= 1 + len(expect.evidence)  # the heatmap and one card per neighbour

    at.text_input(key="ask_question").set_value("").run()
    at.button(key="ask_go").click().run()
    assert at.error and "empty" in at.error[0].value
    at.text_input(key="ask_question").set_value("What colour is the sky?").run()
    assert at.error and "does not cover 'colour'" in at.error[0].value


def test_ask_page_uploaded_frame_and_bad_upload(engine: tuple) -> None:
    _, store = engine
    at = _ask_page()
    at.file_uploader(key="ask_upload").set_value(("frame.jpg", _jpeg(store, 3), "image/jpeg")).run()
    assert not at.error
    at.segmented_control(key="ask_mode").set_value("Multiple choice").run()
    _answer_shown(at)  # the first set is asked at once
    assert any(s.value.startswith("**") for s in at.success) or at.warning
    at.file_uploader(key="ask_upload").set_value(("dashcam.png", b"GIF89a-not-really", "image/png")).run()
    assert at.error and "dashcam.png" in at.error[0].value
