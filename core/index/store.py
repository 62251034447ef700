"""IndexStore: a FAISS index plus the frame table, embeddings and manifest saved beside it."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import pandas as pd

import core
from core.atomic import atomic_path, atomic_write_text
from core.data.manifest import BASE_COLUMNS, resolve_inside
from core.index.errors import IndexMismatchError, IndexStoreError
from core.index.factory import DEFAULT_FACTORY, make_index, normalize, tune
from core.index.folder import (
    EMBEDDINGS_FILE,
    FILES,
    INDEX_FILE,
    MANIFEST_FILE,
    META_FILE,
    is_index_folder,
    recover,
    swap_into_place,
)
from core.index.frames import LAZY_FRAMES_ROWS, ROW_GROUP_ROWS, FrameTable
from core.schema import UNKNOWN, Schema, default_schema

if TYPE_CHECKING:
    from core.types import SceneModel

MANIFEST_KEYS = ("model", "dim", "metric", "count", "dataset", "factory", "created")
# manifest key of an index whose inverted lists live in their own file beside index.faiss
# (core.index.ondisk): {"lists": file name, "rerank": candidates re-ranked exactly, 0 for none}
ONDISK_KEY = "ondisk"

# Ways to open an index without reading it into RAM, tried in order: IO_FLAG_MMAP_IFC maps flat
# storage (Flat, HNSW's vectors, IVF lists) zero-copy; IO_FLAG_MMAP maps IVF lists on the file.
_MMAP_FLAGS = (faiss.IO_FLAG_MMAP_IFC, faiss.IO_FLAG_MMAP, 0)


def read_index_mapped(file: Path, ondisk: bool = False) -> faiss.Index:
    """Read a FAISS index memory-mapped where its type allows (else whole), read-only.

    ``ondisk``: its OnDiskInvertedLists file is found beside ``file`` (the folder is renamed after
    the build, so the absolute path written into the index is stale by design).
    """
    flags = (faiss.IO_FLAG_ONDISK_SAME_DIR,) if ondisk else _MMAP_FLAGS
    for flag in flags:
        try:
            return faiss.read_index(str(file), flag)
        except RuntimeError:
            continue
    raise IndexStoreError(f"{file}: corrupt FAISS index; rebuild it")


def make_manifest(
    *,
    model: str,
    dim: int,
    count: int,
    dataset: str | Path,
    split: str | None,
    factory: str,
    schema: Schema,
    model_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The manifest.json record of an index (see docs/CONTRACTS.md)."""
    return {
        "model": model,
        "model_name": model_name or model.split("@")[0],
        "dim": int(dim),
        "metric": "cosine",
        "count": int(count),
        "dataset": str(Path(dataset).resolve()),
        "split": split or "all",
        "factory": factory,
        "schema": schema.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scenescope_version": core.__version__,
        **extra,
    }


def meta_table(frames: pd.DataFrame | Sequence[Mapping[str, Any]], schema: Schema) -> pd.DataFrame:
    """The index's frame table: base columns then one column per attribute, index 0..n-1."""
    df = pd.DataFrame(frames).reset_index(drop=True)
    missing = [a for a in schema.names if a not in df.columns]
    if missing:
        raise IndexStoreError(f"frame table lacks attribute columns {missing}")
    defaults = {"path": "", "clip_id": "", "frame_index": 0, "timestamp_s": 0.0, "split": "train"}
    for col in BASE_COLUMNS:
        if col not in df.columns:
            df[col] = defaults[col]
    df = df[list(BASE_COLUMNS) + schema.names].copy()
    df = df.astype({"path": str, "clip_id": str, "frame_index": "int64", "timestamp_s": "float64",
                    "split": str})
    return df.astype({a: str for a in schema.names})


