"""The names the model registry accepts, listed without importing torch.

``core.models.registry`` loads models and so imports open_clip, torchvision and torch (seconds and
a gigabyte); ``scenescope models`` only lists names, so the names live here and the registry
re-exports them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONFIGS = Path(__file__).resolve().parent / "models" / "configs"  # our open_clip configs
DEFAULT_MODEL = "scenescope-tiny"
BUNDLED = {"scenescope-tiny": ASSETS / "scenescope-tiny"}
# A model folder's weights, first found wins (the last: `scenescope quantize` output, core.quant.storage).
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors",
                "open_clip_quantized.safetensors")


def file_digest(path: Path) -> str:
    """The weights checksum in a model's identity (name@digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def find_weights(folder: Path) -> Path | None:
    return next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)


def bundled_identity(name: str) -> str | None:
    """The identity ``load_model(name)`` gives a bundled model, without loading it (torch costs ~9 s
    of CPU: the demo's start-up checks its shipped vectors against this); None when not bundled or
    its weights are missing."""
    weights = find_weights(BUNDLED[name]) if name in BUNDLED else None
    return f"{name}@{file_digest(weights)}" if weights else None


def openclip_pretrained() -> list[tuple[str, str]]:
    """open_clip's ``list_pretrained()``: (architecture, tag) pairs with downloadable weights."""
    if "open_clip" in sys.modules:  # already paid for
        return sys.modules["open_clip"].list_pretrained()
    try:
        return _pretrained_without_torch()
    except Exception:  # noqa: BLE001 - a changed open_clip layout: ask open_clip itself, slowly
        import open_clip

        return open_clip.list_pretrained()


def _pretrained_without_torch() -> list[tuple[str, str]]:
    """Read open_clip's table of pretrained weights without running its ``__init__``.

    ``open_clip/__init__.py`` imports the model code (torch, torchvision: ~9 s of CPU) even when
    only its table of tags is wanted. ``pretrained.py`` holds the table and needs only its sibling
    constants: load it as a submodule of a stand-in package whose ``__init__`` never runs, with the
    two optional imports it can do without (safetensors' torch half, the hub client) held off.
    """
    spec = importlib.util.find_spec("open_clip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip is not installed")
    stand_in = "_scenescope_open_clip_table"
    package = types.ModuleType(stand_in)
    package.__path__ = list(spec.submodule_search_locations)
    held = [name for name in ("safetensors.torch", "huggingface_hub") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(held))  # None in sys.modules makes `import name` an ImportError
    sys.modules[stand_in] = package
    try:
        return importlib.import_module(f"{stand_in}.pretrained").list_pretrained()
    finally:
        for name in [m for m in sys.modules if m == stand_in or m.startswith(f"{stand_in}.")] + held:
            del sys.modules[name]


def list_models() -> list[str]:
    """Names that ``core.models.load_model`` accepts, bundled ones first."""
    return list(BUNDLED) + ["file:<path>"] + [f"openclip:{a}/{t}" for a, t in openclip_pretrained()]
