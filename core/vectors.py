"""Unit vectors: the one row-wise L2 normalisation (cosine similarity = inner product of unit rows).

Kept free of imports beyond numpy so that the neighbour search, familiarity and the index package
can all use it without importing each other.
"""

from __future__ import annotations

import numpy as np


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (a copy, float32); zero rows stay zero."""
    x = np.array(np.atleast_2d(x), dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


__all__ = ["normalize"]
