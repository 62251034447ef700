"""DriveLM challenge metrics: parity with a direct pycocoevalcap run, accuracy, match F1, final score.

The java start-up of pycocoevalcap (PTB tokenizer, METEOR) costs seconds, so each side of the
parity check runs once per module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.vqa.drivelm import DriveLMError, read_drivelm, read_predictions
from core.vqa.metrics import (
    FINAL_WEIGHTS,
    final_scores,
    infer_tags,
    language_scores,
    match_f1,
    match_points,
    object_filter,
    score_predictions,
)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
DRIVELM = FIXTURES / "drivelm-sample"
OUTPUT = DRIVELM / "output.json"
TEST_EVAL = DRIVELM / "test_eval.json"

needs_fixture = pytest.mark.skipif(not DRIVELM.is_dir(), reason="../shared/fixtures/drivelm-sample is absent")
KEYS = {"Bleu_1": "bleu1", "Bleu_2": "bleu2", "Bleu_3": "bleu3", "Bleu_4": "bleu4", "ROUGE_L": "rouge_l",
        "CIDEr": "cider", "METEOR": "meteor"}


def _eval_rows() -> list[dict]:
    """test_eval.json's questions with their challenge ids (plain json)."""
    rows = []
    for scene, s in json.loads(TEST_EVAL.read_text()).items():
        for frame, kf in s["key_frames"].items():
            qas = [(g, q) for g in ("perception", "prediction", "planning", "behavior") for q in kf["QA"][g]]
            rows += [{"id": f"{scene}_{frame}_{i}", "group": g, **q} for i, (g, q) in enumerate(qas)]
    return rows


def _coco(gts: dict, res: dict, meteor=None) -> dict[str, float]:
    """pycocoevalcap itself, as its COCOEvalCap.evaluate runs it."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts, res = tok.tokenize(gts), tok.tokenize(res)
    out = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0],
                   strict=True))
    out["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    if meteor is not None:
        out["METEOR"] = meteor.compute_score(gts, res)[0]
    return out


@pytest.fixture(scope="module")
def meteor():
    """One METEOR java process for the module: its start-up (the paraphrase table) is the slow part."""
    from pycocoevalcap.meteor.meteor import Meteor

    m = Meteor()
    yield m
    m.__del__()


@pytest.fixture(scope="module")
def reference(meteor) -> dict[str, float]:
    """Language metrics of output.json's tag-2 answers, straight from pycocoevalcap."""
    answers = {o["id"]: o["answer"] for o in json.loads(OUTPUT.read_text())}
    chosen = [r for r in _eval_rows() if 2 in r["tag"]]
    gts = {i: [{"caption": r["A"]}] for i, r in enumerate(chosen)}
    res = {i: [{"caption": answers[r["id"]]}] for i, r in enumerate(chosen)}
    return _coco(gts, res, meteor)


@pytest.fixture(scope="module")
def report(meteor) -> dict:
    return score_predictions(read_predictions(OUTPUT), read_drivelm(TEST_EVAL).qa, meteor=meteor)


@needs_fixture
def test_language_metrics_equal_pycocoevalcap(report, reference):
    assert report["language"]["n"] == sum(2 in r["tag"] for r in _eval_rows())
    for theirs, ours in KEYS.items():
        assert report["language"][ours] == pytest.approx(reference[theirs], abs=1e-6), ours
    assert 0 < report["language"]["bleu1"] < 1 and report["language"]["meteor"] > 0


@needs_fixture
def test_language_metrics_of_every_answer_equal_pycocoevalcap():
    """All 66 answers of output.json (as the fixture README suggests), METEOR left out for speed."""
    output = json.loads(OUTPUT.read_text())
    ours = language_scores([o["answer"] for o in output], [o["gt_answer"] for o in output], meteor=False)
    theirs = _coco({i: [{"caption": o["gt_answer"]}] for i, o in enumerate(output)},
                   {i: [{"caption": o["answer"]}] for i, o in enumerate(output)})
    for k, v in theirs.items():
        assert ours[KEYS[k]] == pytest.approx(v, abs=1e-6), k
    assert ours["meteor"] is None