class IndexStore:
    """A searchable index of frame embeddings; rows of ``meta`` line up with FAISS ids."""

    def __init__(
        self,
        index: faiss.Index,
        meta: pd.DataFrame | FrameTable,
        manifest: dict[str, Any],
        *,
        embeddings: np.ndarray | None = None,
        path: str | Path | None = None,
        schema: Schema | None = None,
    ) -> None:
        self.index = index
        # A large index's table stays on disk (FrameTable) until something asks for all of it.
        self._frames = meta if isinstance(meta, FrameTable) else None
        self._meta = None if isinstance(meta, FrameTable) else meta
        self.manifest = manifest
        self.path = Path(path) if path is not None else None
        self.schema = schema or default_schema()
        self._embeddings = embeddings
        self._label_table: np.ndarray | None = None
        self._codes: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._path_column: Any = None
        self._paths: np.ndarray | None = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_embeddings(
        cls,
        embeddings: np.ndarray,
        meta: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        model: str,
        factory: str = DEFAULT_FACTORY,
        dataset: str | Path = ".",
        split: str | None = None,
        schema: Schema | None = None,
        **extra: Any,
    ) -> IndexStore:
        """An in-memory store over given vectors (normalised here); ``save`` writes it."""
        schema = schema or default_schema()
        x = normalize(embeddings)
        table = meta_table(meta, schema)
        if len(table) != len(x):
            raise IndexStoreError(f"{len(x)} embeddings but {len(table)} frame rows")
        manifest = make_manifest(model=model, dim=x.shape[1], count=len(x), dataset=dataset,
                                 split=split, factory=factory, schema=schema, **extra)
        return cls(make_index(factory, x), table, manifest, embeddings=x, schema=schema)

    @classmethod
    def load(cls, path: str | Path, model: SceneModel | None = None, schema: Schema | None = None) -> IndexStore:
        """Open a saved index; with ``model`` refuse one built by a different model."""
        path = Path(path)
        recover(path)
        if not path.is_dir():
            raise IndexStoreError(f"{path}: no index here; build one first (build_index)")
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise IndexStoreError(f"{path}: incomplete index (missing {', '.join(missing)}); rebuild it")
        manifest = read_manifest(path)
        if model is not None:
            check_model(path, manifest, model)
        schema = schema or default_schema()
        lists = (manifest.get(ONDISK_KEY) or {}).get("lists")
        if lists and not (path / str(lists)).is_file():
            raise IndexStoreError(f"{path}: incomplete index (missing {lists}, its on-disk lists); rebuild it")
        index = read_index_mapped(path / INDEX_FILE, ondisk=bool(lists))
        try:
            if int(manifest["count"]) >= LAZY_FRAMES_ROWS:
                meta = FrameTable(path / META_FILE)  # read by row id (core.index.frames)
            else:
                meta = pd.read_parquet(path / META_FILE)
        except Exception as e:  # pyarrow raises several unrelated types for a torn file
            raise IndexStoreError(f"{path / META_FILE}: cannot read ({e}); rebuild it") from None
        try:  # header only: the vectors are read when first asked for
            emb = np.load(path / EMBEDDINGS_FILE, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise IndexStoreError(f"{path / EMBEDDINGS_FILE}: cannot read ({e}); rebuild it") from None
        n, d = int(manifest["count"]), int(manifest["dim"])
        if index.ntotal != n or len(meta) != n or emb.shape != (n, d) or index.d != d:
            raise IndexStoreError(
                f"{path}: files disagree (manifest count={n} dim={d}, index {index.ntotal}x{index.d}, "
                f"meta {len(meta)} rows, embeddings {emb.shape}); rebuild it"
            )
        lacking = [c for c in list(BASE_COLUMNS) + schema.names if c not in meta.columns]
        if lacking:
            raise IndexStoreError(f"{path / META_FILE}: missing columns {lacking} (schema {schema.name})")
        return cls(tune(index), meta, manifest, embeddings=emb, path=path, schema=schema)

    def save(self, out: str | Path) -> Path:
        """Write the store to ``out`` atomically (a crash leaves the previous ``out`` intact)."""
        out = Path(out)
        if out.exists() and not is_index_folder(out) and any(out.iterdir()):
            raise IndexStoreError(f"{out} exists and is not an index folder; refusing to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.saving-", dir=out.parent))
        try:
            self.write_files(tmp)
            swap_into_place(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.path = out
        return out

    def write_files(self, folder: Path) -> None:
        """Write the four index files into ``folder``, each atomically, the manifest last."""
        with atomic_path(folder / INDEX_FILE) as tmp:
            faiss.write_index(self.index, str(tmp))
        lists = (self.manifest.get(ONDISK_KEY) or {}).get("lists")
        if lists and self.path is not None and (self.path / lists).resolve() != (folder / lists).resolve():
            with atomic_path(folder / lists) as tmp:  # the lists live outside index.faiss
                shutil.copyfile(self.path / lists, tmp)
        with atomic_path(folder / META_FILE) as tmp:
            if self._meta is None:  # still on disk: copy it rather than read it whole
                shutil.copyfile(self._frames.path, tmp)
            else:
                self.meta.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)
        with atomic_path(folder / EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(self.embeddings(), dtype=np.float32))
        atomic_write_text(folder / MANIFEST_FILE, json.dumps(self.manifest, indent=2) + "\n")

    # ---- queries -----------------------------------------------------------------------
    @property
    def meta(self) -> pd.DataFrame:
        """The whole frame table (row i = FAISS id i); a large index reads it on first use, so
        per-query code uses :meth:`label_rows` / :meth:`paths_of` instead."""
        if self._meta is None:
            self._meta = self._frames.to_pandas()
        return self._meta

    @meta.setter
    def meta(self, table: pd.DataFrame) -> None:
        self._meta, self._frames = table, None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def data_root(self) -> Path:
        return Path(self.manifest["dataset"])

    def embeddings(self) -> np.ndarray:
        """All stored vectors (N, d), unit length, row i = FAISS id i."""
        if self._embeddings is None:
            raise IndexStoreError("this store has no embeddings")
        return self._embeddings

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine top-``k``: (similarities (n,k) float32, ids (n,k) int64, -1 where none)."""
        q = normalize(queries)
        if q.shape[1] != self.dim:
            raise IndexStoreError(f"queries have dimension {q.shape[1]}; this index holds {self.dim}")
        k = min(int(k), len(self))
        if k <= 0 or len(q) == 0:
            return np.zeros((len(q), max(k, 0)), np.float32), np.zeros((len(q), max(k, 0)), np.int64)
        rerank = int((self.manifest.get(ONDISK_KEY) or {}).get("rerank") or 0)
        if rerank > k and self._embeddings is not None:
            return rerank_exact(self.index, self._embeddings, q, k, min(rerank, len(self)))
        sims, ids = self.index.search(q, k)
        return sims, ids.astype(np.int64)

    def labels(self, i: int) -> dict[str, str]:
        row = self.label_rows([int(i)])[0]
        return dict(zip(self.schema.names, row, strict=True))

    def label_codes(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per attribute (schema order) a small integer code per row and the values they index.

        A code is the value's index in the schema, then UNKNOWN, then any other label the table
        holds (sorted). Built once from the frame table: (N,) int8 per attribute instead of N
        Python strings, so a vote looks up only its neighbours' rows.
        """
        if self._codes is None:
            codes, vocabs = [], []
            for a in self.schema.attributes:
                col = self._frames.column(a.name) if self._meta is None else self.meta[a.name]
                found, uniques = pd.factorize(col.astype(str), use_na_sentinel=False)
                known = [*a.value_names, UNKNOWN]
                vocab = known + sorted(set(map(str, uniques)) - set(known))
                where = {v: j for j, v in enumerate(vocab)}
                remap = np.array([where[str(u)] for u in uniques], dtype=np.int64)
                small = np.int8 if len(vocab) < 128 else np.int32
                codes.append(remap[found].astype(small) if len(found) else np.zeros(0, small))
                vocabs.append(np.array(vocab, dtype=object))
            self._codes = (codes, vocabs)
        return self._codes

    def label_rows(self, ids: Sequence[int] | np.ndarray, schema: Schema | None = None) -> np.ndarray:
        """(len(ids), attributes) label strings of rows ``ids`` only: O(len(ids)) once codes exist."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if schema is not None and schema is not self.schema:  # another schema's columns, as stored
            if self._meta is None:
                return self._frames.take(ids, schema.names).astype(str).to_numpy(dtype=object)
            return self.meta[schema.names].iloc[ids].astype(str).to_numpy(dtype=object)
        codes, vocabs = self.label_codes()
        out = np.empty((len(ids), len(codes)), dtype=object)
        for j, (c, vocab) in enumerate(zip(codes, vocabs, strict=True)):
            out[:, j] = vocab[c[ids]]
        return out

    def paths_of(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Frame paths of rows ``ids`` only (never a pass over every row)."""
        if self._meta is None:  # on disk: read only the row groups holding ``ids``
            return [str(p) for p in self._frames.values(ids, "path")]
        if self._path_column is None:  # the column's own array (no copy): pandas' lookup costs ~1 ms a vote
            self._path_column = self.meta["path"].array
        col = self._path_column
        return [str(col[int(i)]) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]

    def label_table(self) -> np.ndarray:
        """(N, attributes) array of label strings in schema order (cached; O(N) memory: votes use
        :meth:`label_rows`)."""
        if self._label_table is None:
            self._label_table = self.label_rows(np.arange(len(self)))
        return self._label_table

    def paths(self) -> np.ndarray:
        """(N,) array of frame paths relative to the dataset root (cached; votes use :meth:`paths_of`)."""
        if self._paths is None:
            self._paths = self.meta["path"].astype(str).to_numpy()
        return self._paths

    def abspath(self, i: int) -> Path:
        return resolve_inside(self.data_root, self.paths_of([int(i)])[0])

    def __repr__(self) -> str:
        m = self.manifest
        return f"IndexStore({self.path}, {len(self)} x {m['dim']}, {m['factory']}, model={m['model']})"


