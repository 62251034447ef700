"""Quantized encoders measured on clips (issue 22): ``core.quant.compare.compare_clips`` ranks through
the one metric function, an identity quantizer reproduces the FP32 figures exactly, and meanP's R@k
equals a numpy brute force."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch

import core.quant.model as quant_model
import core.retrieval.metrics as metrics
from core.models import load_model
from core.quant import quantize_module
from core.quant.compare import CLIP_POOLS, compare_clips, paired_r1, spread_frames
from core.retrieval.clipvec import AFA
from core.retrieval.data import read_clip_dataset, write_clip_dataset

# A micro open_clip ViT (as in tests/test_quant.py): random weights, fast on CPU.
MICRO = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": [32, 48], "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 4,
                   "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    from core.train import save_model_dir

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("quant-clips")
    torch.manual_seed(0)
    name = f"file:{save_model_dir(open_clip.CLIP(**MICRO), MICRO, tmp / 'fp32')}"
    root = write_clip_dataset(tmp / "clips", train=2, test=10, seed=4, frames=(5, 6), drive_clips=3, size=(96, 56))
    yield name, root
    torch.set_num_threads(before)


def _identity_rtn(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A "quantizer" whose codes are the weights and whose scales are 1: dequantizes to w exactly."""
    return w.detach().to(torch.float32).clone(), torch.ones(w.shape[0], math.ceil(w.shape[1] / group_size),
                                                             dtype=torch.float16)


def test_identity_quantizer_gives_the_fp32_clip_figures(setup, monkeypatch: pytest.MonkeyPatch):
    name, root = setup
    fp32, same, int4 = load_model(name), load_model(name), load_model(name)
    with monkeypatch.context() as m:  # every linear layer goes through the quantization machinery unchanged
        m.setattr(quant_model, "quantize_rtn", _identity_rtn)
        assert quantize_module(same.clip.visual, "rtn", 8, prefix="visual.")
    quantize_module(int4.clip.visual, "rtn", 4, prefix="visual.")  # a real quantizer: vectors must move
    torch.manual_seed(1)
    student = AFA(MICRO["embed_dim"], hidden=16)
    torch.nn.init.normal_(student.score[2].weight, std=2.0)  # non-uniform weights: not meanP in disguise

    calls: list[dict] = []
    real = metrics.retrieval_metrics

    def spy(sim: np.ndarray) -> dict:
        calls.append(real(sim))
        return calls[-1]

    monkeypatch.setattr(metrics, "retrieval_metrics", spy)
    encoders = {"FP32": fp32.embed_batch, "identity": same.embed_batch, "INT4 RTN": int4.embed_batch}
    out = compare_clips(root, fp32, encoders, student=student, batch=8)

    # Every figure comes from the one metric function: one call per encoder and pooling.
    assert len(calls) == len(encoders) * len(CLIP_POOLS)
    assert [out[n][p] for n in encoders for p in CLIP_POOLS] == [c["t2v"] for c in calls]
    # The identity "quantizer" gives exactly the FP32 vectors and figures; real INT4 moves the vectors.
    np.testing.assert_array_equal(out["identity"]["vectors"], out["FP32"]["vectors"])
    for p in CLIP_POOLS:
        assert out["identity"][p] == out["FP32"][p]
    assert not np.array_equal(out["INT4 RTN"]["vectors"], out["FP32"]["vectors"])

    # meanP's R@k against a numpy brute force: mean of each clip's unit frame vectors, diagonal hits,
    # ties counted against the query.
    clips = [c for c in read_clip_dataset(root)["clips"] if c["split"] == "test"]
    from core.data.manifest import read_manifest

    frames = read_manifest(root).frames
    frames = frames[frames["split"] == "test"].reset_index(drop=True)
    v = out["FP32"]["vectors"]
    pooled = np.stack([v[(frames["clip_id"] == c["clip_id"]).to_numpy()].mean(0) for c in clips])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    sim = fp32.embed_texts([c["captions"]["test"][0] for c in clips]) @ pooled.T
    rank = np.array([(np.delete(row, i) >= row[i]).sum() for i, row in enumerate(sim)])
    for k in (1, 5, 10):
        assert out["FP32"]["meanp"][f"r{k}"] == pytest.approx(100 * np.mean(rank < k), abs=1e-9)
    np.testing.assert_array_equal(out["FP32"]["ranks"]["meanp"], rank)  # the per-query ranks paired_r1 compares


def test_spread_frames_keeps_the_ends_and_spreads_the_rest(setup):
    from core.data.manifest import read_manifest

    frames = read_manifest(setup[1]).frames
    thin = spread_frames(frames, 3)
    for cid, g in thin.groupby("clip_id"):
        n = int((frames["clip_id"] == cid).sum())
        assert g["frame_index"].tolist() == [0, round((n - 1) / 2), n - 1]  # numpy and Python round half to even
    assert spread_frames(frames, None) is frames
    with pytest.raises(ValueError, match="at least 1"):
        spread_frames(frames, 0)


def test_paired_r1_counts_discordant_queries_and_tests_them_exactly():
    # 20 queries: A hits 12, B hits 5; 8 hit by A only, 1 by B only, 4 by both.
    a = np.array([0] * 12 + [3] * 8)
    b = np.array([0] * 4 + [2] * 8 + [0] + [5] * 7)
    r = paired_r1(a, b, resamples=2000)
    assert (r["r1_a"], r["r1_b"], r["diff"]) == pytest.approx((60.0, 25.0, 35.0))
    assert (r["a_only"], r["b_only"]) == (8, 1)
    # Exact two-sided sign test by hand: 2 * P(X <= 1), X ~ Binomial(9, 1/2) = 2 * (1 + 9) / 512.
    assert r["p_sign"] == pytest.approx(20 / 512)
    assert r["ci95"][0] < 35.0 < r["ci95"][1] and r["ci95"][0] > 0
    # Ranks: A better on 8 + 7 = 15 queries (its 3 beats B's 5 on the last 7), worse on 1, tied on 4.
    assert (r["rank_better"], r["rank_worse"]) == (15, 1)
    assert r["p_rank"] == pytest.approx(2 * 17 / 2 ** 16)
    same = paired_r1(a, a)
    assert (same["diff"], same["ci95"], same["p_sign"], same["p_rank"]) == (0.0, [0.0, 0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="equal 1-D"):
        paired_r1(a, b[:-1])
