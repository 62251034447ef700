"""Exploratory: does a short FLIP-style fine-tune (patch dropout) make the bundled model robust to
token pruning? Fine-tunes ``scenescope-tiny`` with open_clip's ``PatchDropout`` and the bundled
recipe's losses, saves it as a ``file:`` model, then measure it with ``bench/token_pruning.py``.

    .venv/bin/python bench/explore/flip_finetune.py --drop 0.5 --epochs 2 --lr 1e-4 --out workspace/flip
    .venv/bin/python bench/token_pruning.py --model file:workspace/flip --train 600 --test 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from open_clip.transformer import PatchDropout

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.data import read_manifest  # noqa: E402
from core.models import BUNDLED, load_model  # noqa: E402
from core.schema import default_schema  # noqa: E402
from core.train import TrainConfig, load_pixels, save_model_dir, train_contrastive  # noqa: E402
from core.train.data import epoch_subset_captions, label_codes  # noqa: E402
from core.train.default import DefaultRecipe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drop", type=float, default=0.5, help="share of patch tokens dropped per step")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--data", default="workspace/train-default/synth-12000-150-s7",
                    help="the bundled recipe's data (made by `scenescope train-default`)")
    ap.add_argument("--out", default="workspace/flip")
    a = ap.parse_args()

    schema = default_schema()
    train = read_manifest(a.data).split("train")
    model = load_model("scenescope-tiny")
    clip = model.clip.float()
    clip.requires_grad_(True)
    clip.visual.patch_dropout = PatchDropout(a.drop)  # active in train mode only
    pixels = load_pixels(train, model.preprocess)
    recipe = DefaultRecipe()
    config = TrainConfig(epochs=a.epochs, lr=a.lr, batch_size=recipe.batch_size, warmup_fraction=0.05,
                         attribute_loss=recipe.attribute_loss)
    train_contrastive(clip, pixels, lambda e: epoch_subset_captions(train, schema, config.seed, e),
                      model.tokenizer, config, label_codes=label_codes(train, schema))
    clip.visual.patch_dropout = torch.nn.Identity()
    cfg = json.loads((BUNDLED["scenescope-tiny"] / "open_clip_config.json").read_text())
    save_model_dir(clip.eval(), cfg["model_cfg"], a.out, preprocess_cfg=cfg["preprocess_cfg"], dtype=torch.float16)
    print(f"wrote {a.out}; measure it with bench/token_pruning.py --model file:{a.out}")


if __name__ == "__main__":
    main()
