"""Clip retrieval (issue 22): event clips and their captions, long drives, the AFA student and its
distillation, the fine-grained teacher, moment windows, and `scenescope eval-retrieval`."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.retrieval.captions import caption_forms, clip_captions, parse_caption_forms
from core.retrieval.clipvec import AFA, meanp, pad_clips, teacher_scores
from core.retrieval.data import _vector_file, read_clip_dataset, write_clip_dataset
from core.retrieval.distill import (
    DistillConfig,
    distill_losses,
    load_afa,
    pearson_distance,
    save_afa,
    train_afa,
)
from core.retrieval.evaluate import evaluate_retrieval, fit_student, propose_windows, training_captions
from core.schema import SchemaError, default_schema
from core.synth.drives import clip_event, event_plan, join_drive


class FakeModel:
    """Text vectors from a hash of the text; frame vectors come from the dataset's cache file."""

    identity = "fake-model@0"
    embed_dim = 16

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.seen += list(texts)
        v = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.embed_dim) for t in texts])
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: on a shared 2-core machine a second torch thread only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 train + 6 test clips of 5 frames, with the fake model's frame vectors cached beside them."""
    root = write_clip_dataset(tmp_path_factory.mktemp("clips") / "d", train=8, test=6, seed=3, frames=(5, 5),
                              drive_clips=3, size=(96, 56))
    n = sum(1 for _ in (root / "manifest.jsonl").open())
    v = np.random.default_rng(0).normal(size=(n, FakeModel.embed_dim)).astype(np.float32)
    path = _vector_file(root, FakeModel())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, v / np.linalg.norm(v, axis=1, keepdims=True))
    return root


# ---- data: events, captions, drives ----------------------------------------------------------
def _phrases(attr: str, value: str) -> tuple[str, ...]:
    return default_schema()[attr].value(value).phrases


@pytest.mark.parametrize("seed", range(25))
def test_captions_follow_the_clip_labels(seed: int):
    schema = default_schema()
    rng = random.Random(seed)
    plan = event_plan(schema, rng, 2.0, rng.randint(5, 8))
    labels = [f["labels"] for f in plan]
    ev = clip_event(schema, labels, [f["timestamp_s"] for f in plan], 2.0)
    shown = [lab for lab in labels if lab["place"] != "background"]
    assert ev["feature"] == (shown[0]["place"] if shown else "background")
    assert ev["stages"] == list(dict.fromkeys(lab["stage"] for lab in (shown or labels)))
    assert ev["context"] == {a: labels[0][a] for a in ("road_type", "weather", "surface", "lighting")}
    for which in ("train", "test"):
        for cap in clip_captions(schema, ev, which, 3, random.Random(seed)):
            low = cap.lower()
            for attr, value in ev["context"].items():
                assert any(p.lower() in low for p in _phrases(attr, value)), (attr, value, cap)
            if shown:
                assert any(p.lower() in low for p in _phrases("place", ev["feature"])), cap
                assert low.startswith(tuple(p.lower() for p in _phrases("stage", ev["stages"][0]))) or any(
                    f"{p.lower()} " in low for p in _phrases("stage", ev["stages"][0])), cap
                assert any(p.lower() in low for p in _phrases("stage", ev["stages"][-1])), cap
            else:
                assert any(p.lower() in low for p in _phrases("stage", "driving")), cap


def test_event_window_is_the_frames_showing_the_place():
    schema = default_schema()
    plan = event_plan(schema, random.Random(1), 2.0, 7, place="construction_zone",
                      stages=["approaching", "entering", "passing"])
    ev = clip_event(schema, [f["labels"] for f in plan], [f["timestamp_s"] for f in plan], 2.0)
    assert [f["labels"]["stage"] for f in plan] == ["driving", "approaching", "approaching", "entering",
                                                   "entering", "passing", "driving"]
    assert ev["window"] == (0.5, 3.0)  # frames 1..5, each lasting 0.5 s
    with pytest.raises(ValueError, match="not a run"):
        event_plan(schema, random.Random(1), 2.0, 7, place="zebra_crossing", stages=["passing"])


