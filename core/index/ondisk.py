"""Indexes larger than RAM: an IVF index built from shards into on-disk inverted lists.

The recipe is FAISS's own (``faiss.contrib.ondisk``, as autofaiss does it):

1. train the index on a random sample of the vectors (k-means needs ~50-250 points per list, not
   all of them; polysemous training is switched off, search never uses it);
2. add each shard to a copy of the trained, empty index and write it out;
3. merge the shards' lists into one ``OnDiskInvertedLists`` file (``merge_ondisk``);
4. open it memory-mapped (:func:`core.index.store.read_index_mapped`).

The stored vectors go to ``embeddings.npy`` shard by shard (memory-mapped when read), and the
frame table to ``meta.parquet`` one row group per shard, so no step holds every vector in RAM.
The folder is an ordinary index folder plus the lists file, named in the manifest's ``ondisk``
record with how many candidates ``IndexStore.search`` re-ranks exactly on the stored vectors.
It is written in ``<out>.building`` under the build lock and swapped in atomically.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from faiss.contrib.ondisk import merge_ondisk

from core.atomic import atomic_path, atomic_write_text, crash_point
from core.familiarity import calibrate
from core.index.build import build_lock
from core.index.errors import IndexStoreError
from core.index.factory import (
    LARGE_IVF,
    check_trainable,
    normalize,
    parse_factory,
    train_rows,
    training_size,
    tune,
    without_polysemous,
)
from core.index.factory import ivf_or_none as _ivf_or_none  # the Ray engine's name for it
from core.index.folder import (
    EMBEDDINGS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    META_FILE,
    building_path,
    is_index_folder,
    recover,
    swap_into_place,
)
from core.index.frames import ROW_GROUP_ROWS
from core.index.store import ONDISK_KEY, IndexStore, make_manifest, meta_table, read_index_mapped
from core.schema import Schema, default_schema

LISTS_FILE = "lists.ivfdata"
SHARDS_DIR = "shards"
EXACT_BELOW = 100_000  # below this many vectors an exact (Flat) scan is fast enough: no ANN recall loss
DEFAULT_RERANK = 200  # IVF-PQ candidates re-scored exactly (the issue: recall@5 0.19 -> 0.955 at 1M)


def default_rerank(count: int) -> int:
    """Candidates re-ranked exactly, by size. PQ32's ranking leaves more true neighbours behind as N
    grows: at re-rank 200, recall@5 1.000 at 100k, 0.991 at 300k, 0.884 at 1M, 0.520 at 10M; at 10M,
    1000 gives 0.848 and 2000 (nprobe 32, see ``factory.tune``) 0.938 (bench/RESULTS.md 12). 1000
    between 1M and 3M lies between the measured points."""
    return DEFAULT_RERANK if count < 1_000_000 else 1000 if count < LARGE_IVF else 2000

# A shard: its vectors (an array or a .npy file, read memory-mapped) and its frame table (a
# DataFrame, rows like meta_table's, or a .parquet file).
Shard = tuple[np.ndarray | str | Path, pd.DataFrame | str | Path]


def choose_factory(count: int, dim: int, on_disk: bool = False) -> str:
    """A sensible factory string by size: exact below ``EXACT_BELOW``, else IVF with ~4*sqrt(N) lists.

    In RAM the lists hold full vectors (``IVF,Flat``); on disk they hold 8-dimension PQ codes
    (``np``: no polysemous training) and the top candidates are re-ranked on the stored vectors.
    """
    if count < EXACT_BELOW:
        return "Flat"
    nlist = 1 << max(6, int(np.round(np.log2(4 * np.sqrt(count)))))
    if not on_disk:
        return f"IVF{nlist},Flat"
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return f"IVF{nlist},PQ{m}np"


def build_ondisk(
    shards: Sequence[Shard],
    out: str | Path,
    *,
    model: str,
    factory: str | None = None,
    dataset: str | Path = ".",
    split: str | None = None,
    schema: Schema | None = None,
    rerank: int | None = None,
    seed: int = 0,
    familiarity: bool = True,
    model_name: str | None = None,
) -> IndexStore:
    """Build an on-disk IVF index folder at ``out`` from ``shards`` and open it memory-mapped.

    ``factory`` must be an IVF factory (default: :func:`choose_factory` for the size, on disk);
    ``model`` is the embedding model's identity (the store refuses other models' queries);
    ``rerank`` defaults to :func:`default_rerank` for the size.
    """
    schema = schema or default_schema()
    out = Path(out)
    if not shards:
        raise IndexStoreError(f"{out}: no shards to build an index from")
    vecs = [_vectors(s[0]) for s in shards]
    dims = {v.shape[1] if v.ndim == 2 else -1 for v in vecs}
    if len(dims) != 1 or -1 in dims:
        raise IndexStoreError(f"{out}: shards disagree on vector shape ({sorted(dims)}); re-embed them")
    dim, count = dims.pop(), sum(len(v) for v in vecs)
    factory = factory or choose_factory(count, dim, on_disk=True)
    rerank = default_rerank(count) if rerank is None else rerank
    trained = without_polysemous(parse_factory(factory, dim))
    if _ivf_or_none(trained) is None:
        raise IndexStoreError(f"factory {factory!r} has no inverted lists to put on disk; use an IVF one "
                              f"(e.g. {choose_factory(max(count, EXACT_BELOW), dim, on_disk=True)!r})")
    check_trainable(trained, factory, count)

    with build_lock(out):
        recover(out)
        if out.exists() and not is_index_folder(out) and any(out.iterdir()):
            raise IndexStoreError(f"{out} exists and is not an index folder; refusing to replace it")
        building = building_path(out)
        if building.exists():
            shutil.rmtree(building)
        (building / SHARDS_DIR).mkdir(parents=True)

        sample = _sample(vecs, training_size(trained, count), seed)
        try:
            trained.train(sample)
        except RuntimeError as e:
            raise IndexStoreError(f"cannot train {factory!r}: {str(e).strip().splitlines()[-1][-200:]}") from None
        del sample

        shard_files = _add_shards(trained, vecs, building / SHARDS_DIR)
        _write_vectors_and_table(shards, vecs, building, schema, count, dim)
        crash_point("ondisk.merge")
        merge_ondisk(trained, [str(f) for f in shard_files], str(building / LISTS_FILE))
        with atomic_path(building / INDEX_FILE) as tmp:
            faiss.write_index(trained, str(tmp))
        del trained
        shutil.rmtree(building / SHARDS_DIR)

        manifest = make_manifest(model=model, model_name=model_name, dim=dim, count=count, dataset=dataset,
                                 split=split, factory=factory, schema=schema,
                                 **{ONDISK_KEY: {"lists": LISTS_FILE, "rerank": int(rerank)}})
        store = _open(building, manifest, schema)
        if familiarity:
            manifest["familiarity"] = calibrate(store)
        atomic_write_text(building / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")  # last: complete
        del store
        swap_into_place(building, out)
    return IndexStore.load(out, schema=schema)


# ---- helpers ------------------------------------------------------------------------------
def _vectors(source: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    try:
        return np.load(source, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise IndexStoreError(f"{source}: cannot read shard vectors ({e}); re-embed that shard") from None


def _sample(vecs: list[np.ndarray], size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn uniformly from all shards (sorted reads: one pass over each file)."""
    rows = train_rows(sum(len(v) for v in vecs), size, seed)
    starts = np.cumsum([0] + [len(v) for v in vecs])
    parts = [np.asarray(v[rows[(rows >= s) & (rows < s + len(v))] - s], np.float32)
             for v, s in zip(vecs, starts, strict=False)]
    return normalize(np.concatenate(parts))


