"""Weight-only quantization: GPTQ against RTN on one layer, INT4 packing, quantized file: models."""

from __future__ import annotations

import json
import random

import numpy as np
import open_clip
import pytest
import torch

from core.cli import main as cli_main
from core.index import IndexMismatchError, IndexStore
from core.models import load_model
from core.quant import QUANT_WEIGHTS, pack_int4, quantize_gptq, quantize_module, quantize_rtn, unpack_int4
from core.quant.export import quantize_to_folder, synthetic_frames
from core.quant.gptq import Hessian, dequantize
from core.quant.model import _unrolled
from core.quant.storage import read_metadata
from core.schema import default_schema

# A micro open_clip ViT (2 blocks of width 64, 32x48 input) keeps GPTQ over a whole tower fast.
MICRO = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": [32, 48], "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 4,
                   "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    from core.train import save_model_dir

    torch.manual_seed(0)
    clip = open_clip.CLIP(**MICRO)
    out = save_model_dir(clip, MICRO, tmp_path_factory.mktemp("micro") / "fp32")
    return f"file:{out}"


def _correlated_inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """Activations with a few dominant directions and outlier features, as in transformers."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d // 4, generator=g) @ torch.randn(d // 4, d, generator=g)
    x += 0.1 * torch.randn(n, d, generator=g)
    x[:, :4] *= 8
    return x


def _rtn_reference(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Round-to-nearest, written out per row and group with numpy."""
    qm = 2 ** (bits - 1) - 1
    out = np.zeros_like(w)
    for r in range(w.shape[0]):
        for g0 in range(0, w.shape[1], group):
            seg = w[r, g0:g0 + group]
            s = np.float32(np.float16(np.abs(seg).max() / qm))
            out[r, g0:g0 + group] = np.clip(np.round(seg / s), -qm, qm) * s
    return out


@pytest.mark.parametrize("bits", [8, 4])
def test_gptq_beats_rtn_on_one_layer(bits):
    torch.manual_seed(bits)
    w = torch.randn(48, 320)
    x = _correlated_inputs(1024, 320, seed=bits)
    h = Hessian(320)
    for chunk in x.split(256):  # accumulated in pieces, as calibration batches arrive
        h.add(chunk)
    np.testing.assert_allclose(h.matrix().numpy(), (2 / len(x) * x.double().T @ x.double()).numpy(), rtol=1e-9)

    rtn = dequantize(*quantize_rtn(w, bits), 128)
    codes, scales = quantize_gptq(w, h.matrix(), bits)
    gptq = dequantize(codes, scales, 128)
    np.testing.assert_allclose(rtn.numpy(), _rtn_reference(w.numpy(), bits, 128), rtol=0, atol=1e-6)
    assert codes.dtype == torch.int8 and scales.dtype == torch.float16 and scales.shape == (48, 3)
    assert int(codes.abs().max()) <= 2 ** (bits - 1) - 1
    err = {name: float(torch.linalg.norm((w - q) @ x.T)) for name, q in (("rtn", rtn), ("gptq", gptq))}
    assert err["gptq"] < 0.8 * err["rtn"], err


def test_gptq_handles_dead_inputs_and_a_ragged_last_group():
    w = torch.randn(8, 200)
    x = torch.randn(300, 200)
    x[:, 7] = 0  # an input that never fires
    h = 2 / 300 * x.double().T @ x.double()
    codes, scales = quantize_gptq(w, h, 4)
    assert scales.shape == (8, 2) and codes[:, 7].abs().sum() == 0
    assert torch.isfinite(dequantize(codes, scales, 128)).all()


