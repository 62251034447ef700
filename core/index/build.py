"""build_index: embed a dataset split into an index folder, resumably and atomically.

Images are read, decoded and preprocessed by a thread pool a few batches ahead of the model (PIL
and torch release the GIL for the heavy parts). Each embedded batch is saved as
``<out>.building/chunks/chunk_NNNNN.npy`` as soon as it is done, so ``resume=True`` only embeds the
missing chunks; the finished folder replaces ``out`` by renames (see ``folder.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from core.atomic import atomic_path, atomic_write_text, crash_point
from core.data.manifest import Dataset, check_frame_numbers
from core.familiarity import calibrate
from core.images import ImageError, open_image
from core.index.clips import build_clips, write_clips
from core.index.errors import IndexBusyError, IndexStoreError
from core.index.factory import DEFAULT_FACTORY, check_trainable, make_index, normalize, parse_factory
from core.index.folder import CHUNKS_DIR, building_path, is_index_folder, lock_path, recover, swap_into_place
from core.index.preprocess import Preprocess, fast_preprocess, stack
from core.index.store import IndexStore, make_manifest, meta_table
from core.locks import exclusive_lock

if TYPE_CHECKING:
    from core.types import SceneModel

STATE_FILE = "build.json"


def build_index(
    dataset: Dataset,
    model: SceneModel,
    out: str | Path,
    split: str | None = "train",
    factory: str = DEFAULT_FACTORY,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
    resume: bool = False,
    bf16: bool = False,
) -> IndexStore:
    """Embed ``dataset``'s ``split`` with ``model`` and write a ``factory`` index to ``out``.

    ``workers`` threads load images ahead of the model (0: load inline). ``resume`` continues a
    build of the same inputs that was interrupted; otherwise a leftover partial build is discarded.
    ``bf16`` runs the image tower under CPU bfloat16 autocast (faster on CPUs with AVX512-BF16).
    """
    out = Path(out)
    ds = dataset.split(split)
    n = len(ds)
    if n == 0:
        raise IndexStoreError(f"{dataset.root}: split {split!r} has no frames to index")
    if batch_size < 1:
        raise IndexStoreError(f"batch_size must be >= 1, got {batch_size}")
    # A Dataset made in code skips read_manifest's checks; a frame_index beyond int64 would only
    # fail (or wrap) when the finished table is written, after all the embedding.
    check_frame_numbers(ds.frames, f"{dataset.root} frame table")
    # Fail on a bad factory or too little data before spending time embedding.
    check_trainable(parse_factory(factory, model.embed_dim), factory, n)
    # Held from the first look at ``out`` to the swap: a second build would otherwise delete or
    # mix up this one's chunks, and two swaps could interleave their renames.
    with build_lock(out):
        recover(out)
        if out.exists() and not is_index_folder(out) and any(out.iterdir()):
            raise IndexStoreError(f"{out} exists and is not an index folder; refusing to replace it")

        building = building_path(out)
        if building.exists() and not resume:
            shutil.rmtree(building)
        chunks = building / CHUNKS_DIR
        chunk_rows = _open_state(chunks, _fingerprint(ds, model, bf16), batch_size, n)
        emb = _embed_chunks(ds, model, chunks, chunk_rows, workers, progress, bf16, split)

        manifest = make_manifest(
            model=model.identity, model_name=getattr(model, "name", None), dim=emb.shape[1], count=n,
            dataset=dataset.root, split=split, factory=factory, schema=dataset.schema,
            precision="bf16" if bf16 else "fp32",
        )
        store = IndexStore(make_index(factory, emb), meta_table(ds.frames, dataset.schema), manifest,
                           embeddings=emb, schema=dataset.schema)
        store.manifest["familiarity"] = calibrate(store)  # where its own frames' look-alikes lie
        store.write_files(building)
        write_clips(building, build_clips(store))  # clip vectors beside the frames (core.index.clips)
        swap_into_place(building, out)
        # The chunks stayed in the building folder up to the swap so that a crash before it could
        # still resume; in the finished index they are clutter.
        crash_point("build.remove_chunks")
        shutil.rmtree(out / CHUNKS_DIR, ignore_errors=True)
        store.path = out
        return store


def discard_build(out: str | Path) -> bool:
    """Remove the half-finished build of ``out``; True if there was one."""
    building = building_path(out)
    if not building.exists():  # nothing to do: no lock file either
        return False
    with build_lock(out):  # never pull the chunks from under a running build
        if building.exists():
            shutil.rmtree(building)
            return True
    return False


def build_lock(out: str | Path) -> contextlib.AbstractContextManager[int]:
    """Hold ``out``'s build lock (non-blocking); :class:`IndexBusyError` names the holder's pid."""
    out = Path(out)

    def busy(holder: list[str]) -> IndexBusyError:
        by = f" (lock held by pid {holder[0]})" if holder else ""
        return IndexBusyError(f"{out}: another build is writing this index{by}; wait for it or stop it")

    return exclusive_lock(lock_path(out), busy, holder=str(os.getpid()))


# ---- resumable state ----------------------------------------------------------------------
def _fingerprint(ds: Dataset, model: SceneModel, bf16: bool) -> str:
    """What the chunks depend on: model, precision, dataset root and the exact frame list."""
    h = hashlib.sha256()
    for part in (model.identity, str(bf16), str(Path(ds.root).resolve()), *ds.frames["path"].astype(str)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _open_state(chunks: Path, fingerprint: str, batch_size: int, n: int) -> int:
    """Create or check the build state; returns the rows per chunk to use."""
    state_file = chunks / STATE_FILE
    if state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            state = None
        if state and state.get("fingerprint") == fingerprint and state.get("count") == n:
            return int(state["chunk_rows"])  # the earlier run's chunking, whatever batch_size is now
        if state:
            raise IndexStoreError(
                f"the unfinished build in {chunks.parent} was started with a different model, "
                "precision or frame list; pass resume=False to start over, or discard_build(out)"
            )
    chunks.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "count": n, "chunk_rows": int(batch_size)}
    atomic_write_text(state_file, json.dumps(state))
    return int(batch_size)


def _chunk_file(chunks: Path, i: int) -> Path:
    return chunks / f"chunk_{i:05d}.npy"


def _load_chunk(path: Path, rows: int, dim: int | None) -> np.ndarray | None:
    """A finished chunk, or None if it is absent or unusable (then it is embedded again)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path)
    except (OSError, ValueError):
        return None
    if arr.ndim != 2 or len(arr) != rows or (dim is not None and arr.shape[1] != dim):
        return None
    return arr.astype(np.float32, copy=False)


