"""Model registry (open_clip pretrained tags, local files, the bundled model) and SceneModel."""

from core.models.registry import (
    BUNDLED,
    DEFAULT_MODEL,
    ModelUnavailableError,
    list_models,
    load_model,
)
from core.models.scene_model import SceneModel, to_pil

__all__ = [
    "BUNDLED", "DEFAULT_MODEL", "ModelUnavailableError", "SceneModel", "list_models", "load_model",
    "to_pil",
]
