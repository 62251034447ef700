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
from core.quant.compare import CLIP_POOLS, compare_clips, spread_frames
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
