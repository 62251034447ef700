"""The bundled model's MODEL_CARD.md: measured by ``core.quality.measure`` on a fresh synthetic
dataset, described from its training.json, rendered from ``core/templates/model_card.md``.

The template holds the prose; this module only turns recorded numbers into the strings the
template names (``$name``, ``string.Template``), so wording changes never touch code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from string import Template

from core.atomic import atomic_write_text
from core.data import read_manifest

TEMPLATE = Path(__file__).with_name("templates") / "model_card.md"
CARD_INDEX_FRACTIONS = (0.125, 0.25, 0.5)


def _distill_subset(training: dict) -> str:
    """The distillation's token subsets in words, from the config recorded in training.json."""
    cfg = training.get("distill_config") or {}
    ratios = "/".join(f"{r:.0%}" for r in cfg.get("keep_ratios", ())) or "a share"
    share = cfg.get("spread_share", 0.0)
    pattern = ("the evenly spread pattern" if share >= 1 else "a random subset per image" if share <= 0
               else f"the evenly spread pattern ({share:.0%} of steps) or a random subset")
    read_in = "; the kept tokens read every patch in block 1 first, the read-in" if cfg.get("read_in") else ""
    return f"{ratios} of its patch tokens ({pattern}{read_in})"


def _csv(values: Sequence[float]) -> str:
    """Numbers as a command-line list, e.g. ``5,2,2,1,1,1``."""
    return ",".join(f"{v:g}" for v in values)


def _head_weights(weights: Sequence[float]) -> str:
    """Per-attribute loss weights in words (schema order), from the recipe in training.json."""
    from core.schema import default_schema

    names = [a.name for a in default_schema().attributes]
    return ", ".join(f"{n} {w:g}" for n, w in zip(names, weights, strict=False)) or "equal weights"


def _grow_options(recipe: dict) -> str:
    """The grow stage's reproduce options; empty when the recipe has none (older models)."""
    if not recipe.get("grow_epochs"):
        return ""
    return (f" --grow-epochs {recipe['grow_epochs']} --grow-image-size {_csv(recipe['grow_image_size'])}"
            f" --grow-lr {recipe['grow_lr']} --grow-head-weights {_csv(recipe['grow_head_weights'])}")


def _grow_line(recipe: dict, training: dict) -> str:
    """The model card's line on the grow stage; empty when the recipe had none."""
    if not recipe.get("grow_epochs"):
        return ""
    h, w = recipe["grow_image_size"]
    scores = ", ".join(f"{r['loss']:.3f} / {r.get('val_knn_macro_f1', float('nan')):.3f}"
                       for r in training.get("grow_log", [])) or "not run"
    return (f"- Then {recipe['grow_epochs']} epochs at a {h}x{w} input (positional embeddings resampled to the "
            f"finer patch grid,\n  `core.train.regrid`; lr {recipe['grow_lr']}, the refine stage's loss with "
            f"head weights {_head_weights(recipe['grow_head_weights'])}).\n  Loss / val k-NN macro F1 per epoch: {scores}\n")


def _curve_table(m: dict) -> str:
    points = [*m.get("index_curve", []), {"index_frames": m["index_frames"], **m}]
    names = list(m["knn_f1"])
    first = names[0]  # the schema's first attribute: road place in the bundled schema
    head = (f"| index frames | k-NN macro F1 | {' | '.join(names)} | in prompt space: macro F1 | {first} |\n|"
            + "---|" * (len(names) + 4))
    rows = [f"| {p['index_frames']} | {p['knn_macro_f1']:.3f} | " + " | ".join(f"{p['knn_f1'][a]:.3f}" for a in names)
            + f" | {p['prompt_knn_macro_f1']:.3f} | {p['prompt_knn_f1'][first]:.3f} |" for p in points]
    return "\n".join([head, *rows])


def _reproduce(rec: dict, cfg: dict) -> str:
    """``scenescope train-default``'s options that rebuild the model, from the recorded recipe."""
    image_size = rec.get("image_size", cfg["model_cfg"]["vision_cfg"]["image_size"])
    return (f"--scenes {rec.get('scenes')} --clips {rec.get('clips')} --data-seed {rec.get('data_seed')} "
            f"--epochs {rec.get('epochs')} --lr {rec.get('lr')} --batch-size {rec.get('batch_size')} "
            f"--seed {rec.get('seed')} --attribute-loss {rec.get('attribute_loss', 0.0)} "
            f"--image-size {_csv(image_size)} --refine-epochs {rec.get('refine_epochs', 0)} "
            f"--refine-lr {rec.get('refine_lr', 0.0)} --refine-head-weights {_csv(rec.get('refine_head_weights', ()))}"
            f"{_grow_options(rec)} --distill-epochs {rec.get('distill_epochs', 0)} "
            f"--distill-lr {rec.get('distill_lr', 0.0)}")


def _finetune_defaults(model_dir: Path) -> str:
    """The card's section on the fine-tuning defaults the folder records; empty when it records none."""
    from core.train.model_defaults import DEFAULTS_FILE, read_defaults_file

    recorded = read_defaults_file(model_dir)
    if not recorded:
        return ""
    # the source without its "<folder>/finetune_defaults.json: " prefix: the card sits in that folder
    lines = [f"- {name} {value:g}: {source.split(': ', 1)[-1]}" for name, (value, source) in recorded.items()]
    return ("\n## Fine-tuning defaults\n`scenescope finetune` from this model uses, unless told otherwise "
            f"(`{DEFAULTS_FILE}`; `openclip:` models use the CLIP scene paper's lr 1e-5):\n" + "\n".join(lines) + "\n")