@pytest.mark.parametrize("cols", [1, 6, 7, 129])
def test_int4_packing_round_trip(cols):
    codes = torch.randint(-8, 8, (5, cols), dtype=torch.int8)
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (5, (cols + 1) // 2)
    assert torch.equal(unpack_int4(packed, cols), codes)
    with pytest.raises(ValueError, match="int4"):
        pack_int4(torch.tensor([[9]], dtype=torch.int8))


@pytest.mark.parametrize("batch_first", [True, False])
def test_unrolled_attention_matches_pytorch(batch_first):
    torch.manual_seed(1)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()
    x = torch.randn(3, 10, 64) if batch_first else torch.randn(10, 3, 64)
    mask = torch.triu(torch.full((10, 10), float("-inf")), diagonal=1)
    with torch.no_grad():
        ref = [mha(x, x, x, need_weights=False, attn_mask=m)[0] for m in (None, mask, mask.isinf())]
        with _unrolled(mha):
            got = [mha(x, x, x, need_weights=False, attn_mask=m)[0] for m in (None, mask, mask.isinf())]
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def _frames_and_fp32(name):
    model = load_model(name)
    frames = synthetic_frames(12, seed=3)
    return model, frames, model.embed_images(frames)


def test_quantized_model_loads_by_file_and_fp32_index_refuses_it(micro_model, tmp_path):
    fp32, frames, ref = _frames_and_fp32(micro_model)
    out = quantize_to_folder(micro_model, bits=4, out=tmp_path / "int4-gptq", method="gptq", calibration=16)
    assert {p.name for p in out.iterdir()} == {"MODEL_CARD.md", QUANT_WEIGHTS, "open_clip_config.json"}
    q = load_model(f"file:{out}")
    assert q.identity != fp32.identity and q.identity.startswith("file:int4-gptq@")

    # The loaded weights are exactly codes x scales of a GPTQ run on the same frames.
    again = load_model(micro_model)
    pixels = again.preprocess_batch(synthetic_frames(16))
    quantized = quantize_module(again.clip.visual, "gptq", 4, calibration=pixels, prefix="visual.")
    state = q.clip.state_dict()
    assert len(quantized) == 2 * 4  # per block: attention in_proj and out_proj, mlp c_fc and c_proj
    for key, qw in quantized.items():
        assert torch.equal(state[key], qw.weight()), key
    for key, v in fp32.clip.state_dict().items():  # everything else is untouched
        if key not in quantized:
            assert torch.equal(state[key], v), key
    emb = q.embed_images(frames)
    assert float(np.min(np.sum(emb * ref, axis=1))) > 0.9  # close, not equal

    rows = [{"path": f"f{i}.png", "clip_id": f"c{i}", **default_schema().sample(random.Random(i))}
            for i in range(len(frames))]
    IndexStore.from_embeddings(ref, rows, model=fp32.identity).save(tmp_path / "ix")
    assert len(IndexStore.load(tmp_path / "ix", model=fp32)) == len(frames)
    with pytest.raises(IndexMismatchError, match="int4-gptq"):
        IndexStore.load(tmp_path / "ix", model=q)


def test_int8_rtn_card_and_size(micro_model, tmp_path):
    fp32, frames, ref = _frames_and_fp32(micro_model)
    out = quantize_to_folder(micro_model, bits=8, out=tmp_path / "int8", method="rtn")
    q = load_model(f"file:{out}")
    assert float(np.min(np.sum(q.embed_images(frames) * ref, axis=1))) > 0.999
    card = (out / "MODEL_CARD.md").read_text()
    for field in ("| method | rtn |", "| bits | 8 |", "| group size | 128 |", "| calibration size | 0 |"):
        assert field in card
    # int8 codes: each quantized weight costs one byte (plus scales), not four
    meta = json.loads((out / "open_clip_config.json").read_text())
    assert meta["model_cfg"] == MICRO
    from safetensors import safe_open

    with safe_open(str(out / QUANT_WEIGHTS), framework="pt") as f:
        key = "visual.transformer.resblocks.0.mlp.c_fc.weight"
        assert f.get_tensor(f"{key}.qcodes").dtype == torch.int8
        assert f.get_tensor(f"{key}.qscales").shape == (256, 1)
    meta = read_metadata(out / QUANT_WEIGHTS)
    assert meta["bits"] == 8 and meta["method"] == "rtn" and meta["group_size"] == 128
    # the same quantization saved again is the same file, so the model keeps its identity
    again = quantize_to_folder(micro_model, bits=8, out=tmp_path / "again" / "int8", method="rtn")
    assert (again / QUANT_WEIGHTS).read_bytes() == (out / QUANT_WEIGHTS).read_bytes()
    assert load_model(f"file:{again}").identity == q.identity


def test_cli_quantize(micro_model, tmp_path, capsys):
    out = tmp_path / "cli-int4"
    rc = cli_main(["quantize", "--model", micro_model, "--bits", "4", "--method", "gptq", "--calibration", "8",
                   "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    card = (out / "MODEL_CARD.md").read_text()
    assert "| method | gptq |" in card and "| bits | 4 |" in card and "| calibration size | 8 |" in card
    assert "8 synthetic frames" in card
    assert load_model(f"file:{out}").identity.startswith("file:cli-int4@")
    # a folder that already holds an FP32 model is refused, in one line
    rc = cli_main(["quantize", "--model", micro_model, "--bits", "8", "--method", "rtn",
                   "--out", micro_model[5:]])
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a model" in err and len(err.strip().splitlines()) == 1


def test_ort_int8_encoder_follows_torch(micro_model, tmp_path):
    from core.quant.ort import OrtEncoder, int8_encoder

    model = load_model(micro_model)
    pixels = model.preprocess_batch(synthetic_frames(6, seed=5))
    ref = model.embed_batch(pixels)
    int8 = int8_encoder(model.clip, model.image_size, tmp_path)
    fp32 = OrtEncoder(tmp_path / "vision.onnx")
    np.testing.assert_allclose(fp32.embed_batch(pixels), ref, atol=1e-4)  # the export itself is exact
    cos = np.sum(int8.embed_batch(pixels) * ref, axis=1)
    assert cos.min() > 0.98 and cos.max() < 1 - 1e-6  # int8 arithmetic: close, not identical
    assert (tmp_path / "vision.int8.onnx").stat().st_size < 0.5 * (tmp_path / "vision.onnx").stat().st_size
    assert int8.embed_batch(pixels[:1]).shape == (1, MICRO["embed_dim"])  # any batch size
