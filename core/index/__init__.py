"""Vector index of frame embeddings (FAISS), built atomically and resumably from a dataset."""

from core.index.build import build_index, build_lock, discard_build
from core.index.embed import embed_dataset
from core.index.errors import IndexBusyError, IndexMismatchError, IndexStoreError
from core.index.factory import DEFAULT_FACTORY, make_index, min_training_vectors
from core.index.folder import building_path
from core.index.store import IndexStore

__all__ = [
    "DEFAULT_FACTORY", "IndexBusyError", "IndexMismatchError", "IndexStore", "IndexStoreError", "build_index",
    "build_lock", "building_path", "discard_build", "embed_dataset", "make_index", "min_training_vectors",
]