def _add_shards(trained: faiss.Index, vecs: list[np.ndarray], folder: Path) -> list[Path]:
    """Each shard added to a copy of the trained index with global ids, written to ``folder``."""
    files, start = [], 0
    for i, v in enumerate(vecs):
        part = faiss.clone_index(trained)
        for s in range(0, len(v), 1 << 16):  # bounded RAM per step, whatever the shard's size
            x = normalize(np.asarray(v[s:s + (1 << 16)], np.float32))
            part.add_with_ids(x, np.arange(start + s, start + s + len(x), dtype=np.int64))
        start += len(v)
        files.append(folder / f"shard_{i:05d}.faiss")
        with atomic_path(files[-1]) as tmp:
            faiss.write_index(part, str(tmp))
        del part
    return files


def _write_vectors_and_table(shards: Sequence[Shard], vecs: list[np.ndarray], folder: Path, schema: Schema,
                             count: int, dim: int) -> None:
    """embeddings.npy (unit rows) and meta.parquet (a row group per shard), streamed shard by shard."""
    with atomic_path(folder / EMBEDDINGS_FILE) as tmp:
        emb = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, dim))
        start = 0
        for v in vecs:
            for s in range(0, len(v), 1 << 16):
                x = normalize(np.asarray(v[s:s + (1 << 16)], np.float32))
                emb[start + s:start + s + len(x)] = x
            start += len(v)
        emb.flush()
        del emb
    with atomic_path(folder / META_FILE) as tmp:
        writer = None
        try:
            for (_, table), v in zip(shards, vecs, strict=True):
                df = meta_table(table if isinstance(table, pd.DataFrame) else _read_table(table), schema)
                if len(df) != len(v):
                    raise IndexStoreError(f"shard {table if not isinstance(table, pd.DataFrame) else ''}: "
                                          f"{len(v)} vectors but {len(df)} frame rows")
                batch = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema)
                writer.write_table(batch.cast(writer.schema), row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()


def _read_table(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a torn file
        raise IndexStoreError(f"{path}: cannot read shard frame table ({e}); re-write that shard") from None


def _open(folder: Path, manifest: dict[str, Any], schema: Schema) -> IndexStore:
    """The store of a folder still being built (for its familiarity calibration)."""
    index = tune(read_index_mapped(folder / INDEX_FILE, ondisk=True))
    emb = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r")
    return IndexStore(index, pd.read_parquet(folder / META_FILE), manifest, embeddings=emb, path=folder,
                      schema=schema)


__all__ = ["DEFAULT_RERANK", "default_rerank", "EXACT_BELOW", "LISTS_FILE", "build_ondisk", "choose_factory", "training_size",
           "without_polysemous"]