@needs_fixture
def test_challenge_filter_on_the_baseline(report):
    """The baseline's first answers name no points, so every later question naming an object is
    left out, as the official evaluation does; the rest are scored by their tags."""
    rows = _eval_rows()
    answers = {o["id"]: o["answer"] for o in json.loads(OUTPUT.read_text())}
    firsts = [r for r in rows if r["id"].endswith("_0")]
    assert firsts and not any(re.search(r"\d\.\d", answers[r["id"]]) for r in firsts)
    names_object = [r for r in rows if not r["id"].endswith("_0") and "<c" in r["Q"]]
    assert report["filtered_out"] == len(names_object) > 0
    kept = [r for r in rows if r not in names_object]
    assert report["n_accuracy"] == sum(0 in r["tag"] for r in kept)
    assert report["n_match"] == sum(3 in r["tag"] for r in kept)
    assert report["n_gpt"] == sum(1 in r["tag"] for r in kept)
    assert report["accuracy"] == np.mean([answers[r["id"]] == r["A"] for r in kept if 0 in r["tag"]])
    assert report["gpt_score"] is None and report["final_score"] is None
    off = report["final_score_without_gpt"]
    assert "without the GPT score" in off["label"]
    lang = report["language"]
    lang_term = (lang["bleu1"] + lang["bleu2"] + lang["bleu3"] + lang["bleu4"]) / 4 / 3 + lang["rouge_l"] / 3 \
        + lang["cider"] / 30
    assert off["value"] == pytest.approx((lang_term + report["match_f1"] + report["accuracy"]) / 3)


@needs_fixture
def test_accuracy_by_group_and_type():
    """Half the tag-0 questions answered right; every group and type counted with plain json."""
    rows = _eval_rows()
    qa = read_drivelm(TEST_EVAL).qa
    preds = [{"id": r["id"], "answer": r["A"] if k % 2 == 0 else r["A"] + " "} for k, r in enumerate(rows)]
    rep = score_predictions(preds, qa, challenge_filter=False, meteor=False)
    tagged = [(r, p) for r, p in zip(rows, preds, strict=True) if 0 in r["tag"]]
    assert rep["accuracy"] == pytest.approx(np.mean([p["answer"] == r["A"] for r, p in tagged]))
    for g in ("perception", "prediction", "planning", "behavior"):
        mine = [(r, p) for r, p in tagged if r["group"] == g]
        got = rep["by_group"][g]
        assert got["n_accuracy"] == len(mine)
        assert got["accuracy"] == (pytest.approx(np.mean([p["answer"] == r["A"] for r, p in mine])) if mine else None)
    mc = [(r, p) for r, p in tagged if "following options" in r["Q"]]
    assert rep["by_type"]["multiple_choice"]["n_accuracy"] == len(mc)
    assert rep["by_type"]["yes_no"]["n_accuracy"] == len(tagged) - len(mc)
    # A trailing space fails exact match but keeps every point: full match F1 throughout.
    assert rep["n_match"] == sum(3 in r["tag"] for r in rows)
    assert rep["match_f1"] == pytest.approx(1.0, abs=1e-6)


@needs_fixture
def test_inferred_tags_agree_with_the_challenge_on_accuracy_questions():
    for r in _eval_rows():
        assert (infer_tags(r["Q"], r["A"]) == [0]) == (r["tag"] == [0]), r["id"]


def test_match_points():
    truth = np.array([[100.0, 100.0], [200.0, 50.0]])
    assert match_points(truth, truth)[0] == pytest.approx(1.0, abs=1e-6)
    assert match_points([[107.5, 108.4]], truth)[0] == pytest.approx(2 / 3, abs=1e-6)  # L1 15.9: found
    assert match_points([[108.0, 108.0]], truth)[0] == 0.0  # L1 16: not below 16
    assert match_points([[110.0, 100.0], [100.0, 100.0]], truth[:1])[0] == pytest.approx(2 / 3, abs=1e-6)
    # Greedy in prediction order: the first prediction takes the point the second was nearer to.
    f1, found = match_points([[105.0, 100.0], [100.0, 100.0]], [[100.0, 100.0], [112.0, 100.0]])
    assert f1 == pytest.approx(1.0, abs=1e-6) and found.tolist() == [[100.0, 100.0], [112.0, 100.0]]
    assert match_points(np.zeros((0, 2)), np.zeros((0, 2)))[0] == 0.0


def test_match_f1_reads_decimal_pairs():
    gt = "Firstly notice <c1,CAM_FRONT,714.3,503.6>. Then <c2,CAM_BACK,993.3,503.3>."
    assert match_f1("It is <c1,CAM_BACK,716.0,505.0>.", gt) == pytest.approx(2 / 3, abs=1e-6)
    assert match_f1("<c1,CAM_FRONT,714,503>", gt) == 0.0  # integers are not read, as in the challenge
    assert match_f1("714.3 503.6 993.3 503.3 1.5", gt) == pytest.approx(1.0, abs=1e-6)  # an odd last number drops


