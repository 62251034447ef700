"""The retrieval-grounded answerer: it says what the k-NN vote says, with the vote share as confidence
and the voters as evidence; multiple choice takes the best-scored option; it abstains with a reason."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from core.predict import knn_vote, vote_batch
from core.schema import UNKNOWN, default_schema
from core.vqa.answer import MAX_QUESTION_CHARS, QuestionError, answer
from core.vqa.questions import Intent, free_answer, intents, questions_of

SCHEMA = default_schema()
NO_ANSWER = SCHEMA.qa.no_answer
PERCEPTION = [i for i in intents(SCHEMA) if i.kind in ("attribute", "yes_no")]


def labelled(n: int, fixed: dict, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [SCHEMA.sample(rng, fixed) for _ in range(n)]


@pytest.fixture(scope="module")
def store_votes(small_index):
    """Real votes: indexed frames of the small index voted by their nearest frames of other clips."""
    from core.index import IndexStore

    store = IndexStore.load(small_index.index)
    rows = np.arange(0, len(store), 7)
    votes = vote_batch(store, store.embeddings()[rows], k=5, exclude="clip", query_rows=rows)
    return store, votes


def test_answers_agree_with_the_knn_vote(store_votes):
    _, votes = store_votes
    for vote in votes:
        for it in PERCEPTION:
            q = questions_of(SCHEMA, it)[0]
            a = answer(q, vote, threshold=0.0)
            av = vote.attributes[it.attribute]
            assert a.intent == it
            # independent tally of the voters' labels
            tally = Counter(n.labels[it.attribute] for n in vote.neighbors if n.labels[it.attribute] != UNKNOWN)
            if av.abstained and it.kind == "yes_no" and av.reason is None and tally:
                # undecided among values, yet a vote on this one value: No from the voters not saying it
                assert a.text == SCHEMA.qa.no
                assert a.confidence == pytest.approx(1 - tally[it.value] / sum(tally.values()))
                continue
            if av.abstained:
                assert not a.definite and a.text == NO_ANSWER and a.reason
                continue
            share = tally[av.value] / sum(tally.values())
            if it.kind == "attribute":
                assert a.text == free_answer(SCHEMA, it, av.value)
                assert a.confidence == pytest.approx(share)
                assert [n.id for n in a.evidence] == [n.id for n in vote.neighbors
                                                       if n.labels[it.attribute] == av.value]
            else:
                yes = av.value == it.value
                assert a.text == (SCHEMA.qa.yes if yes else SCHEMA.qa.no)
                p = tally[it.value] / sum(tally.values())
                assert a.confidence == pytest.approx(p if yes else 1 - p)
                assert all((n.labels[it.attribute] == it.value) == yes for n in a.evidence)


def test_planning_applies_the_rules_to_the_voted_labels(store_votes):
    _, votes = store_votes
    q = questions_of(SCHEMA, Intent("planning"))[0]
    for vote in votes:
        a = answer(q, vote, threshold=0.0)
        needed = {k for r in SCHEMA.qa.rules for k in r.when}
        if any(vote.attributes[k].abstained for k in needed):
            assert not a.definite
            continue
        assert a.text == SCHEMA.qa.action(vote.labels())
        assert a.confidence == pytest.approx(min(vote.attributes[k].share for k in needed))


def test_multiple_choice_picks_the_best_scored_option():
    attr = SCHEMA["road_type"]
    top, second, third = attr.value_names[:3]
    labels = labelled(3, {"road_type": top}) + labelled(2, {"road_type": second}, seed=1)
    vote = knn_vote([0.5, 0.4, 0.3, 0.9, 0.8], labels, SCHEMA)
    q = questions_of(SCHEMA, Intent("attribute", "road_type"))[0]
    # options named by a display name, a prompt phrase and a paraphrase, in an arbitrary order
    options = [attr.value(third).display, attr.value(second).phrases[1], NO_ANSWER, attr.value(top).phrases[2]]
    a = answer(q, vote, options=options)
    assert a.choice == 3 and a.text == options[3] and a.confidence == pytest.approx(0.6)
    # inline DriveLM form, the same choice by letter
    inline = f"{q} {SCHEMA.qa.choose} " + " ".join(f"{chr(65 + i)}. {o}." for i, o in enumerate(options))
    assert answer(inline, vote).choice == 3
    # without the winner among the options, the best remaining option is below the threshold
    b = answer(q, vote, options=options[:3])
    assert not b.definite and b.choice == 2 and "below the threshold" in b.reason
    assert answer(q, vote, options=options[:3], threshold=0.3).choice == 1  # 2 of 5 voters


def test_abstention_gives_no_definite_answer_with_the_reason():
    labels = labelled(5, {"weather": SCHEMA["weather"].value_names[0]})
    q = "What is the weather?"
    opts = [v.display for v in SCHEMA["weather"].values] + [NO_ANSWER]
    vote = knn_vote([0.9] * 5, labels, SCHEMA)
    assert answer(q, vote).definite and answer(q, vote).confidence == 1.0
    vote.abstain("unlike this index")
    a = answer(q, vote, options=opts)
    assert a.text == NO_ANSWER and not a.definite and "unlike this index" in a.reason
    assert a.choice == len(opts) - 1
    # a split vote (2-2-1) and a weak plurality
    names = SCHEMA["weather"].value_names
    split = [*labelled(2, {"weather": names[0]}), *labelled(2, {"weather": names[1]}, 1), *labelled(1, {"weather": names[2]}, 2)]
    a = answer(q, knn_vote([0.9, 0.8, 0.7, 0.6, 0.5], split, SCHEMA))
    assert not a.definite and a.reason
    weak = [*labelled(2, {"weather": names[0]}), *labelled(1, {"weather": names[1]}, 1),
            *labelled(1, {"weather": names[2]}, 2), *labelled(1, {"weather": names[3]}, 3)]
    a = answer(q, knn_vote([0.9, 0.8, 0.7, 0.6, 0.5], weak, SCHEMA), threshold=0.0)
    assert not a.definite and "split (40% at most for" in a.reason  # the vote itself leaves it undecided
    # a decided vote (3 of 5) under a stricter threshold
    three = [*labelled(3, {"weather": names[0]}), *labelled(2, {"weather": names[1]}, 1)]
    a = answer(q, knn_vote([0.9, 0.8, 0.7, 0.6, 0.5], three, SCHEMA), threshold=0.7)
    assert not a.definite and "below the threshold 0.70" in a.reason and a.confidence == pytest.approx(0.6)
    # a facet that does not apply to what the vote saw
    plain = labelled(5, {"place": SCHEMA["place"].value_names[0]})
    a = answer("How many roads meet at the junction?", knn_vote([0.9] * 5, plain, SCHEMA))
    assert not a.definite and "does not apply" in a.reason


def test_bad_questions():
    vote = knn_vote([0.9], labelled(1, {}), SCHEMA)
    for bad in ("", "   ", "x" * (MAX_QUESTION_CHARS + 1)):
        with pytest.raises(QuestionError):
            answer(bad, vote)
    a = answer("Is there a tunnel ahead?", vote)
    assert not a.definite and "tunnel" in a.reason and a.intent is None
    a = answer("What is the capital of France?", vote)
    assert not a.definite and "does not cover" in a.reason
    with pytest.raises(QuestionError, match="at least 2 options"):
        answer("What is the weather?", vote, options=["Sunny"])


def test_clip_questions_from_frame_votes():
    place = next(v for v in SCHEMA["place"].values if v.named and len(SCHEMA.allowed("stage", {"place": v.name})) == 3)
    stages = SCHEMA.allowed("stage", {"place": place.name})
    frames = [knn_vote([0.9] * 5, labelled(5, {"place": place.name, "stage": s}, i), SCHEMA)
              for i, s in enumerate(stages)]
    a = answer("Predict the behavior of the ego vehicle.", frames)
    assert a.definite and place.named in a.text
    assert all(SCHEMA["stage"].value(s).does in a.text for s in stages)
    assert not answer("Predict the behavior of the ego vehicle.", frames[0]).definite  # one frame: no behavior
    # the generated multiple-choice form: the option saying the voted behaviour, among look-alikes
    from core.vqa.questions import clip_questions

    truth = [{**f.neighbors[0].labels} for f in frames]
    for seed in range(5):
        mc = next(r for r in clip_questions(SCHEMA, truth, random.Random(seed)) if r["group"] == "behavior"
                  and r["type"] == "multiple_choice")
        assert answer(mc["question"], frames).choice == ord(mc["answer"]) - ord("A")
    later = SCHEMA["stage"].value(stages[-1]).will
    assert answer(f"Will the ego vehicle {later} {place.named}?", frames[0]).text == SCHEMA.qa.yes
    other = next(v for v in SCHEMA["place"].values if v.named and v.name != place.name and v.name in
                 SCHEMA.allowed("place", {"stage": stages[-1]}))
    assert answer(f"Will the ego vehicle {later} {other.named}?", frames[0]).text == SCHEMA.qa.no


def test_cli_ask_json_on_the_small_index(small_index, capsys):
    from core.cli import main
    from core.pipeline import classify_path, open_index

    image = small_index.data / "images" / "s000003.jpg"
    attr = SCHEMA["weather"]
    options = [v.display for v in attr.values] + [NO_ANSWER]
    args = ["ask", str(image), "What is the weather?", "--index", str(small_index.index), "--json", "--threshold", "0"]
    for o in options:
        args += ["--option", o]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    model, store = open_index(small_index.index)
    vote = classify_path(image, model, store).vote
    av = vote.attributes[attr.name]
    if av.abstained:
        assert out["choice"] == len(options) - 1 and out["answer"] == NO_ANSWER
    else:
        assert out["choice"] == attr.value_names.index(av.value)
        assert out["answer"] == attr.value(av.value).display and out["confidence"] == pytest.approx(av.share)
    assert main(["ask", str(image), "", "--index", str(small_index.index)]) == 2
    assert capsys.readouterr().err.strip() == "error: the question is empty"


def test_eval_vqa_data_answers_and_scores_the_test_split(small_index, tmp_path):
    from core.data import read_manifest
    from core.index import IndexStore
    from core.vqa.evaluate import answer_dataset, evaluate_dataset, prediction_text
    from core.vqa.questions import question_bank

    ds = read_manifest(small_index.data)
    rows = question_bank(ds.frames.to_dict("records"), SCHEMA, seed=1)
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = IndexStore.load(small_index.index)
    qa, answers = answer_dataset(small_index.data, None, store, qa_path=tmp_path / "qa.jsonl", limit=150)
    test_clips = set(ds.split("test").frames["clip_id"])
    assert set(qa["scene"]) <= test_clips and len(qa) == 150
    clip_of = dict(zip(store.paths(), store.meta["clip_id"].astype(str), strict=True))
    for r in qa.to_dict("records"):  # the leave-out rule: no frame answers from its own clip
        assert all(clip_of[n.path] != r["scene"] for n in answers[r["id"]].evidence)
    report = evaluate_dataset(small_index.data, None, store, qa_path=tmp_path / "qa.jsonl", limit=150, meteor=False)
    scored = [r for r in qa.to_dict("records") if r["type"] != "free_form"]
    right = [prediction_text(answers[r["id"]], r) == r["answer"] for r in scored]
    assert report["accuracy"] == pytest.approx(np.mean(right)) and report["n_accuracy"] == len(scored)
    assert report["no_definite_answer"] == sum(not a.definite for a in answers.values())
    assert set(report["by_group"]) == {"perception", "prediction", "planning", "behavior"}
    assert report["language"]["n"] == sum(r["type"] == "free_form" for r in qa.to_dict("records"))