def test_long_drive_offsets_and_event_windows():
    d = join_drive([("a", 4, [0, 0.5, 1.0, 1.5], (0.5, 1.5)), ("b", 3, [0, 0.5, 1.0], (0.0, 1.0))], fps=2.0)
    assert d["offsets"] == {"a": 0.0, "b": 2.0}
    assert [f["t"] for f in d["frames"]] == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert d["events"] == [{"clip_id": "a", "start_s": 0.5, "end_s": 1.5}, {"clip_id": "b", "start_s": 2.0, "end_s": 3.0}]
    assert d["duration_s"] == 3.5


def test_dataset_clips_are_unique_and_drives_are_well_formed(clip_data: Path):
    data = read_clip_dataset(clip_data)
    sigs = [json.dumps([c["event"]["feature"], c["event"]["stages"], sorted(c["event"]["context"].items())])
            for c in data["clips"]]
    assert len(set(sigs)) == len(sigs) == 14
    tests = [c["captions"]["test"][0] for c in data["clips"]]
    assert len(set(tests)) == len(tests)
    by_id = {c["clip_id"]: c for c in data["clips"]}
    assert data["drives"]
    for d in data["drives"]:
        places = [by_id[e["clip_id"]]["event"]["feature"] for e in d["events"]]
        assert len(set(places)) == len(places) and "background" not in places
        assert {by_id[e["clip_id"]]["split"] for e in d["events"]} == {d["split"]}
        for e in d["events"]:
            start, end = by_id[e["clip_id"]]["event"]["window"]
            assert e["end_s"] - e["start_s"] == pytest.approx(end - start)


def test_families_share_context_and_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import core.retrieval.data as data_mod

    monkeypatch.setattr(data_mod, "_run", lambda job: [])  # plans and captions only, no pixels
    monkeypatch.setattr(data_mod, "write_manifest", lambda *a, **k: None)
    root = write_clip_dataset(tmp_path / "d", train=10, test=12, seed=5, frames=(5, 5), family=4)
    clips = read_clip_dataset(root)["clips"]
    assert [c["split"] for c in clips].count("test") == 12
    runs: list[list[dict]] = []
    for c in clips:  # consecutive clips of one split and context form a family
        if runs and runs[-1][0]["split"] == c["split"] and runs[-1][0]["event"]["context"] == c["event"]["context"] \
                and len(runs[-1]) < 4:
            runs[-1].append(c)
        else:
            runs.append([c])
    assert sorted(len(r) for r in runs) == [2, 4, 4, 4, 4, 4]  # 10 = 4+4+2, 12 = 4+4+4
    sigs = {json.dumps([c["event"]["feature"], c["event"]["stages"], sorted(c["event"]["context"].items())])
            for c in clips}
    assert len(sigs) == len(clips)


def test_caption_forms_refuse_shared_or_unknown_slots():
    schema = default_schema()
    forms = caption_forms(schema)
    assert not set(forms.train) & set(forms.test)
    raw = {"event": {"span": ["{first} {place}"], "one": ["{first} {place}"], "none": ["{stage}"]},
           "train": ["{event} {weather}"], "test": ["{event} {weather}"]}
    with pytest.raises(SchemaError, match="repeat train"):
        parse_caption_forms(raw, schema, "x.yaml")
    raw["test"] = ["{event} {mood}"]
    with pytest.raises(SchemaError, match="unknown slots"):
        parse_caption_forms(raw, schema, "x.yaml")