def card_fields(model_dir: str | Path, m: dict, training: dict, cfg: dict, *, size_mb: float, load_s: float,
                scenes: int, seed: int) -> dict[str, str]:
    """Every ``$name`` of the template, from the measurements ``m`` (quality.json), training.json
    and open_clip_config.json."""
    rec = training.get("recipe", {})
    nan = float("nan")
    return {
        "model_cfg": json.dumps(cfg["model_cfg"], indent=2),
        "size_mb": f"{size_mb:.1f}",
        "load_s": f"{load_s:.2f}",
        "reproduce": _reproduce(rec, cfg),
        "train_frames": str(training.get("train_frames")),
        "data_seed": str(rec.get("data_seed")),
        "attribute_loss": str(rec.get("attribute_loss", 0.0)),
        "weight_decay": str(rec.get("weight_decay")),
        "refine_epochs": str(rec.get("refine_epochs", 0)),
        "refine_lr": str(rec.get("refine_lr")),
        "refine_head_weights": _head_weights(rec.get("refine_head_weights") or ()),
        "refine_scores": ", ".join(f"{r['loss']:.3f} / {r.get('val_knn_macro_f1', nan):.3f}"
                                   for r in training.get("refine_log", [])) or "not run",
        "grow_line": _grow_line(rec, training),
        "distill_epochs": str(rec.get("distill_epochs", 0)),
        "distill_lr": str(rec.get("distill_lr")),
        "distill_subset": _distill_subset(training),
        "distill_scores": ", ".join(f"{r.get('val_knn_macro_f1', nan):.3f} / {r.get('val_knn_macro_f1_spread25', nan):.3f}"
                                    for r in training.get("distill_log", [])) or "not run",
        "train_seconds": str(training.get("train_seconds")),
        "machine": str(training.get("machine")),
        "torch": str(training.get("torch")),
        "losses": ", ".join(f"{r['loss']:.3f}" for r in training.get("log", [])),
        "val_scores": ", ".join(f"{r['val_knn_macro_f1']:.3f}" for r in training.get("log", [])
                                if "val_knn_macro_f1" in r) or "not recorded",
        "finetune_defaults": _finetune_defaults(Path(model_dir)),
        "model_dir": str(model_dir),
        "scenes": str(scenes),
        "seed": str(seed),
        "k": str(m["k"]),
        "index_frames": str(m["index_frames"]),
        "test_frames": str(m["test_frames"]),
        "attribute_rows": "\n".join(
            f"| {a} | {m['knn_f1'][a]:.3f} | {m['prompt_knn_f1'][a]:.3f} | {m['zero_shot_f1'][a]:.3f} |"
            for a in m["knn_f1"]),
        "knn_macro_f1": f"{m['knn_macro_f1']:.3f}",
        "prompt_knn_macro_f1": f"{m['prompt_knn_macro_f1']:.3f}",
        "zero_shot_macro_f1": f"{m['zero_shot_macro_f1']:.3f}",
        "recall_at_5": f"{m['text_to_image_recall@5']:.3f}",
        "curve_table": _curve_table(m),
    }


def render_model_card(model_dir: str | Path, m: dict, training: dict, cfg: dict, *, size_mb: float,
                      load_s: float, scenes: int, seed: int) -> str:
    """MODEL_CARD.md's text for recorded measurements (no model is loaded)."""
    fields = card_fields(model_dir, m, training, cfg, size_mb=size_mb, load_s=load_s, scenes=scenes, seed=seed)
    return Template(TEMPLATE.read_text()).substitute(fields)


def write_model_card(model_dir: str | Path, scenes: int = 3000, seed: int = 1001,
                     work: str | Path | None = None) -> Path:
    """Measure the model in ``model_dir`` on a fresh dataset (``seed``) and write MODEL_CARD.md."""
    from core.models import load_model
    from core.quality import measure
    from core.synth import ensure_synth_dataset

    model_dir = Path(model_dir)
    from core.workspace import workspace

    work = Path(work) if work is not None else workspace()
    data = read_manifest(ensure_synth_dataset(work / f"quality-{scenes}-s{seed}", scenes, 0, seed))
    model = load_model(f"file:{model_dir}")
    t0 = time.perf_counter()
    load_model(f"file:{model_dir}")
    load_s = time.perf_counter() - t0
    m = measure(model, data.split("train"), data.split("test"), index_fractions=CARD_INDEX_FRACTIONS)
    training = json.loads((model_dir / "training.json").read_text()) if (model_dir / "training.json").exists() else {}
    cfg = json.loads((model_dir / "open_clip_config.json").read_text())
    size_mb = sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6
    card = render_model_card(model_dir, m, training, cfg, size_mb=size_mb, load_s=load_s, scenes=scenes, seed=seed)
    atomic_write_text(model_dir / "MODEL_CARD.md", card)
    atomic_write_text(model_dir / "quality.json", json.dumps(m, indent=2))
    return model_dir / "MODEL_CARD.md"
