"""The Ray engine of ``scenescope index --engine ray``: embedding spread over a Ray cluster.

Ray Data streams the manifest's frames through a pool of actors (``map_batches`` with a callable
class and ``ActorPoolStrategy``): each actor loads the model once, then decodes, preprocesses and
embeds its batches exactly as the default engine does (``core.index.build``: same decode, same
``fast_preprocess``, same ``encode``), so both engines give the same vectors.

The driver gathers the embeddings by shard (``shard_rows`` consecutive frames) and writes each
finished shard as one Parquet file, the shard's frame table plus an ``embedding`` column, into
``<out>.shards/`` (atomically: a shard file is whole or absent). A re-run with ``resume`` embeds
only the shards that are missing, whichever worker died. Then the existing builders make the
index from the shards: an IVF factory goes to disk (``core.index.ondisk.build_ondisk``: trained on a
sample, lists merged on disk, opened memory-mapped), anything else is built in RAM like
``build_index``. Ray is an optional extra (``pip install 'scenescope[ray]'``).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from core.atomic import atomic_path, crash_point
from core.data.manifest import Dataset, check_frame_numbers
from core.familiarity import calibrate
from core.index.build import _fingerprint, _open_state, build_lock, encode, read_image
from core.index.errors import IndexStoreError
from core.index.factory import DEFAULT_FACTORY, check_trainable, make_index, parse_factory
from core.index.folder import building_path, is_index_folder, recover, swap_into_place
from core.index.preprocess import fast_preprocess, stack
from core.index.store import IndexStore, make_manifest, meta_table

if TYPE_CHECKING:
    from core.types import SceneModel

INSTALL_HINT = "the Ray engine needs Ray: pip install 'scenescope[ray]' (or pip install -r requirements-ray.txt)"
DEFAULT_SHARD_ROWS = 4096
EMBEDDING_COLUMN = "embedding"
ROW_COLUMN = "row"


def import_ray() -> Any:
    """The ``ray`` module, or one clear line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] extra)
    except ImportError:
        raise IndexStoreError(INSTALL_HINT) from None
    return ray


def shards_path(out: str | Path) -> Path:
    """Where the Ray engine keeps finished shards: beside ``out`` (the builders own ``<out>.building``)."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def discard_shards(out: str | Path) -> bool:
    """Remove the Ray engine's unfinished shards of ``out``; True if there were some."""
    folder = shards_path(out)
    if not folder.exists():
        return False
    with build_lock(out):  # never pull shards from under a running build
        shutil.rmtree(folder, ignore_errors=True)
    return True


def shard_file(folder: Path, i: int) -> Path:
    return folder / f"shard_{i:05d}.parquet"


class EmbedFrames:
    """Ray Data callable class: one model per actor, loaded in ``__init__``, reused for every batch."""

    def __init__(self, model_name: str, bf16: bool = False, threads: int = 1) -> None:
        import torch

        from core.models import load_model

        torch.set_num_threads(max(1, int(threads)))  # the actor's CPU share, not the node's cores
        self.model = load_model(model_name)
        self.preprocess = fast_preprocess(self.model)
        self.bf16 = bf16
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scenescope-decode")

    def _pixels(self, file: str, label: str) -> Any:
        return self.preprocess(read_image(Path(file), label))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files, labels = batch["file"].tolist(), batch["label"].tolist()
        pixels = stack(list(self.pool.map(self._pixels, files, labels)))  # decode overlaps across threads
        return {ROW_COLUMN: np.asarray(batch[ROW_COLUMN], np.int64), EMBEDDING_COLUMN: encode(self.model, pixels,
                                                                                             self.bf16)}