def test_held_out_templates_never_reach_training(clip_data: Path):
    data = read_clip_dataset(clip_data)
    model = FakeModel()
    fit_student(clip_data, model, DistillConfig(epochs=2, hidden=8), retrain=True)
    train_caps = {t for c in data["clips"] if c["split"] == "train" for t in c["captions"]["train"]}
    held_out = {t for c in data["clips"] for t in c["captions"]["test"]}
    assert model.seen and set(model.seen) <= train_caps
    assert not set(model.seen) & held_out
    ids, _ = training_captions(data)
    assert {c["clip_id"] for c in data["clips"] if c["split"] == "train"} == set(ids)
    again = FakeModel()  # same identity and settings: the cached student, nothing embedded
    fit_student(clip_data, again, DistillConfig(epochs=2, hidden=8))
    assert again.seen == []


# ---- clip vectors, teacher, distillation --------------------------------------------------------
def _toy_clips(n: int = 6, f: int = 5, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(n, f, d, generator=g), dim=-1)
    mask = torch.ones(n, f, dtype=torch.bool)
    mask[0, 3:] = False  # a shorter clip
    return x, mask


def test_afa_weights_sum_to_one_and_skip_padding():
    x, mask = _toy_clips()
    afa = AFA(8, 16)
    torch.nn.init.normal_(afa.score[2].weight)  # non-uniform weights
    w = afa.weights(x, mask)
    assert torch.allclose(w.sum(1), torch.ones(len(x)))
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    assert w[1].std() > 0


def test_untrained_afa_is_meanp():
    x, mask = _toy_clips()
    clips, w = AFA(8, 16)(x, mask)
    assert torch.allclose(w[mask], (1.0 / mask.sum(1, keepdim=True).expand_as(mask).float())[mask])
    assert torch.allclose(clips, meanp(x, mask), atol=1e-6)
    ref = np.stack([x[i][mask[i]].numpy().mean(0) for i in range(len(x))])  # numpy reference
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.allclose(meanp(x, mask).numpy(), ref, atol=1e-6)


def test_teacher_pools_match_brute_force():
    x, mask = _toy_clips()
    t = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    brute_max = np.array([[max(float(t[i] @ x[c, k]) for k in range(5) if mask[c, k]) for c in range(6)]
                          for i in range(4)])
    assert np.allclose(teacher_scores(t, x, mask, "max").numpy(), brute_max, atol=1e-6)
    assert np.allclose(teacher_scores(t, x, mask, "softmax", tau=1e-4).numpy(), brute_max, atol=1e-4)
    flat = teacher_scores(t, x, mask, "softmax", tau=1e4).numpy()  # tau -> inf: the mean similarity
    brute_mean = np.array([[np.mean([float(t[i] @ x[c, k]) for k in range(5) if mask[c, k]]) for c in range(6)]
                           for i in range(4)])
    assert np.allclose(flat, brute_mean, atol=1e-4)


def test_pearson_distance_matches_numpy():
    a, b = np.random.default_rng(0).random((2, 5, 7))
    ref = np.mean([1 - np.corrcoef(a[i], b[i])[0, 1] for i in range(5)])
    assert float(pearson_distance(torch.from_numpy(a), torch.from_numpy(b), 1)) == pytest.approx(ref)
    ref_cols = np.mean([1 - np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(7)])
    assert float(pearson_distance(torch.from_numpy(a), torch.from_numpy(b), 0)) == pytest.approx(ref_cols)


