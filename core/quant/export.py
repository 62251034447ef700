"""`scenescope quantize`: a registry model's vision tower quantized into a `file:` model folder.

The folder holds ``open_clip_config.json`` (the source model's), ``open_clip_quantized.safetensors``
(codes, scales and the unquantized tensors; see ``core.quant.storage``) and ``MODEL_CARD.md``
(method, bits, group size, calibration set and size). The registry loads it by ``file:<folder>``;
its identity is the digest of its own weights file, so indexes built with the source refuse it.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import open_clip

from core.atomic import atomic_write_text
from core.models import BUNDLED, SceneModel, load_model
from core.quant.gptq import DAMP, GROUP_SIZE
from core.quant.model import METHODS, linear_targets, quantize_module
from core.quant.storage import QUANT_WEIGHTS, save_quantized
from core.schema import Schema, default_schema
from core.synth.clips import attribute_with
from core.synth.render import RENDERER_VERSION, render_params

CALIBRATION = 200  # frames, the minimum for GPTQ
CALIBRATION_SEED = 4242  # differs from train-default's (7) and the model card's (1001) data seeds
CALIBRATION_SIZE = (320, 180)  # the synthetic datasets' frame size (width, height)
OTHER_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors")


def synthetic_frames(n: int, seed: int = CALIBRATION_SEED, size: tuple[int, int] = CALIBRATION_SIZE,
                     schema: Schema | None = None) -> list[np.ndarray]:
    """``n`` rendered frames drawn as ``scenescope synth`` draws single scenes (places uniform)."""
    schema = schema or default_schema()
    rng = random.Random(seed)
    places = attribute_with(schema, "feature")
    frames = []
    for _ in range(n):
        labels = schema.sample(rng, {places.name: rng.choice(places.value_names)})
        frames.append(render_params(schema.render_params(labels), rng.getrandbits(31), size))
    return frames


def source_config(name: str, model: SceneModel) -> dict:
    """The open_clip_config.json of a registry model (hub layout: model_cfg + preprocess_cfg)."""
    if name in BUNDLED or name.startswith("file:"):
        path = BUNDLED[name] if name in BUNDLED else Path(name[5:]).expanduser()
        folder = path if path.is_dir() else path.parent
        return json.loads((folder / "open_clip_config.json").read_text())
    arch = name.removeprefix("openclip:").partition("/")[0]
    return {"model_cfg": open_clip.get_model_config(arch),
            "preprocess_cfg": open_clip.get_model_preprocess_cfg(model.clip)}


def _card(info: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in info.items())
    return (
        f"# {info['model']}: {info['bits']}-bit {info['method'].upper()} vision encoder\n\n"
        "Weight-only quantization of the vision tower's linear layers (`scenescope quantize`); the "
        "text tower, the patch embedding, norms and the final projection keep their source values. "
        "The weights file holds integer codes and float16 scales; the registry dequantizes them into "
        "the open_clip model on load. Its identity differs from the source model's, so indexes "
        "built with the source refuse it: build a new index with this model.\n\n"
        f"| field | value |\n|---|---|\n{rows}\n"
    )


def quantize_to_folder(
    model_name: str, bits: int, out: str | Path, method: str = "gptq", calibration: int = CALIBRATION,
    group_size: int = GROUP_SIZE, seed: int = CALIBRATION_SEED, progress: bool = False,
) -> Path:
    """Quantize ``model_name``'s vision tower and write the `file:` model folder ``out``."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if group_size < 1:
        raise ValueError(f"--group-size must be positive, got {group_size}")
    if method == "gptq" and calibration < 1:
        raise ValueError("GPTQ needs at least one calibration frame (--calibration)")
    out = Path(out)
    other = [n for n in OTHER_WEIGHTS if (out / n).exists()]
    if other:
        raise ValueError(f"{out} already holds a model ({other[0]}); write the quantized model to a new folder")
    model = load_model(model_name)
    visual = model.clip.visual
    t0 = time.perf_counter()
    pixels = None
    if method == "gptq":
        if progress:
            print(f"rendering {calibration} calibration frames (seed {seed})")
        pixels = model.preprocess_batch(synthetic_frames(calibration, seed))
    if progress:
        print(f"quantizing {len(linear_targets(visual))} linear layers of {model.identity} ({method}, {bits}-bit)")
    quantized = quantize_module(visual, method, bits, calibration=pixels, group_size=group_size,
                                prefix="visual.")
    seconds = time.perf_counter() - t0
    n_params = sum(q.codes.numel() for q in quantized.values())
    calib = (f"{calibration} synthetic frames from core.synth (seed {seed}, {CALIBRATION_SIZE[0]}x"
             f"{CALIBRATION_SIZE[1]}, renderer v{RENDERER_VERSION}, places uniform)") if method == "gptq" \
        else "none (round-to-nearest needs no data)"
    info = {
        "model": out.name, "source model": model.identity, "method": method, "bits": bits,
        "group size": group_size, "scales": "symmetric, one float16 scale per output channel and group",
        "calibration set": calib, "calibration size": calibration if method == "gptq" else 0,
        "GPTQ damping": f"{DAMP} x mean diag(H), lazy batch updates of 128 columns" if method == "gptq" else "-",
        "quantized layers": f"{len(quantized)} ({n_params} weights: nn.Linear + attention in_proj)",
        "quantization time": f"{seconds:.1f} s",
    }
    out.mkdir(parents=True, exist_ok=True)
    weights = save_quantized(out / QUANT_WEIGHTS, model.clip.state_dict(), quantized, bits, method,
                             extra={"source": model.identity, "calibration": info["calibration size"]})
    info["file size"] = f"{weights.stat().st_size / 1e6:.2f} MB"
    atomic_write_text(out / "open_clip_config.json", json.dumps(source_config(model_name, model), indent=2))
    atomic_write_text(out / "MODEL_CARD.md", _card(info))
    return out