def build_index_ray(
    dataset: Dataset,
    model: SceneModel,
    model_name: str,
    out: str | Path,
    split: str | None = "train",
    factory: str = DEFAULT_FACTORY,
    batch_size: int = 64,
    workers: int = 2,
    address: str | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    resume: bool = False,
    bf16: bool = False,
    progress: bool = True,
) -> IndexStore:
    """Embed ``dataset``'s ``split`` on Ray with ``workers`` actors loading ``model_name``; index it at ``out``.

    ``model`` is the same model in this process (its identity and dimension go in the manifest);
    ``address``: ``None`` starts a local Ray, ``auto`` or ``ray://HOST:PORT`` joins a cluster (an
    already initialised Ray is used as it is). The dataset's files must be readable by every node.
    """
    ray = import_ray()
    out = Path(out)
    ds = dataset.split(split)
    n = len(ds)
    if n == 0:
        raise IndexStoreError(f"{dataset.root}: split {split!r} has no frames to index")
    if batch_size < 1 or shard_rows < 1 or workers < 1:
        raise IndexStoreError(f"batch_size, shard_rows and workers must be >= 1 "
                              f"(got {batch_size}, {shard_rows}, {workers})")
    check_frame_numbers(ds.frames, f"{dataset.root} frame table")
    check_trainable(parse_factory(factory, model.embed_dim), factory, n)
    table = meta_table(ds.frames, dataset.schema)
    folder = shards_path(out)
    with build_lock(out):
        recover(out)
        if out.exists() and not is_index_folder(out) and any(out.iterdir()):
            raise IndexStoreError(f"{out} exists and is not an index folder; refusing to replace it")
        if folder.exists() and not resume:
            shutil.rmtree(folder)
        rows = _open_state(folder, _fingerprint(ds, model, bf16), shard_rows, n)
        bounds = [(s, min(s + rows, n)) for s in range(0, n, rows)]
        todo = [i for i, (s, e) in enumerate(bounds) if not _shard_ok(shard_file(folder, i), e - s, model.embed_dim)]
        if todo:
            with _ray_session(ray, address, workers):
                _embed_shards(ray, ds, table, model_name, folder, bounds, todo, batch_size, workers, bf16, progress)
    manifest_extra = {"precision": "bf16" if bf16 else "fp32", "engine": "ray"}
    store = _finish(folder, len(bounds), out, model, factory, dataset, split, manifest_extra)
    shutil.rmtree(folder, ignore_errors=True)  # the index holds everything now
    return store


@contextmanager
def _ray_session(ray: Any, address: str | None, workers: int) -> Iterator[None]:
    """Join ``address`` or start a local Ray for the build; leave a Ray someone else started running."""
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        kwargs["num_cpus"] = workers  # a local cluster the size of the actor pool
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError...
        raise IndexStoreError(f"cannot start or join Ray at {address or 'a local cluster'}: "
                              f"{str(e).strip().splitlines()[-1][:200]}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _embed_shards(
    ray: Any, ds: Dataset, table: pd.DataFrame, model_name: str, folder: Path, bounds: list[tuple[int, int]],
    todo: list[int], batch_size: int, workers: int, bf16: bool, progress: bool,
) -> None:
    """Run the actor pool over the frames of shards ``todo``; write each shard as soon as it is whole."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # one tqdm bar below, not Ray's per-operator bars
    # Blocks of a few batches, in shard order: one block per shard would leave actors idle when
    # there are fewer shards than actors (a 64-frame quick run used 1 actor of 2, 0.18x).
    step = 4 * batch_size
    spans = [(s, min(s + step, e)) for s0, e in (bounds[i] for i in todo) for s in range(s0, e, step)]
    frames = [pd.DataFrame({
        ROW_COLUMN: np.arange(s, e, dtype=np.int64),
        "file": [str(ds.abspath(r)) for r in ds.frames["path"].iloc[s:e].astype(str)],
        "label": ds.frames["path"].iloc[s:e].astype(str).to_numpy(),
    }) for s, e in spans]
    data = ray.data.from_pandas(frames).map_batches(
        EmbedFrames, fn_constructor_kwargs={"model_name": model_name, "bf16": bf16, "threads": 1},
        compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size, batch_format="numpy", num_cpus=1,
    )
    start = {i: bounds[i][0] for i in todo}
    parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    got: dict[int, int] = {}
    shard_rows = bounds[0][1] - bounds[0][0]
    with tqdm(total=sum(bounds[i][1] - bounds[i][0] for i in todo), unit="img", desc="embedding (ray)",
              disable=not progress) as bar:
        batches = iter(data.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for batch in batches:
                ids = batch[ROW_COLUMN]
                for i in np.unique(ids // shard_rows).tolist():
                    sel = (ids // shard_rows) == i
                    parts.setdefault(i, []).append((ids[sel], batch[EMBEDDING_COLUMN][sel]))
                    got[i] = got.get(i, 0) + int(sel.sum())
                    s, e = bounds[i]
                    if got[i] == e - s:
                        _write_shard(folder, i, table.iloc[s:e], parts.pop(i), start[i])
                bar.update(len(ids))
        finally:  # a failure here stops the actor pool at once, not when garbage-collected
            with contextlib.suppress(Exception):
                batches.close()  # type: ignore[attr-defined]
    if parts:  # every row is returned once: a shortfall is a bug, not a state to index
        raise IndexStoreError(f"Ray returned incomplete shards {sorted(parts)}; re-run with --resume")


def _write_shard(folder: Path, i: int, frames: pd.DataFrame, parts: list[tuple[np.ndarray, np.ndarray]],
                 start: int) -> None:
    ids = np.concatenate([p[0] for p in parts])
    vecs = np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)
    ordered = np.empty_like(vecs)
    ordered[ids - start] = vecs  # batches may arrive in any order
    t = pa.Table.from_pandas(frames.reset_index(drop=True), preserve_index=False)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(ordered.reshape(-1)), ordered.shape[1])
    t = t.append_column(EMBEDDING_COLUMN, emb)
    with atomic_path(shard_file(folder, i)) as tmp:
        pq.write_table(t, tmp)
    crash_point("ray.shard_written")


def _shard_ok(path: Path, rows: int, dim: int) -> bool:
    """A finished shard of the expected shape (a torn or stale file is embedded again)."""
    if not path.is_file():
        return False
    try:
        meta = pq.ParquetFile(path).metadata
        field = pq.ParquetFile(path).schema_arrow.field(EMBEDDING_COLUMN)
    except Exception:  # noqa: BLE001 - pyarrow raises several unrelated types for a torn file
        return False
    return meta.num_rows == rows and getattr(field.type, "list_size", -1) == dim


def read_shard(path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(vectors (n, d) float32, frame table) of one shard file."""
    try:
        t = pq.read_table(path)
    except Exception as e:  # noqa: BLE001
        raise IndexStoreError(f"{path}: cannot read shard ({e}); re-run the build with --resume") from None
    col = t.column(EMBEDDING_COLUMN).combine_chunks()
    vecs = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(t), -1)
    return vecs, t.drop_columns([EMBEDDING_COLUMN]).to_pandas()


