"""Exploratory: a further token-pruning distillation of a model with other settings than the
recipe's (e.g. without the read-in), saved as a ``file:`` model; measure it with
``bench/token_pruning.py``.

    .venv/bin/python bench/explore/distill_variant.py --keep 0.25 --spread-share 1 --lr 3e-4 --no-read-in --out workspace/distill-s25
    .venv/bin/python bench/token_pruning.py --model file:workspace/distill-s25
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.data import read_manifest  # noqa: E402
from core.models import BUNDLED, load_model  # noqa: E402
from core.train import load_pixels, save_model_dir  # noqa: E402
from core.train.distill import DistillConfig, distill_pruned  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=float, nargs="+", default=[0.25], help="keep ratios drawn per step")
    ap.add_argument("--spread-share", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--no-read-in", action="store_true", help="drop the other tokens before block 1")
    ap.add_argument("--data", default="workspace/train-default/synth-12000-150-s7",
                    help="the bundled recipe's data (made by `scenescope train-default`)")
    ap.add_argument("--out", default="workspace/distill-variant")
    ap.add_argument("--start", default="scenescope-tiny", help="model to distil further (registry name)")
    a = ap.parse_args()

    model = load_model(a.start)
    clip = model.clip.float()
    clip.requires_grad_(True)
    pixels = load_pixels(read_manifest(a.data).split("train"), model.preprocess)
    cfg = DistillConfig(epochs=a.epochs, lr=a.lr, keep_ratios=tuple(a.keep), spread_share=a.spread_share,
                        read_in=not a.no_read_in)
    bar = tqdm(total=cfg.epochs * (pixels.shape[0] // cfg.batch_size), desc="distil")
    log = distill_pruned(clip, pixels, cfg, on_step=lambda info: bar.update(1))
    bar.close()
    print(json.dumps(log, indent=1))
    card = json.loads((BUNDLED["scenescope-tiny"] / "open_clip_config.json").read_text())
    save_model_dir(clip.eval(), card["model_cfg"], a.out, preprocess_cfg=card["preprocess_cfg"], dtype=torch.float16)
    print(f"wrote {a.out}; measure it with bench/token_pruning.py --model file:{a.out}")


if __name__ == "__main__":
    main()