def rerank_exact(index: faiss.Index, vectors: np.ndarray, q: np.ndarray, k: int,
                 fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by exact inner product among the index's top-``fetch`` candidates.

    Compressed codes (PQ) rank the neighbourhood coarsely; re-scoring a few hundred candidates on
    the stored (memory-mapped: only these rows are read) vectors restores the exact order.
    """
    _, cand = index.search(q, fetch)
    cand = cand.astype(np.int64)
    sims = np.einsum("nkd,nd->nk", np.asarray(vectors[np.maximum(cand, 0)], np.float32), q)
    sims = np.where(cand >= 0, sims, -np.inf).astype(np.float32)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(cand, order, axis=1)
    return np.where(ids >= 0, np.take_along_axis(sims, order, axis=1), -np.inf).astype(np.float32), ids


def check_model(path: Path, manifest: dict[str, Any], model: SceneModel) -> None:
    """Refuse a model that did not build the index at ``path`` (the workbench opens the index
    first and checks the model when it has loaded, in the background)."""
    if model.identity != manifest["model"]:
        raise IndexMismatchError(
            f"index {path} was built with model {manifest['model']}; loaded model is "
            f"{model.identity}; rebuild with that model (build_index(..., model=...)) or load "
            f"the index with model {manifest.get('model_name', manifest['model'])}"
        )


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexStoreError(f"{path / MANIFEST_FILE}: unreadable ({e}); rebuild the index") from None
    if not isinstance(manifest, dict) or any(k not in manifest for k in MANIFEST_KEYS):
        raise IndexStoreError(f"{path / MANIFEST_FILE}: missing keys (need {list(MANIFEST_KEYS)})")
    return manifest
