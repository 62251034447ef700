"""The recipe that makes the bundled model, ``scenescope-tiny``, from nothing but our own code.

Synthesise a dataset, train the registered ``scenescope-tiny`` open_clip config from scratch with
a multi-positive contrastive loss on schema captions that each name a random subset of the
attributes (paraphrased) plus an auxiliary per-attribute loss (``AttributeHeads``), and save it in open_clip's hub layout as
float16 safetensors. Every number that defines the run is recorded in the model card.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import open_clip
import torch
from tqdm import tqdm

from core.data import Dataset, read_manifest
from core.models.registry import BUNDLED, CONFIGS
from core.schema import default_schema
from core.synth import ensure_synth_dataset
from core.synth.dataset import STAMP
from core.train.checkpoint import save_model_dir
from core.train.data import epoch_subset_captions, label_codes, load_pixels
from core.train.distill import DistillConfig, distill_pruned
from core.train.loop import AttributeHeads, StepInfo, TrainConfig, train_contrastive
from core.train.model_defaults import DEFAULTS_FILE
from core.train.recipe import DefaultRecipe
from core.train.regrid import regrid
from core.train.validation import Validator

ARCH = "scenescope-tiny"


def _checked_size(name: str, size: Sequence[int], patch: int) -> tuple[int, int]:
    dims = tuple(int(x) for x in size)
    if len(dims) != 2 or any(x <= 0 or x % patch for x in dims):
        raise ValueError(f"{name} {dims}: give (height, width), each a positive multiple of the {patch}-pixel patch")
    return dims[0], dims[1]


def _stage_key(*parts: object) -> str:
    """Short digest naming a stage's state folder: what defines the stage and the ones before it."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:10]


