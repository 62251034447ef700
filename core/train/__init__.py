"""Contrastive training of CLIP models: the bundled model from scratch, and fine-tuning.

The names below load on first use (PEP 562), so light modules of this package (options,
model_defaults) import without torch: the command line builds its parser from them.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "save_model_dir": "core.train.checkpoint",
    "epoch_captions": "core.train.data", "epoch_subset_captions": "core.train.data",
    "label_codes": "core.train.data", "load_pixels": "core.train.data",
    "StepInfo": "core.train.loop", "TrainConfig": "core.train.loop", "train_contrastive": "core.train.loop",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'core.train' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
