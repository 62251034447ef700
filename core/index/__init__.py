"""Vector index of frame embeddings (FAISS), built atomically and resumably from a dataset."""

from __future__ import annotations

from core.lazy import lazy_names

# Names load on first use (core.lazy): the build and embed modules import torch (~9 s of CPU), which
# opening or writing an index from vectors (the demo's start-up, core.demo) does without.
_WHERE = {
    "build_index": "core.index.build", "build_lock": "core.index.build", "discard_build": "core.index.build",
    "embed_dataset": "core.index.embed",
    "IndexBusyError": "core.index.errors", "IndexMismatchError": "core.index.errors",
    "IndexStoreError": "core.index.errors",
    "DEFAULT_FACTORY": "core.index.factory", "make_index": "core.index.factory",
    "min_training_vectors": "core.index.factory",
    "building_path": "core.index.folder",
    "IndexStore": "core.index.store",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)