def train_default(
    recipe: DefaultRecipe | None = None,
    out: str | Path = BUNDLED[ARCH],
    work: str | Path | None = None,
    progress: bool = True,
    exclude: Mapping[str, Sequence[str]] | None = None,
    device: str = "cpu",
) -> dict:
    """Train the bundled model; returns the training summary written into the model card.

    ``exclude`` ({attribute: [values]}) leaves frames with those values out of training and
    validation: a deliberately weak model that never saw, say, fog (the fine-tuning bench's start).
    ``device`` (``cpu``, ``cuda``, ``cuda:1``) runs every stage there; the pixels stay in host memory.
    """
    recipe = recipe or DefaultRecipe()
    model_cfg = json.loads((CONFIGS / f"{ARCH}.json").read_text())
    patch = int(model_cfg["vision_cfg"]["patch_size"])
    image_size = _checked_size("image_size", recipe.image_size, patch)
    grow_size = _checked_size("grow_image_size", recipe.grow_image_size, patch)
    model_cfg["vision_cfg"]["image_size"] = list(grow_size if recipe.grow_epochs > 0 else image_size)
    from core.workspace import workspace

    work = Path(work) if work is not None else workspace() / "train-default"
    schema = default_schema()
    data_dir = ensure_synth_dataset(work / f"synth-{recipe.scenes}-{recipe.clips}-s{recipe.data_seed}",
                             recipe.scenes, recipe.clips, recipe.data_seed, progress)
    data = read_manifest(data_dir)
    exclude = {a: sorted(v) for a, v in (exclude or {}).items() if v}
    for attr, values in exclude.items():
        for v in values:
            schema[attr].value(v)  # an unknown attribute or value is a SchemaError naming it
        data = Dataset(data.root, data.frames[~data.frames[attr].isin(values)].reset_index(drop=True), data.schema)
    train, val = data.split("train"), data.split("val")

    torch.manual_seed(recipe.seed)
    clip, _, preprocess = open_clip.create_model_and_transforms(ARCH, image_resize_mode="squash",
                                                                force_image_size=image_size)
    tokenizer = open_clip.get_tokenizer(ARCH)
    pixels = load_pixels(train, preprocess, progress=progress)

    def make_validator(pixels: torch.Tensor, preprocess: Callable) -> Validator | None:
        if recipe.val_index_frames <= 0 or not len(val):
            return None
        # Every k-th train frame: a fixed index that spans all clips, cheap enough to embed each epoch.
        step = max(1, len(train) // recipe.val_index_frames)
        keep = list(range(0, len(train), step))[: recipe.val_index_frames]
        index_part = Dataset(train.root, train.frames.iloc[keep].reset_index(drop=True), train.schema)
        return Validator(index_part, val, pixels[keep], load_pixels(val, preprocess, progress=progress),
                         schema, device=device)

    validator = make_validator(pixels, preprocess)
    config = TrainConfig(epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay,
                         batch_size=recipe.batch_size, seed=recipe.seed, warmup_fraction=0.05,
                         attribute_loss=recipe.attribute_loss)
    bar = tqdm(disable=True)  # each stage below opens its own

    def on_step(info: StepInfo) -> None:
        bar.update(1)
        bar.set_postfix(epoch=info.epoch + 1, loss=f"{info.loss:.3f}", img_s=f"{info.images_per_s:.0f}")

    def on_epoch(epoch: int, row: dict) -> dict:
        if validator is None:
            return {}
        report = validator.report(clip)
        scores = {"val_knn_macro_f1": round(report["macro_f1"], 4),
                  "val_knn_f1": {a: round(v["f1"], 4) for a, v in report["attributes"].items()}}
        bar.write(f"epoch {epoch}: loss {row['loss']:.3f}, val k-NN macro F1 {scores['val_knn_macro_f1']:.3f} "
                  + " ".join(f"{a} {f:.2f}" for a, f in scores["val_knn_f1"].items()))
        return scores

    # A state folder per stage and recipe: an interrupted run resumes, a changed one starts over.
    # Each stage is keyed by its own fields and those of the stages before it, so a changed later
    # stage reuses the earlier ones.
    fields = asdict(recipe)
    excluded = [exclude] if exclude else []
    contrastive = {k: v for k, v in fields.items() if not k.startswith(("distill_", "refine_", "grow_"))}
    # The data's stamp too: states trained on frames from another renderer version must not resume.
    rendered = json.loads((data_dir / STAMP).read_text())
    run_key = _stage_key(contrastive, rendered, ARCH, *excluded)
    t0 = time.time()
    codes = label_codes(train, schema)
    # Created here, not inside train_contrastive, so the refine stage continues the trained heads.
    heads = (AttributeHeads.for_codes(int(clip.text_projection.shape[-1]), codes)
             if recipe.attribute_loss > 0 else None)

    def cycle(desc: str, cfg: TrainConfig, head_weights: Sequence[float] | None, state_dir: Path) -> list[dict]:
        """One cosine cycle of the contrastive loss (and heads) on the current model and pixels."""
        nonlocal bar
        if heads is not None and head_weights is not None:
            heads.weights = tuple(head_weights)
        bar = tqdm(total=cfg.epochs * max(1, len(train) // cfg.batch_size), desc=desc, disable=not progress)
        try:
            return train_contrastive(
                clip, pixels, lambda e: epoch_subset_captions(train, schema, cfg.seed, e), tokenizer, cfg,
                state_dir=state_dir, on_step=on_step, on_epoch=on_epoch, label_codes=codes, heads=heads,
                device=device,
            )
        finally:
            bar.close()

    log = cycle("train", config, None, work / f"state-{run_key}")
    refine_log: list[dict] = []
    refine = {k: v for k, v in fields.items() if k.startswith("refine_")}
    if recipe.refine_epochs > 0:
        rkey = _stage_key(contrastive, refine, ARCH, *excluded)
        refine_log = cycle("refine", replace(config, epochs=recipe.refine_epochs, lr=recipe.refine_lr,
                                             seed=recipe.seed + 1),
                           recipe.refine_head_weights, work / f"state-{run_key}-refine-{rkey}")
    grow_log: list[dict] = []
    if recipe.grow_epochs > 0:
        grow = {k: v for k, v in fields.items() if k.startswith("grow_")}
        gkey = _stage_key(contrastive, refine, grow, ARCH, *excluded)
        clip, preprocess = regrid(clip, ARCH, grow_size)
        pixels = validator = None  # release the small frames before the grown ones are decoded
        pixels = load_pixels(train, preprocess, progress=progress)
        validator = make_validator(pixels, preprocess)
        grow_log = cycle("grow", replace(config, epochs=recipe.grow_epochs, lr=recipe.grow_lr, seed=recipe.seed + 2),
                         recipe.grow_head_weights, work / f"state-{run_key}-grow-{gkey}")
    distill_log: list[dict] = []
    dcfg = None
    if recipe.distill_epochs > 0:
        dcfg = DistillConfig(epochs=recipe.distill_epochs, lr=recipe.distill_lr, seed=recipe.seed)
        dkey = _stage_key(fields, asdict(dcfg), ARCH, *excluded)
        bar = tqdm(total=dcfg.epochs * max(1, len(train) // dcfg.batch_size), desc="distil pruned",
                   disable=not progress)

        def on_distill_epoch(epoch: int, row: dict) -> dict:
            if validator is None:
                return {}
            full, pruned = validator.report(clip)["macro_f1"], validator.report(clip, keep_ratio=0.25)["macro_f1"]
            bar.write(f"distil epoch {epoch}: loss {row['loss']:.4f}, val k-NN macro F1 {full:.3f}, "
                      f"25% spread tokens {pruned:.3f}")
            return {"val_knn_macro_f1": round(full, 4), "val_knn_macro_f1_spread25": round(pruned, 4)}

        distill_log = distill_pruned(clip, pixels, dcfg, state_dir=work / f"state-{run_key}-distill-{dkey}",
                                     on_step=on_step, on_epoch=on_distill_epoch, device=device)
        bar.close()
    summary = {
        "recipe": asdict(recipe),
        "excluded": exclude,
        "train_frames": len(train),
        # Summed per-epoch step time of all stages (validation excluded), so it stays the cost of
        # the whole recipe when a run resumed a finished stage.
        "train_seconds": round(sum(r["seconds"] for r in log + refine_log + grow_log + distill_log), 1),
        "wall_seconds_this_run": round(time.time() - t0, 1),
        "machine": (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
                    else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"),
        "torch": torch.__version__,
        "log": log,
        "refine_log": refine_log,
        "grow_log": grow_log,
        "distill_log": distill_log,
        "distill_config": asdict(dcfg) if dcfg is not None else None,
    }
    files = {"training.json": json.dumps(summary, indent=2)}
    # The fine-tuning defaults were chosen by a bench for this recipe (core.train.model_defaults):
    # a retrained model keeps them rather than silently falling back to the paper's lr.
    defaults = Path(out) / DEFAULTS_FILE
    if defaults.is_file():
        files[DEFAULTS_FILE] = defaults.read_text()
    save_model_dir(clip.eval(), model_cfg, out, preprocess_cfg={"resize_mode": "squash"},
                   dtype=torch.float16, card=None, files=files)
    return summary