def test_object_filter():
    items = [
        {"id": "s_f_0", "question": "Objects?", "truth": "<c1,CAM_FRONT,10.0,20.0> and <c2,CAM_BACK,30.0,40.0>",
         "answer": "<c1,CAM_FRONT,11.0,21.0>"},
        {"id": "s_f_1", "question": "Is <c1,CAM_FRONT,10.0,20.0> moving?", "truth": "No.", "answer": "No."},
        {"id": "s_f_2", "question": "Is <c2,CAM_BACK,30.0,40.0> moving?", "truth": "No.", "answer": "No."},
        {"id": "s_f_3", "question": "What should the ego vehicle do?", "truth": "Stop.", "answer": "Go."},
        {"id": "own-question", "question": "Is <c2,CAM_BACK,30.0,40.0> moving?", "truth": "No.", "answer": "No."},
        {"id": "t_g_1", "question": "Is <c9,CAM_BACK,1.0,2.0> moving?", "truth": "No.", "answer": "No."},
    ]
    assert object_filter(items) == [True, True, False, True, True, True]


def test_final_score_formula():
    lang = {"bleu1": 0.6, "bleu2": 0.4, "bleu3": 0.3, "bleu4": 0.2, "rouge_l": 0.5, "cider": 2.4, "meteor": 0.3}
    lang_term = (0.6 + 0.4 + 0.3 + 0.2) / 4 / 3 + 0.5 / 3 + 2.4 / 10 / 3
    out = final_scores(0.7, lang, 0.5, gpt=60.0, gpt_match=40.0)
    match = (0.5 * 100 + 40.0) / 2
    assert out["final_score"] == pytest.approx(0.4 * 0.6 + 0.2 * lang_term + 0.2 * match / 100 + 0.2 * 0.7)
    assert sum(FINAL_WEIGHTS.values()) == pytest.approx(1.0)
    off = final_scores(0.7, lang, 0.5)
    assert off["final_score"] is None
    assert off["final_score_without_gpt"]["value"] == pytest.approx((lang_term + 0.5 + 0.7) / 3)
    partial = final_scores(None, dict.fromkeys(lang), 0.5)["final_score_without_gpt"]
    assert partial["value"] == pytest.approx(0.5) and partial["weights"] == {"match": 1.0}


@needs_fixture
def test_cli_eval_vqa_json_contract(capsys):
    assert main(["eval-vqa", "--predictions", str(OUTPUT), "--qa", str(TEST_EVAL), "--no-meteor", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for g in ("perception", "prediction", "planning", "behavior"):
        assert "accuracy" in rep["by_group"][g]
    assert set(rep["language"]) >= {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "meteor"}
    assert rep["language"]["meteor"] is None
    assert {"accuracy", "by_type", "match_f1"} <= set(rep)
    # Without the tagged questions: tags come from the answers' form, groups are unknown.
    assert main(["eval-vqa", "--predictions", str(OUTPUT), "--no-meteor", "--json", "--all-questions"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tags"]["inferred"] == rep["n"] == 66 and rep["filtered_out"] == 0
    assert rep["n_accuracy"] == sum(0 in r["tag"] for r in _eval_rows())


def test_eval_vqa_bad_input(tmp_path, capsys):
    p = tmp_path / "preds.json"
    p.write_text(json.dumps([{"id": "a_b_0", "answer": "A"}]))
    assert main(["eval-vqa", "--predictions", str(p), "--no-meteor"]) == 2
    err = capsys.readouterr().err
    assert "no 'gt_answer'" in err and err.count("\n") == 1
    p.write_text(json.dumps([{"id": "a_b_0", "answer": 3}]))
    with pytest.raises(DriveLMError, match=r"entry 0: 'answer' must be text"):
        read_predictions(p)
    p.write_text(json.dumps([{"id": "x", "answer": "A", "gt_answer": "A"}, {"id": "x", "answer": "B"}]))
    with pytest.raises(DriveLMError, match="duplicate id"):
        read_predictions(p)


@needs_fixture
def test_every_question_needs_a_prediction():
    qa = read_drivelm(TEST_EVAL).qa
    preds = [{"id": i, "answer": "A"} for i in qa["id"][1:]]
    with pytest.raises(DriveLMError, match="no prediction for 1 of"):
        score_predictions(preds, qa, meteor=False)
