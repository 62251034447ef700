"""Where do patch-text relevance maps land: what share of the top 25% is on the named feature (issue 5; reported, no target)? `python bench/token_localisation.py [--quick]`

For every place value that the renderer draws as a masked feature (construction, intersection,
zebra, rail, bridge, gores) render ~30 synthetic scenes, score the patches against the value's
first schema phrase (dense methods x rules, with and without feature surgery "+fs", leave-one-out
occlusion, and the query-free cls / rollout saliency), and measure the share of the top-25% patches that lie on the feature's mask
(precision), against chance (the share of all patches on the mask). A patch is "on the mask" when
at least ``--cover`` of its input pixels are, measured through the model's own preprocess.

    .venv/bin/python bench/token_localisation.py --scenes 30 --json /tmp/loc.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _quick import parse_args  # noqa: E402

from core.models import load_model  # noqa: E402
from core.schema import default_schema  # noqa: E402
from core.tokens import (  # noqa: E402
    METHODS,
    RULES,
    dense_forward,
    heatmap_image,
    input_box,
    keep_count,
    occlusion_scores,
    patch_coverage,
    rollout,
    score_patches,
    select_tokens,
    text_features,
)


def place_features(schema) -> tuple[str, list]:
    """The attribute whose values carry a render ``feature``, and its values that draw one."""
    for attr in schema:
        feats = [v for v in attr.values if "feature" in v.render]
        if feats:
            return attr.name, [v for v in feats if v.render["feature"] not in (None, "none")]
    raise LookupError("no attribute with render features")


def render_set(schema, attr: str, value: str, n: int, seed0: int):
    from core.synth import render_scene

    frames, masks, empty = [], [], 0
    seed = seed0
    while len(frames) < n and seed < seed0 + 4 * n:
        labels = schema.sample(random.Random(seed), fixed={attr: value})
        rgb, mask = render_scene(labels, seed=seed, size=(320, 180), return_mask=True)
        seed += 1
        if not mask.any():
            empty += 1
            continue
        frames.append(rgb)
        masks.append(mask)
    return frames, masks, empty


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="scenescope-tiny")
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--keep", type=float, default=0.25)
    ap.add_argument("--cover", type=float, default=0.1, help="min share of a patch on the mask to count")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--gallery", type=Path, help="PNG: first scene of each place, one heatmap per method")
    ap.add_argument("--gallery-rule", default="max")
    args = parse_args(ap, {"scenes": 2}, argv)
    torch.set_num_threads(args.threads)

    schema = default_schema()
    model = load_model(args.model)
    torch.set_num_threads(args.threads)  # load_model raises the thread count
    attr, values = place_features(schema)
    n_patches = model.grid_size[0] * model.grid_size[1]
    k = keep_count(n_patches, args.keep)
    # Feature surgery's reference texts: the first phrase of every value of every attribute.
    background = model.embed_texts([v.phrases[0] for a in schema for v in a.values])
    variants = [(m, r) for m in METHODS for r in (*RULES, *(f"{x}+fs" for x in RULES))]
    variants += [("occlusion", "-"), ("occlusion", "+fs"), ("cls", "-"), ("rollout", "-")]
    rows = []
    gallery: list[list[Image.Image]] = []
    t0 = time.time()
    for vi, value in enumerate(values):
        frames, masks, empty = render_set(schema, attr, value.name, args.scenes, args.seed + 10_000 * vi)
        query = value.phrases[0]
        pooled, tokens = text_features(model, query)
        on = np.stack([patch_coverage(model, m) >= args.cover for m in masks])  # (S, N)
        pixels = model.preprocess_batch(frames)
        scores: dict[tuple[str, str], np.ndarray] = {}
        for method in METHODS:
            image, patches, attn = dense_forward(model, pixels, method, need_attention=method == "raw")
            feats = patches.float().numpy()
            for rule in RULES:
                scores[(method, rule)] = np.stack([score_patches(f, pooled, tokens, rule) for f in feats])
                scores[(method, f"{rule}+fs")] = np.stack(
                    [score_patches(f, pooled, tokens, rule, background) for f in feats])
            if method == "raw":
                scores[("occlusion", "-")] = occlusion_scores(model, pixels, query)
                scores[("occlusion", "+fs")] = occlusion_scores(model, pixels, query, background)
                scores[("cls", "-")] = torch.einsum("bnd,bd->bn", patches, image).numpy()
                scores[("rollout", "-")] = rollout(attn).numpy()
        oracle = np.minimum(on.sum(axis=1), k) / k  # best possible precision: masks can be small
        for key in variants:
            s = scores[key]
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            prec = np.take_along_axis(on, top, axis=1).mean(axis=1)
            aucs = [roc_auc_score(o, x) for o, x in zip(on, s, strict=True) if 0 < o.sum() < len(o)]
            rows.append({
                "place": value.name, "query": query, "method": key[0], "rule": key[1], "scenes": len(frames),
                "empty_masks": empty, "precision": float(prec.mean()), "chance": float(on.mean(axis=1).mean()),
                "oracle": float(oracle.mean()), "auroc": float(np.mean(aucs)) if aucs else float("nan"),
                "top1_hit": float(np.take_along_axis(on, top[:, :1], axis=1).mean()),
            })
        if args.gallery:
            gallery.append(gallery_row(model, frames[0], masks[0], query, scores, args))
        print(f"{value.name}: {len(frames)} scenes, {empty} empty masks, chance {on.mean():.2f}", file=sys.stderr)
    print(f"done in {time.time() - t0:.0f}s", file=sys.stderr)

    print(markdown(rows, model.identity, args))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if gallery:
        tw, th = gallery[0][0].size
        sheet = Image.new("RGB", (tw * len(gallery[0]), th * len(gallery)), "white")
        for r, tiles in enumerate(gallery):
            for c, tile in enumerate(tiles):
                sheet.paste(tile, (c * tw, r * th))
        # Half-size tiles and a 256-colour palette keep the sheet small enough for the repository.
        small = sheet.resize((sheet.width // 2, sheet.height // 2), Image.LANCZOS)
        small.quantize(256).save(args.gallery, optimize=True)


def gallery_row(model, frame: np.ndarray, mask: np.ndarray, query: str, scores: dict, args) -> list[Image.Image]:
    """The frame with its feature mask tinted, then one heatmap per method (first scene's scores)."""
    tinted = frame.copy()
    tinted[mask] = (0.5 * tinted[mask] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    tiles = [heatmap_image(tinted, select_tokens(np.zeros(model.grid_size), 1.0), alpha=0.0, colorbar=False,
                           grid_lines=False, dim_pruned=0.0, title=f'"{query}"')]
    box = input_box(model, (frame.shape[1], frame.shape[0]))
    for method, rule in [(m, args.gallery_rule) for m in METHODS] + [("occlusion", "-")]:
        sel = select_tokens(scores[(method, rule)][0], args.keep, grid=model.grid_size, box=box)
        tiles.append(heatmap_image(frame, sel, colorbar=False, title=f"{method} ({rule})" if rule != "-" else method))
    return tiles


def markdown(rows: list[dict], identity: str, args) -> str:
    places = list(dict.fromkeys(r["place"] for r in rows))
    variants = list(dict.fromkeys((r["method"], r["rule"]) for r in rows))
    by = {(r["place"], r["method"], r["rule"]): r for r in rows}

    def mean(m: str, r: str, key: str) -> float:
        return float(np.nanmean([by[(p, m, r)][key] for p in places]))

    first = variants[0]
    chance, oracle = mean(*first, "chance"), mean(*first, "oracle")
    out = [f"Model `{identity}`, {args.scenes} scenes per place value, top {args.keep:.0%} patches kept, a patch "
           f"is on the feature if >= {args.cover:.0%} of its input pixels are masked. Means over the "
           f"{len(places)} place values. precision = share of kept patches on the feature; oracle = best "
           "possible precision (small masks cover fewer patches than are kept); AUROC = patch scores vs "
           "on-feature, threshold-free; top-1 = best patch on the feature.", "",
           "| method | rule | precision | lift over chance | share of oracle | AUROC | top-1 hit |",
           "|---|---|---|---|---|---|---|",
           f"| chance | - | {chance:.3f} | 1.00x | {chance / oracle:.2f} | 0.500 | {chance:.2f} |",
           f"| oracle | - | {oracle:.3f} | {oracle / chance:.2f}x | 1.00 | 1.000 | 1.00 |"]
    for m, r in variants:
        p = mean(m, r, "precision")
        out.append(f"| {m} | {r} | **{p:.3f}** | {p / chance:.2f}x | {p / oracle:.2f} | {mean(m, r, 'auroc'):.3f} | "
                   f"{mean(m, r, 'top1_hit'):.2f} |")
    # Per place: each method at its best rule overall.
    best = {}
    for m, r in variants:
        if m not in best or mean(m, r, "precision") > mean(m, best[m], "precision"):
            best[m] = r
    heads = [f"{m} ({r})" if r != "-" else m for m, r in best.items()]
    out += ["", "Per place value (precision; method at its best rule):", "",
            "| place | query | scenes | chance | oracle | " + " | ".join(heads) + " |",
            "|---|---|---|---|---|" + "---|" * len(heads)]
    for p in places:
        row = by[(p, *first)]
        cells = [f"{by[(p, m, r)]['precision']:.2f}" for m, r in best.items()]
        out.append(f"| {p} | \"{row['query']}\" | {row['scenes']} | {row['chance']:.2f} | {row['oracle']:.2f} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
