"""Model registry. A model's name says where its weights come from:

- ``scenescope-tiny``: the bundled model in ``assets/scenescope-tiny`` (default);
- ``openclip:<arch>/<pretrained>``: open_clip's own pretrained tags, downloaded once and cached;
  ``openclip:<arch>`` alone gives random weights (timing only);
- ``file:<path>``: a local open_clip checkpoint; ``<path>`` is a folder holding
  ``open_clip_config.json`` and weights (open_clip's hub layout), or a weights file
  (``.safetensors``, or a weights-only torch file) with ``open_clip_config.json`` beside it.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2

from core.atomic import recover

# The names live in a module without torch: `scenescope models` lists them without loading any.
from core.model_names import (  # noqa: F401 (re-exported)
    ASSETS,
    BUNDLED,
    CONFIGS,
    DEFAULT_MODEL,
    file_digest,
    find_weights,
    list_models,
)
from core.models.scene_model import SceneModel
from core.quant.storage import is_quantized, load_quantized
from core.quote import one_line

open_clip.add_model_config(CONFIGS)


class ModelUnavailableError(RuntimeError):
    """The named model cannot be loaded; the message says how to supply it."""




def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _find_weights(folder: Path) -> Path:
    if found := find_weights(folder):
        return found
    raise ModelUnavailableError(f"{folder}: no weights file (open_clip_model.safetensors) found")


def _load_file(path: Path, device: str) -> tuple[torch.nn.Module, object, Path]:
    folder = path if path.is_dir() else path.parent
    if not (folder / "open_clip_config.json").is_file():
        raise ModelUnavailableError(
            f"{folder}: missing open_clip_config.json (open_clip's hub layout: "
            '{"model_cfg": {...}, "preprocess_cfg": {...}}) next to the weights'
        )
    weights = _find_weights(folder) if path.is_dir() else path
    # open_clip warns "initialized randomly" when asked not to load weights; we load them next.
    logging.disable(logging.WARNING)
    try:
        model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, device=device)
    except Exception as e:  # a malformed config surfaces as JSON, key or type errors deep in open_clip
        raise ModelUnavailableError(
            f"{folder / 'open_clip_config.json'}: cannot build the model "
            f"({type(e).__name__}: {one_line(str(e), 160)})"
        ) from None
    finally:
        logging.disable(logging.NOTSET)
    try:
        if is_quantized(weights):  # `scenescope quantize` output: integer codes + scales, dequantized here
            load_quantized(model, weights, device=device)
        else:
            open_clip.load_checkpoint(model, str(weights), weights_only=True, device=device)
    except Exception as e:  # torch, safetensors and open_clip each raise their own types
        raise ModelUnavailableError(f"{weights}: weights refused: {_refusal(e)}") from None
    cfg = open_clip.get_model_preprocess_cfg(model)
    preprocess = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    return model, preprocess, weights


def _refusal(e: Exception) -> str:
    """Why a weights file was refused, in one line (torch's own message runs to a screenful)."""
    if isinstance(e, pickle.UnpicklingError):
        return ("not a weights-only file (it holds pickled Python objects, which are never run); "
                "save the state dict as .safetensors")
    name = type(e).__name__
    if name == "SafetensorError":
        return f"not a valid safetensors file ({one_line(str(e), 120)})"
    if isinstance(e, RuntimeError) and "state_dict" in str(e):
        return f"its tensors do not fit open_clip_config.json ({one_line(str(e), 120)})"
    return f"{name}: {one_line(str(e), 160) or 'unreadable'}"


def _load_openclip(spec: str, device: str, cache_dir: str | None) -> tuple:
    arch, _, tag = spec.partition("/")
    if arch not in open_clip.list_models():
        raise ModelUnavailableError(f"unknown open_clip architecture {arch!r}; see `scenescope models`")
    if tag and tag not in open_clip.list_pretrained_tags_by_model(arch):
        raise ModelUnavailableError(
            f"open_clip has no pretrained tag {tag!r} for {arch}; "
            f"known: {open_clip.list_pretrained_tags_by_model(arch)}"
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=tag or None, device=device, cache_dir=cache_dir
        )
    except Exception as e:  # the hub client raises many types when offline
        raise ModelUnavailableError(
            f"cannot get weights for openclip:{spec} ({type(e).__name__}). Weights download once "
            f"into the cache (cache_dir={cache_dir or 'HF_HOME / ~/.cache/huggingface'}); offline, "
            "copy a cache from a machine with internet, or save the checkpoint and load it with "
            "file:<folder with open_clip_config.json and weights>."
        ) from None
    return model, preprocess, arch


def load_model(name: str = DEFAULT_MODEL, device: str = "cpu", cache_dir: str | None = None) -> SceneModel:
    """Load a registry model for inference (eval mode, on ``device``)."""
    if name in BUNDLED:
        folder = BUNDLED[name]
        recover(folder)  # train-default writes it with the same swap as any model folder
        if not (folder / "open_clip_config.json").is_file():
            raise ModelUnavailableError(
                f"bundled model {name} is missing from {folder}; rebuild it with `scenescope train-default`"
            )
        model, preprocess, weights = _load_file(folder, device)
        identity = f"{name}@{file_digest(weights)}"
        tok_name = f"local-dir:{folder}"
    elif name.startswith("file:"):
        path = Path(name[5:]).expanduser()
        recover(path)  # a model folder whose save was killed between its two renames
        if not path.exists():
            raise ModelUnavailableError(f"{path}: no such checkpoint file or folder")
        model, preprocess, weights = _load_file(path, device)
        identity = f"file:{path.name}@{file_digest(weights)}"
        tok_name = f"local-dir:{path if path.is_dir() else path.parent}"
    elif name.startswith("openclip:"):
        model, preprocess, tok_name = _load_openclip(name[9:], device, cache_dir)
        identity = f"{name}@{_state_digest(model)}"
    else:
        raise ModelUnavailableError(
            f"unknown model {name!r}: use scenescope-tiny, openclip:<arch>/<tag> or file:<path>"
        )
    model.eval()
    tokenizer = open_clip.get_tokenizer(tok_name)
    return SceneModel(name=name, identity=identity, clip=model, preprocess=preprocess,
                      tokenizer=tokenizer, device=device)