# ---- embedding pipeline -------------------------------------------------------------------
def read_image(path: Path, label: str) -> Image.Image:
    """Open and decode one image as RGB; any failure names the file."""
    try:
        return open_image(path, label)  # size-checked before decoding (decompression bombs)
    except ImageError as e:
        raise IndexStoreError(f"cannot read image {e} ({path})") from None


def load_pixels(ds: Dataset, preprocess: Preprocess, start: int, stop: int) -> torch.Tensor:
    """Preprocessed pixels (B,3,H,W) of frames [start, stop)."""
    rels = ds.frames["path"].iloc[start:stop].astype(str)
    return stack([preprocess(read_image(ds.abspath(r), r)) for r in rels])


def encode(model: SceneModel, pixels: torch.Tensor, bf16: bool = False) -> np.ndarray:
    """Unit-length float32 embeddings of preprocessed pixels, optionally under bf16 autocast."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        vecs = model.embed_batch(pixels)
    return normalize(np.asarray(vecs, dtype=np.float32))


def prefetch(jobs: list[int], load: Callable[[int], Any], workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(job, load(job))`` in order, loading up to ``workers + 1`` jobs ahead in threads."""
    if workers <= 0:
        for j in jobs:
            yield j, load(j)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenescope-load")
    pending: deque[tuple[int, Future]] = deque()
    todo = iter(jobs)
    try:
        for j in todo:
            pending.append((j, pool.submit(load, j)))
            if len(pending) > workers:
                break
        while pending:
            j, fut = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(load, nxt)))
            yield j, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _embed_chunks(
    ds: Dataset, model: SceneModel, chunks: Path, chunk_rows: int, workers: int, progress: bool, bf16: bool,
    split: str | None,
) -> np.ndarray:
    n = len(ds)
    bounds = [(s, min(s + chunk_rows, n)) for s in range(0, n, chunk_rows)]
    # One (n, d) array filled in place: holding the chunks and then concatenating them would keep
    # every vector twice at the peak.
    out = np.empty((n, model.embed_dim), np.float32)
    todo = []
    for i, (s, e) in enumerate(bounds):
        arr = _load_chunk(_chunk_file(chunks, i), e - s, model.embed_dim)
        if arr is None:
            todo.append(i)
        else:
            out[s:e] = arr
    bar = tqdm(total=n, initial=n - sum(bounds[i][1] - bounds[i][0] for i in todo), unit="img",
               desc=f"embedding {split or 'all'}", disable=not progress)
    preprocess = fast_preprocess(model)
    batches = prefetch(todo, lambda i: load_pixels(ds, preprocess, *bounds[i]), workers)
    # closing(): stop the loader threads at once if embedding fails
    with contextlib.closing(batches), bar:
        for i, pixels in batches:
            vecs = encode(model, pixels, bf16)
            with atomic_path(_chunk_file(chunks, i)) as tmp, open(tmp, "wb") as f:
                np.save(f, vecs)
            out[bounds[i][0]:bounds[i][1]] = vecs
            bar.update(len(vecs))
    return out


__all__ = ["build_index", "build_lock", "discard_build", "encode", "load_pixels", "prefetch", "read_image"]
