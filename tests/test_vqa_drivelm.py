"""DriveLM import and export against the real challenge sample (counted independently with plain json)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.cli import main
from core.data import read_manifest
from core.vqa.drivelm import (
    CAMERAS,
    DriveLMError,
    export_answers,
    import_drivelm,
    question_type,
    read_drivelm,
    read_predictions,
    read_qa_table,
    split_options,
    to_predictions,
    write_answers,
)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
DRIVELM = FIXTURES / "drivelm-sample"
# Where the fixture README says the images are ("../nuscenes/samples/..." in the JSON).
SAMPLES = DRIVELM / "llama_adapter_v2_multimodal7b" / "data" / "nuscenes"
QA_FILES = ("data/train_sample.json", "test_eval.json", "test.json")

needs_fixture = pytest.mark.skipif(not DRIVELM.is_dir(), reason="../shared/fixtures/drivelm-sample is absent")


def _plain(name: str) -> dict:
    return json.loads((DRIVELM / name).read_text())


def _plain_rows(doc: dict) -> list[dict]:
    """Every question with its challenge id, counted the way the official evaluation walks the file."""
    rows = []
    for scene, s in doc.items():
        for frame, kf in s["key_frames"].items():
            qas = [(g, q) for g in ("perception", "prediction", "planning", "behavior") for q in kf["QA"].get(g, [])]
            for i, (g, q) in enumerate(qas):
                rows.append({"id": f"{scene}_{frame}_{i}", "group": g, "Q": q["Q"], "A": q["A"], "tag": q.get("tag")})
    return rows


@needs_fixture
@pytest.mark.parametrize("name", QA_FILES)
def test_import_counts_match_the_file(name):
    doc = _plain(name)
    rows = _plain_rows(doc)
    data = read_drivelm(DRIVELM / name, DRIVELM)
    assert list(data.scenes) == list(doc)
    assert len(data.frames) == sum(len(s["key_frames"]) for s in doc.values())
    assert len(data.qa) == len(rows)
    assert data.qa["id"].tolist() == [r["id"] for r in rows]
    assert Counter(data.qa["group"]) == Counter(r["group"] for r in rows)
    assert data.qa["question"].tolist() == [r["Q"] for r in rows]
    assert data.qa["answer"].tolist() == [r["A"] for r in rows]
    assert [t if isinstance(t, list) else None for t in data.qa["tag"]] == [r["tag"] for r in rows]
    # Six cameras per key frame, each at the README's location inside the fixture.
    for f in data.frames:
        raw = doc[f.scene]["key_frames"][f.frame]["image_paths"]
        assert sorted(f.images) == sorted(CAMERAS) == sorted(raw)
        for cam in CAMERAS:
            expected = SAMPLES / raw[cam].split("../nuscenes/", 1)[1]
            assert f.images[cam] == expected.resolve() and f.images[cam].is_file()


@needs_fixture
def test_tags_only_in_the_eval_file():
    tags = read_drivelm(DRIVELM / "test_eval.json").qa["tag"]
    plain = Counter(t for r in _plain_rows(_plain("test_eval.json")) for t in r["tag"])
    assert Counter(t for ts in tags for t in ts) == plain
    assert read_drivelm(DRIVELM / "data/train_sample.json").qa["tag"].isna().all()


@needs_fixture
def test_import_writes_a_dataset(tmp_path):
    doc = _plain("test_eval.json")
    out = tmp_path / "drivelm"
    manifest = import_drivelm(DRIVELM, DRIVELM / "test_eval.json", out)
    ds = read_manifest(out)
    assert manifest.parent == out
    n_frames = sum(len(s["key_frames"]) for s in doc.values())
    assert len(ds) == 6 * n_frames
    assert set(ds.frames["clip_id"]) == set(doc)
    assert ds.frames.groupby("clip_id")["split"].nunique().max() == 1  # a scene never spans splits
    assert (ds.label_matrix() == "unknown").all().all()
    for rel in ds.frames["path"]:
        assert ds.abspath(rel).read_bytes() == (SAMPLES / rel).read_bytes()
    key_frames = [json.loads(x) for x in (out / "key_frames.jsonl").read_text().splitlines()]
    assert len(key_frames) == n_frames
    for kf in key_frames:
        raw = doc[kf["scene"]]["key_frames"][kf["frame"]]["image_paths"]
        assert {c: p.split("../nuscenes/", 1)[1] for c, p in raw.items()} == kf["images"]
    # Key frames are numbered by time within their scene (the file does not list them in order).
    for scene in doc:
        fronts = sorted((kf["frame_index"], kf["images"]["CAM_FRONT"]) for kf in key_frames if kf["scene"] == scene)
        stamps = [int(p.rsplit("__", 1)[1].split(".")[0]) for _, p in fronts]
        assert stamps == sorted(stamps) and [i for i, _ in fronts] == list(range(len(fronts)))
    qa = read_qa_table(out)
    assert qa["id"].tolist() == [r["id"] for r in _plain_rows(doc)]
    scenes = [json.loads(x) for x in (out / "scenes.jsonl").read_text().splitlines()]
    assert {s["scene"]: s["frames"] for s in scenes} == {k: len(v["key_frames"]) for k, v in doc.items()}


@needs_fixture
def test_export_round_trip(tmp_path):
    """Answers keyed by id come back out in the challenge's format, in output.json's id order."""
    output = _plain("output.json")
    qa = read_drivelm(DRIVELM / "test_eval.json").qa
    answers = {o["id"]: o["answer"] for o in output}
    exported = export_answers(qa, answers)
    assert [e["id"] for e in exported] == [o["id"] for o in output]
    assert [e["answer"] for e in exported] == [o["answer"] for o in output]
    # output.json prefixes LLaMA-Adapter's image prompt; the question is otherwise the same.
    assert [e["question"] for e in exported] == [o["question"].removeprefix("<image>\n") for o in output]
    assert all(set(e) == {"id", "question", "answer"} for e in exported)
    path = write_answers(tmp_path / "answers.json", exported)
    back = read_predictions(path)
    assert [{k: e[k] for k in ("id", "question", "answer")} for e in back] == exported
    # The ids select the same ground truth the baseline's file carries.
    preds = to_predictions(qa, answers)
    assert [p["gt_answer"] for p in preds] == [o["gt_answer"] for o in output]


@needs_fixture
def test_export_needs_every_answer():
    qa = read_drivelm(DRIVELM / "test_eval.json").qa
    answers = {i: "A" for i in qa["id"]}
    missing = dict(list(answers.items())[1:])
    with pytest.raises(DriveLMError, match="no answer for 1 question"):
        export_answers(qa, missing)
    with pytest.raises(DriveLMError, match="not in the QA table"):
        export_answers(qa, {**answers, "x_y_0": "A"})


def _tiny_root(tmp_path: Path, image_path: str = "../nuscenes/samples/{cam}/f__1000000000000000.jpg") -> Path:
    root = tmp_path / "root"
    for cam in CAMERAS:
        (root / "nuscenes" / "samples" / cam).mkdir(parents=True)
        (root / "nuscenes" / "samples" / cam / "f__1000000000000000.jpg").write_bytes(b"jpg")
    doc = {"s1": {"key_frames": {"f1": {
        "QA": {"perception": [{"Q": "Is it raining?", "A": "No.", "tag": [0]}], "behavior": []},
        "image_paths": {cam: image_path.format(cam=cam) for cam in CAMERAS}}}}}
    (root / "qa.json").write_text(json.dumps(doc))
    return root


def test_image_paths_are_confined_to_the_root(tmp_path):
    root = _tiny_root(tmp_path)
    data = read_drivelm(root / "qa.json", root)
    assert data.frames[0].images["CAM_BACK"] == (root / "nuscenes/samples/CAM_BACK/f__1000000000000000.jpg").resolve()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    for bad, msg in [("../nuscenes/samples/../../../secret.jpg", "escapes"), ("/etc/passwd", "must be relative")]:
        doc = json.loads((root / "qa.json").read_text())
        doc["s1"]["key_frames"]["f1"]["image_paths"]["CAM_FRONT"] = bad
        (root / "bad.json").write_text(json.dumps(doc))
        with pytest.raises(DriveLMError, match=msg) as e:
            read_drivelm(root / "bad.json", root)
        assert "scene s1 frame f1 CAM_FRONT" in str(e.value)
    # A nuScenes folder that is a link to somewhere outside the root is refused too.
    outside = tmp_path / "elsewhere"
    (root / "nuscenes").rename(outside)
    (root / "nuscenes").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DriveLMError, match="outside the root"):
        read_drivelm(root / "qa.json", root)


@pytest.mark.parametrize("edit, msg", [
    (lambda d: d["s1"]["key_frames"]["f1"]["QA"].update(other=[]), "unknown QA group 'other'"),
    (lambda d: d["s1"]["key_frames"]["f1"]["QA"]["perception"][0].update(tag=[7]), "unknown tag 7"),
    (lambda d: d["s1"]["key_frames"]["f1"]["QA"]["perception"][0].pop("A"), r"perception\[0\]: 'A' must be text"),
    (lambda d: d["s1"]["key_frames"]["f1"]["image_paths"].pop("CAM_BACK"), r"missing \['CAM_BACK'\]"),
    (lambda d: d["s1"]["key_frames"]["f1"]["image_paths"].update(
        CAM_FRONT="../nuscenes/samples/CAM_FRONT/gone.jpg"), "CAM_FRONT: image not found"),
])
def test_bad_input_names_the_entry(tmp_path, edit, msg):
    root = _tiny_root(tmp_path)
    doc = json.loads((root / "qa.json").read_text())
    edit(doc)
    (root / "qa.json").write_text(json.dumps(doc))
    with pytest.raises(DriveLMError, match=msg) as e:
        read_drivelm(root / "qa.json", root)
    assert str(root / "qa.json") in str(e.value) and "\n" not in str(e.value)


def test_import_writes_nothing_on_a_bad_file(tmp_path):
    root = _tiny_root(tmp_path, "../nuscenes/samples/{cam}/missing.jpg")
    with pytest.raises(DriveLMError, match="image not found"):
        import_drivelm(root, root / "qa.json", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_options_and_types():
    q = ("Predict the behavior of the ego vehicle. Please select the correct answer from the following options: "
         "A. The ego vehicle is going straight. The ego vehicle is driving fast. B. The ego vehicle is steering "
         "to the left. The ego vehicle is driving slowly.")
    stem, options = split_options(q)
    assert stem.endswith("from the following options:")
    assert options == ["The ego vehicle is going straight. The ego vehicle is driving fast.",
                       "The ego vehicle is steering to the left. The ego vehicle is driving slowly."]
    assert question_type(q, "B") == "multiple_choice"
    assert question_type(q, "C") == "free_form"  # no option C
    assert question_type("Is <c1,CAM_FRONT,1.0,2.0> moving?", "No.") == "yes_no"
    assert question_type("What is ahead?", "A car.") == "free_form"
    assert split_options("Is plan A. better?") == ("Is plan A. better?", [])


@needs_fixture
def test_cli_import_drivelm(tmp_path, capsys):
    assert main(["import", "drivelm", "--root", str(DRIVELM), "--qa", str(DRIVELM / "test_eval.json"),
                 "--out", str(tmp_path / "d")]) == 0
    assert "manifest.jsonl" in capsys.readouterr().out
    assert len(read_qa_table(tmp_path / "d")) == len(_plain_rows(_plain("test_eval.json")))
    assert main(["import", "drivelm", "--root", str(DRIVELM), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: import drivelm needs --qa") and err.count("\n") == 1



@needs_fixture
def test_drivelm_end_to_end(tmp_path, capsys, small_index):
    """Import the fixture, answer every question with the retrieval answerer (each key frame's front
    camera votes with the session index), export in the challenge's format, score with eval-vqa."""
    import numpy as np

    from core.pipeline import classify_images, load_image, open_index
    from core.vqa.answer import QuestionError, answer
    from core.vqa.metrics import TAG_ACCURACY

    out = tmp_path / "d"
    assert main(["import", "drivelm", "--root", str(DRIVELM), "--qa", str(DRIVELM / "test_eval.json"),
                 "--out", str(out)]) == 0
    ds, qa = read_manifest(out), read_qa_table(out)
    fronts = {(kf["scene"], kf["frame"]): kf["images"]["CAM_FRONT"]
              for kf in map(json.loads, (out / "key_frames.jsonl").read_text().splitlines())}
    model, store = open_index(small_index.index)
    keys = sorted(fronts)
    votes = dict(zip(keys, classify_images([load_image(ds.abspath(fronts[k])) for k in keys], model, store, 5),
                     strict=True))

    def reply(r: dict) -> str:
        try:
            a = answer(r["question"], votes[(r["scene"], r["frame"])], schema=store.schema)
        except QuestionError:  # DriveLM has questions over the 512-character limit: no answer to them
            return store.schema.qa.no_answer
        return a.text if a.choice is None else "ABCDEFGH"[a.choice]

    texts = {r["id"]: reply(r) for r in qa.to_dict("records")}
    exported = export_answers(qa, texts)
    assert len(exported) == len(_plain_rows(_plain("test_eval.json")))
    assert all(set(e) == {"id", "question", "answer"} for e in exported)
    write_answers(tmp_path / "answers.json", exported)
    assert json.loads((tmp_path / "answers.json").read_text()) == exported
    write_answers(tmp_path / "predictions.json", to_predictions(qa, texts))
    capsys.readouterr()
    assert main(["eval-vqa", "--predictions", str(tmp_path / "predictions.json"), "--all-questions",
                 "--no-meteor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Reference: exact match over the tag-0 questions, counted here from the table and the answers.
    scored = [texts[r["id"]] == r["answer"] for r in qa.to_dict("records") if TAG_ACCURACY in (r["tag"] or [])]
    assert report["accuracy"] == pytest.approx(float(np.mean(scored)))
    assert set(report["by_group"]) == {"perception", "prediction", "planning", "behavior"}
    assert report["language"]["bleu4"] is not None and "match_f1" in report