def _finish(folder: Path, count: int, out: Path, model: SceneModel, factory: str, dataset: Dataset,
            split: str | None, extra: dict[str, Any]) -> IndexStore:
    """Index the shards: IVF factories on disk from the shards, others in RAM as ``build_index`` does."""
    from core.index.ondisk import _ivf_or_none, build_ondisk

    files = [shard_file(folder, i) for i in range(count)]
    if _ivf_or_none(parse_factory(factory, model.embed_dim)) is not None:
        shards = []
        for f in files:  # one shard in RAM at a time: its vectors go to a .npy read memory-mapped
            vecs, frames = read_shard(f)
            np.save(f.with_suffix(".npy"), vecs)
            shards.append((f.with_suffix(".npy"), frames))
        store = build_ondisk(shards, out, model=model.identity, model_name=getattr(model, "name", None),
                             factory=factory, dataset=dataset.root, split=split, schema=dataset.schema)
        return store
    read = [read_shard(f) for f in files]
    emb = np.concatenate([v for v, _ in read])
    meta = meta_table(pd.concat([t for _, t in read], ignore_index=True), dataset.schema)
    manifest = make_manifest(model=model.identity, model_name=getattr(model, "name", None), dim=emb.shape[1],
                             count=len(emb), dataset=dataset.root, split=split, factory=factory,
                             schema=dataset.schema, **extra)
    with build_lock(out):
        building = building_path(out)
        if building.exists():
            shutil.rmtree(building)
        building.mkdir(parents=True)
        store = IndexStore(make_index(factory, emb), meta, manifest, embeddings=emb, schema=dataset.schema)
        store.manifest["familiarity"] = calibrate(store)
        store.write_files(building)
        swap_into_place(building, out)
    store.path = out
    return store


__all__ = ["DEFAULT_SHARD_ROWS", "INSTALL_HINT", "EmbedFrames", "build_index_ray", "discard_shards", "import_ray", "read_shard",
           "shards_path"]
