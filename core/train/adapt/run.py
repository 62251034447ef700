"""``adapt``: the whole run, from a model name and folders to a new ``file:`` model."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.atomic import atomic_write_text
from core.data import Dataset, read_manifest
from core.train.adapt.augment import SensorAugment, _normalization
from core.train.adapt.data import preprocess_all, read_frame_labels, target_frames
from core.train.adapt.loop import ProgressFn, adapt_model
from core.train.adapt.losses import domain_probe_accuracy, embed, source_task_loss
from core.train.adapt.options import AdaptOptions, comparable
from core.train.adapt.report import AdaptResult, model_card, reference_store, target_report
from core.train.checkpoint import save_model_dir
from core.train.data import epoch_subset_captions, label_codes, load_pixels

if TYPE_CHECKING:
    from core.index import IndexStore


def _check_run(state_dir: Path, run: dict[str, Any]) -> None:
    """Record what a run adapts with; refuse to resume a state made with anything else (its
    weights and its 'before' measurement belong to those inputs)."""
    file = state_dir / "run.json"
    if file.is_file():
        if json.loads(file.read_text()) != json.loads(json.dumps(run)):
            raise ValueError(f"{state_dir} holds an adaptation run with other inputs or options; rerun with "
                             "the same ones to resume, or give a fresh --state / --out")
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(run, indent=2))


def _weights_digest(clip: torch.nn.Module) -> str:
    """The registry's digest of the weights file ``save_model_dir`` writes for ``clip`` (sha256 of
    the same safetensors bytes), so the card can name the identity the model will load with."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in clip.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()[:16]


def adapt(
    data_dir: str | Path,
    target: Sequence[str | Path],
    base_model: str,
    out_dir: str | Path,
    options: AdaptOptions | None = None,
    index: str | Path | None = None,
    state_dir: str | Path | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    labels: str | Path | None = None,
) -> AdaptResult:
    """Adapt ``base_model`` to the ``target`` footage; write the new ``file:`` model to ``out_dir``.

    ``data_dir``'s train split is the labelled source. The before/after table measures the target
    frames against ``index`` (an index built with ``base_model``) re-embedded by each model, or
    else against ``data_dir``'s frames. ``state_dir`` (default ``<out_dir>.state``) holds the
    per-epoch states; calling again with the same arguments resumes. ``labels`` (a CSV read by
    :func:`~core.train.adapt.data.read_frame_labels`; evaluation only, never trained on) adds the
    target frames' accuracy before and after, where labels exist.
    """
    from core.models import load_model
    from core.train.base_model import check_captions, model_config

    options = options or AdaptOptions()
    options.check()
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir.with_name(out_dir.name + ".state")
    emit = on_progress or (lambda _info: None)
    t_start = time.time()
    emit({"phase": "loading", "epochs": options.epochs})
    dataset = read_manifest(data_dir)
    train = dataset.split("train")
    if len(train) < 2:
        raise ValueError(f"{data_dir}: the train split has {len(train)} frames; adaptation needs at least 2")
    images, names = target_frames(target, options.target_fps, options.max_target_frames)  # bad input fails first
    table = read_frame_labels(labels, dataset.schema) if labels is not None else None
    truth = None if table is None else [table.get(name, {}) for name in names]
    threads = torch.get_num_threads()
    model = load_model(base_model, device=options.device)
    torch.set_num_threads(threads)  # load_model takes every core; keep the caller's choice
    clip = model.clip.float()
    model_cfg, preprocess_cfg = model_config(base_model, clip)
    check_captions(epoch_subset_captions(train, dataset.schema, options.seed, 0)[0],
                   int(getattr(clip, "context_length", 77)))
    pixels = load_pixels(train, model.preprocess, workers=options.workers, progress=False)
    target_px = preprocess_all(images, model.preprocess)
    del images

    # The reference frames: the given index's (re-embedded by each model), else the labelled data.
    if index is not None:
        from core.index import IndexStore

        ref_store = IndexStore.load(index, model=model)
        ref = Dataset(ref_store.data_root, ref_store.meta.copy(), dataset.schema)
        ref_px = load_pixels(ref, model.preprocess, workers=options.workers, progress=False)
        reference = f"`{index}` ({len(ref)} frames, re-embedded by the adapted model for 'after')"
    else:
        ref, ref_px, ref_store = dataset, None, None
        reference = f"every frame of `{data_dir}` ({len(dataset)} frames), embedded by each model"
    if ref_px is None:
        ref_px = load_pixels(ref, model.preprocess, workers=options.workers, progress=False)

    def measure(identity: str, store: IndexStore | None) -> dict[str, Any]:
        emit({"phase": "measuring", "epochs": options.epochs})
        tgt = embed(clip, target_px, device=options.device)
        store = store or reference_store(ref, embed(clip, ref_px, device=options.device), identity)
        src = embed(clip, pixels, device=options.device)
        captions, mentions = epoch_subset_captions(train, dataset.schema, options.seed, 0)
        return {**target_report(store, tgt, truth=truth), "domain_probe": domain_probe_accuracy(src, tgt, options.seed),
                "source_loss": source_task_loss(clip, pixels, captions, mentions, label_codes(train, dataset.schema),
                                                model.tokenizer, device=options.device)}

    _check_run(state_dir, {"options": comparable(options), "base_identity": model.identity,
                           "data_dir": str(Path(data_dir).resolve()), "index": str(index) if index else None,
                           "target": [str(Path(t).resolve()) for t in target], "target_frames": len(target_px),
                           **({"labels": str(Path(labels).resolve())} if labels is not None else {})})
    before_file = state_dir / "before.json"  # measured once: a resume must not re-measure an adapted model
    if before_file.is_file():
        before = json.loads(before_file.read_text())
    else:
        before = measure(model.identity, ref_store)
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(before_file, json.dumps(before))

    augment = SensorAugment(*_normalization(model.preprocess), randomize=options.randomize) if options.augment else None
    for p in clip.parameters():
        p.requires_grad_(True)
    log = adapt_model(clip, model.tokenizer, train, pixels, target_px, options, augment=augment,
                      state_dir=state_dir, on_progress=emit, should_stop=should_stop)
    result = AdaptResult(None, None, log=log, before=before)
    if should_stop is not None and should_stop() and len(log) < options.epochs:
        result.stopped = True
        return result
    clip.eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    result.after = measure("adapted", None)

    emit({"phase": "saving", "epochs": options.epochs})
    result.model_dir = out_dir.resolve()
    result.model_name = f"file:{result.model_dir}"
    summary = {
        **result.to_dict(), "base_model": base_model, "base_identity": model.identity,
        "data_dir": str(Path(data_dir).resolve()), "target": [str(Path(t).resolve()) for t in target],
        "target_frames": len(target_px), "source_frames": len(train), "reference": reference,
        "options": asdict(options), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.time() - t_start,
    }
    # The identity is the registry's (name + weights digest), known once the weights are written;
    # the card is written with the folder, so it names the digest computed the registry's way.
    summary["identity"] = "file:" + out_dir.name + "@" + _weights_digest(clip)
    save_model_dir(clip, model_cfg, out_dir, preprocess_cfg=preprocess_cfg, card=model_card(summary),
                   files={"adapt.json": json.dumps(summary, indent=2, default=str)})
    result.identity = load_model(result.model_name).identity
    emit({"phase": "done", "epochs": options.epochs})
    return result