def _event_toy(n: int = 48, f: int = 6, d: int = 16, seed: int = 0):
    """Clips whose one event frame matches the caption; the other frames are shared-ish noise."""
    rng = np.random.default_rng(seed)
    cap = rng.normal(size=(n, 2, d))
    frames = rng.normal(size=(n, f, d)) * 0.5 + rng.normal(size=d)  # a common direction for driving frames
    ev = rng.integers(1, f - 1, n)
    frames[np.arange(n), ev] = cap[:, 0] + 0.3 * rng.normal(size=(n, d)) + 0.6 * rng.normal(size=d)
    unit = lambda z: (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(frames), np.ones((n, f), bool), unit(cap)


def test_tiny_distillation_lowers_the_loss_and_beats_meanp():
    frames, mask, cap = _event_toy()
    cfg = DistillConfig(epochs=30, batch=16, hidden=32, lr=3e-3)
    fr, mk, tx = torch.from_numpy(frames), torch.from_numpy(mask), torch.from_numpy(cap[:, 0])
    before = distill_losses(AFA(16, 32), tx, fr, mk, cfg)
    student, hist = train_afa(frames, mask, cap, cfg)
    after = distill_losses(student, tx, fr, mk, cfg)
    assert hist[-1]["total"] < hist[0]["total"]
    assert float(after["total"].detach()) < float(before["total"].detach())
    assert float(after["fine"].detach()) < float(before["fine"].detach())
    with torch.no_grad():
        hit = lambda clips: float(((tx @ clips.T).argmax(1) == torch.arange(len(tx))).float().mean())  # noqa: E731
        assert hit(student(fr, mk)[0]) > hit(meanp(fr, mk))


def test_student_save_load_round_trip(tmp_path: Path):
    frames, mask, cap = _event_toy(n=8)
    student, _ = train_afa(frames, mask, cap, DistillConfig(epochs=2, batch=4, hidden=8))
    save_afa(student, tmp_path / "s.safetensors", {"model": "m"})
    back, meta = load_afa(tmp_path / "s.safetensors")
    fr, mk = torch.from_numpy(frames), torch.from_numpy(mask)
    assert meta == {"model": "m"}
    with torch.no_grad():
        assert torch.equal(back(fr, mk)[0], student(fr, mk)[0])


def test_pad_clips_orders_frames_by_index():
    v = np.arange(10, dtype=np.float32).reshape(5, 2)
    frames, mask = pad_clips(v, ["b", "a", "b", "a", "a"], [1, 2, 0, 0, 1], ["a", "b"])
    assert frames[0].tolist() == [[6, 7], [8, 9], [2, 3]] and mask[0].all()
    assert frames[1, :2].tolist() == [[4, 5], [0, 1]] and mask[1].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="no frame vectors"):
        pad_clips(v, ["a"] * 5, range(5), ["a", "c"])


# ---- moments and the command ---------------------------------------------------------------------
def test_windows_find_the_high_run():
    times = np.arange(12) * 0.5
    scores = np.full(12, 0.1)
    scores[4:8] = 0.5
    w = propose_windows(times, scores, 0.5)
    assert w[0, :2].tolist() == [2.0, 4.0]
    assert (np.diff(w[:, 2]) <= 0).all() and len(w) <= 10


def test_eval_retrieval_json_contract(clip_data: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    import core.models
    from core.cli import main

    monkeypatch.setattr(core.models, "load_model", lambda name: FakeModel())
    assert main(["eval-retrieval", "--data", str(clip_data), "--method", "meanp", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("t2v", "v2t"):
        assert set(out[key]) == {"r1", "r5", "r10", "mdr", "mnr"}
    assert {"r1_05", "r1_07", "map"} <= set(out["moments"])
    assert out["clips"] == 6 and out["split"] == "test"
    report = evaluate_retrieval(clip_data, FakeModel(), split="all", method="teacher", moments=False)
    assert report["clips"] == 14 and report["moments"] is None
    assert main(["eval-retrieval", "--data", str(clip_data.parent)]) != 0
    assert "not a clip retrieval dataset" in capsys.readouterr().err


def test_no_attribute_or_value_is_spelled_in_the_retrieval_modules():
    import ast

    schema = default_schema()
    names = set(schema.names) | {v.name for a in schema for v in a.values}
    core = Path(__file__).resolve().parents[1] / "core"
    for path in [*sorted((core / "retrieval").glob("*.py")), core / "synth" / "drives.py"]:
        tree = ast.parse(path.read_text())
        spelled = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
        assert not spelled, (path.name, spelled)
