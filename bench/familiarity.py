"""Does familiarity tell real footage from held-out synthetic frames? Target (issue 20): AUROC >= 0.95
with at most 5% of held-out synthetic frames flagged. Run: `python bench/familiarity.py [--index indexes/demo]
[--synthetic 300] [--quick]`.

Real frames: the Udacity images and clip frames and the DriveLM sample's front-camera frames in
../shared/fixtures (evaluation only). Held-out synthetic frames: freshly rendered scenes (a seed the
demo never used). Each measurement alone and familiarity itself (the lower of the two percentiles)
are reported, with the share of each kind of frame flagged below core.familiarity.FLAG_BELOW.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from _quick import parse_args
from PIL import Image
from sklearn.metrics import roc_auc_score

from core.familiarity import FLAG_BELOW, calibrate, familiarity, neighbour_similarity, subspace_fit
from core.familiarity import _fit_pca as fit_pca
from core.neighbours import neighbours
from core.pipeline import open_index
from core.schema import default_schema
from core.synth import render_scene
from core.video import sample_frames

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def real_frames() -> list[Image.Image]:
    paths = (sorted(FIXTURES.glob("udacity-lanelines/test_images/*.jpg"))
             + sorted(FIXTURES.glob("udacity-advanced-lanes/test_images/*.jpg"))
             + sorted(FIXTURES.glob("drivelm-sample/**/CAM_FRONT/*.jpg")))
    images = [Image.open(p).convert("RGB") for p in paths]
    clip = sample_frames(FIXTURES / "udacity-lanelines/test_videos/solidWhiteRight.mp4", fps=2.0)
    images += [f if isinstance(f, Image.Image) else Image.fromarray(f) for _, f in clip]
    return images


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="indexes/demo")
    ap.add_argument("--synthetic", type=int, default=300)
    a = parse_args(ap, {"synthetic": 40}, argv)
    if not FIXTURES.is_dir():
        raise SystemExit(f"{FIXTURES} is absent: the real frames live there")
    model, store = open_index(a.index)
    schema = default_schema()
    synth = []
    for s in range(a.synthetic):
        im = render_scene(schema.sample(random.Random(5000 + s)), seed=777000 + s)
        synth.append(im[0] if isinstance(im, tuple) else im)
    real = real_frames()
    er, es = model.embed_images(real), model.embed_images(synth)
    t0 = time.perf_counter()
    cal = calibrate(store)
    print(f"index {a.index}: {len(store)} frames; calibration {time.perf_counter() - t0:.2f} s; "
          f"{len(real)} real frames, {len(synth)} held-out synthetic")
    pca = fit_pca(np.asarray(store.embeddings(), np.float32), cal["subspace"]["dims"], cal["subspace"]["seed"])
    y = np.r_[np.zeros(len(er)), np.ones(len(es))]
    rows = {}
    for name, e in (("real", er), ("synthetic", es)):
        sims, _ = neighbours(store, e, cal["k"])
        fit = subspace_fit(pca, e)
        rows[name] = {"neighbour similarity": familiarity(cal, sims),
                      "subspace fit": familiarity({"quantiles": cal["subspace"]["quantiles"]},
                                                  np.zeros((len(e), 1)) + fit[:, None]),
                      "familiarity": familiarity(cal, sims, fit),
                      "raw neighbour similarity": neighbour_similarity(sims)}
    print("| measure | AUROC (real vs held-out synthetic) | synthetic flagged | real flagged |\n|---|---|---|---|")
    for m in ("neighbour similarity", "subspace fit", "familiarity"):
        r, s = rows["real"][m], rows["synthetic"][m]
        print(f"| {m} | {roc_auc_score(y, np.r_[r, s]):.3f} | {np.mean(s < FLAG_BELOW):.1%} | {np.mean(r < FLAG_BELOW):.1%} |")


if __name__ == "__main__":
    main()
