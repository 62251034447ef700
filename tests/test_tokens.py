"""Token selection: hand-computed scoring, keep counts, pruned encoder parity, heatmaps, and
(once the bundled model exists) localisation of cones on synthetic construction scenes."""

from __future__ import annotations

import math
import random

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

import core.models
from core.models import BUNDLED, DEFAULT_MODEL, SceneModel
from core.schema import default_schema
from core.tokens import (
    METHODS,
    dense_forward,
    embed_pruned,
    encode_early_pruned,
    encode_pruned,
    heatmap_frames,
    heatmap_image,
    input_box,
    keep_count,
    keep_indices,
    occlusion_scores,
    patch_coverage,
    patch_features,
    saliency_scores,
    schema_background,
    score_patches,
    select_images,
    select_query_aware,
    select_random,
    select_tokens,
    spread_scores,
    text_features,
)
from core.tokens.features import block_forward
from core.tokens.heatmap import BAR_WIDTH, OUTLINE

TRAINED = (BUNDLED[DEFAULT_MODEL] / "open_clip_config.json").exists()


@pytest.fixture(scope="module")
def model() -> SceneModel:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    clip, _, preprocess = open_clip.create_model_and_transforms("scenescope-tiny")
    clip.eval()
    return SceneModel(name="scenescope-tiny", identity="random", clip=clip, preprocess=preprocess,
                      tokenizer=open_clip.get_tokenizer("ViT-B-32"))


@pytest.fixture(scope="module")
def pixels(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, *model.image_size, generator=g)


# ---- hand-computed scoring and selection -------------------------------------------------------
# A 2x3 grid of 3-d patch vectors, a pooled query along x and two word tokens along x and y.
PATCHES = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1],
     [0.6, 0.8, 0], [0.8, 0, 0.6], [-1, 0, 0]], dtype=np.float32)
POOLED = np.array([1, 0, 0], np.float32)
WORDS = np.array([[1, 0, 0], [0, 1, 0]], np.float32)


def test_scores_by_hand():
    np.testing.assert_allclose(score_patches(PATCHES, POOLED, WORDS, "pooled"), [1, 0, 0, 0.6, 0.8, -1], atol=1e-6)
    np.testing.assert_allclose(score_patches(PATCHES, POOLED, WORDS, "max"), [1, 1, 0, 0.8, 0.8, 0], atol=1e-6)
    np.testing.assert_allclose(score_patches(PATCHES, POOLED, WORDS, "mean"), [0.5, 0.5, 0, 0.7, 0.4, -0.5],
                               atol=1e-6)
    # cosine, not dot product: scaling vectors changes nothing
    np.testing.assert_allclose(score_patches(PATCHES * 3, POOLED * 2, WORDS * 5, "mean"),
                               score_patches(PATCHES, POOLED, WORDS, "mean"), atol=1e-6)
    # no word tokens (empty query): the word rules fall back to the pooled query
    np.testing.assert_allclose(score_patches(PATCHES, POOLED, WORDS[:0], "max"),
                               score_patches(PATCHES, POOLED, None, "pooled"))
    with pytest.raises(ValueError):
        score_patches(PATCHES, POOLED, WORDS, "median")


def test_feature_surgery_by_hand():
    # background texts along x and z: each patch loses its mean cos to them
    bg = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    # pooled [1, 0, 0, .6, .8, -1] minus mean cos to bg [.5, 0, .5, .3, .7, -.5]
    np.testing.assert_allclose(score_patches(PATCHES, POOLED, WORDS, "pooled", bg),
                               [0.5, 0, -0.5, 0.3, 0.1, -0.5], atol=1e-6)
    sel = select_tokens(score_patches(PATCHES, POOLED, WORDS, "pooled", bg), k=2, grid=(2, 3))
    assert sel.indices.tolist() == [0, 3]  # patch 4 (0.8 -> 0.1) falls behind patch 3


@pytest.mark.parametrize("rule,k,indices", [
    ("pooled", 2, [0, 4]),
    ("max", 2, [0, 1]),  # tie at 1.0: the lower patch index first
    ("max", 3, [0, 1, 3]),  # tie at 0.8 between patches 3 and 4
    ("mean", 2, [3, 0]),
])
def test_selection_by_hand(rule, k, indices):
    sel = select_tokens(score_patches(PATCHES, POOLED, WORDS, rule), k=k, grid=(2, 3))
    assert sel.indices.tolist() == indices
    expected = np.zeros(6, bool)
    expected[indices] = True
    assert sel.mask.tolist() == expected.tolist()
    assert sel.grid == (2, 3) and sel.k == k
    assert sel.mask_map().shape == (2, 3)


def test_ratio_by_hand():
    # 1/3 of 6 patches is exactly 2; 0.34 rounds up to 3
    scores = score_patches(PATCHES, POOLED, WORDS, "pooled")
    assert select_tokens(scores, keep_ratio=1 / 3, grid=(2, 3)).indices.tolist() == [0, 4]
    assert select_tokens(scores, keep_ratio=0.34, grid=(2, 3)).indices.tolist() == [0, 4, 3]
    # a (rows, cols) score map carries its own grid
    assert select_tokens(scores.reshape(2, 3), k=1).grid == (2, 3)


@pytest.mark.parametrize("grid", [(7, 12), (2, 3), (1, 1), (14, 14), (5, 7)])
@pytest.mark.parametrize("ratio", [0.05, 0.16, 0.25, 0.29, 0.5, 0.84, 1.0])
def test_keep_count_is_ceil(grid, ratio):
    n = grid[0] * grid[1]
    expected = min(n, max(1, math.ceil(round(ratio * n, 6))))
    sel = select_tokens(np.random.default_rng(0).random(n), keep_ratio=ratio, grid=grid)
    assert sel.k == expected == int(sel.mask.sum()) == keep_count(n, ratio)
    assert sel.keep_ratio >= ratio or sel.k == n
    assert len(set(sel.indices.tolist())) == sel.k
    # indices are sorted by score, descending
    assert np.all(np.diff(sel.scores[sel.indices]) <= 0)


def test_k_overrides_ratio():
    scores = np.arange(84, dtype=np.float32)
    assert select_tokens(scores, keep_ratio=0.25, k=5, grid=(7, 12)).indices.tolist() == [83, 82, 81, 80, 79]
    assert select_tokens(scores, k=500, grid=(7, 12)).k == 84
    assert select_tokens(scores, k=0, grid=(7, 12)).k == 1
    assert keep_count(84, 0.25) == 21
    with pytest.raises(ValueError):
        select_tokens(scores, keep_ratio=0.0, grid=(7, 12))
    with pytest.raises(ValueError):
        select_tokens(scores, grid=(5, 5))


def test_random_selection_is_seeded():
    a, b, c = select_random((7, 12), 0.25, seed=3), select_random((7, 12), 0.25, seed=3), select_random((7, 12), 0.25, seed=4)
    assert a.indices.tolist() == b.indices.tolist() != c.indices.tolist()


def test_spread_covers_the_grid():
    for grid in [(7, 12), (2, 3), (14, 14)]:
        s = spread_scores(grid)
        assert len(set(s.tolist())) == grid[0] * grid[1]  # a strict order
        half = select_tokens(s, 0.5, grid=grid).mask_map()
        if grid == (7, 12):
            # half the budget is a checkerboard: every patch has a kept 4-neighbour
            assert (half[:, :-1] != half[:, 1:]).all() and (half[:-1] != half[1:]).all()
    # at 25% of 7x12 every row band of 2 rows and every 4-column band holds kept patches
    quarter = select_tokens(spread_scores((7, 12)), 0.25, grid=(7, 12)).mask_map()
    assert all(quarter[r : r + 2].any() for r in range(0, 7, 2))
    assert all(quarter[:, c : c + 4].any() for c in range(0, 12, 4))


def test_keep_indices_coverage():
    scores = np.arange(84, dtype=np.float32)[None]  # best patches are the last ones
    top = keep_indices(scores, 0.25)[0].tolist()
    assert top == list(range(63, 84))
    mixed = keep_indices(scores, 0.25, coverage=0.5, grid=(7, 12))[0].tolist()
    assert len(set(mixed)) == 21 and mixed == sorted(mixed)
    assert set(range(73, 84)) <= set(mixed)  # 21 - round(10.5) = 11 best by score ...
    spread = spread_scores((7, 12))
    spread[73:] = -np.inf
    assert set(mixed) - set(range(73, 84)) == set(np.argsort(-spread, kind="stable")[:10].tolist())  # ... 10 spread
    only_spread = keep_indices(scores, 0.25, coverage=1.0, grid=(7, 12))[0].tolist()
    assert only_spread == sorted(np.argsort(-spread_scores((7, 12)), kind="stable")[:21].tolist())


# ---- dense features --------------------------------------------------------------------------
def test_reimplemented_block_matches_open_clip(model, pixels):
    visual = model.clip.visual
    from core.tokens.features import token_embeddings
    x = visual.ln_pre(token_embeddings(visual, pixels))
    for blk in visual.transformer.resblocks:
        ours, weights = block_forward(blk, x)
        torch.testing.assert_close(ours, blk(x), atol=1e-5, rtol=1e-5)
        assert torch.allclose(weights.sum(-1), torch.ones(()))
        x = blk(x)


def test_patch_features(model, pixels):
    rows, cols = model.grid_size
    visual = model.clip.visual
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(pixels)
    finally:
        visual.output_tokens = False
    expected = torch.nn.functional.normalize(tokens @ visual.proj, dim=-1).detach().numpy()
    for method in METHODS:
        feats, grid = patch_features(model, pixels, method)
        assert feats.shape == (3, rows * cols, model.embed_dim) and grid == (rows, cols)
        np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), 1, atol=1e-5)
        if method == "raw":
            np.testing.assert_allclose(feats, expected, atol=1e-5)
        else:
            assert np.abs(feats - expected).max() > 1e-3
        # the image embedding is the ordinary one whatever the patch method
        image, _, _ = dense_forward(model, pixels, method)
        torch.testing.assert_close(image, model.clip.encode_image(pixels, normalize=True).detach(), atol=1e-5,
                                   rtol=0)
    with pytest.raises(ValueError):
        patch_features(model, pixels, "gradcam")


def test_text_features(model):
    pooled, tokens = text_features(model, "construction cones ahead")
    np.testing.assert_allclose(pooled, model.embed_texts(["construction cones ahead"])[0], atol=1e-5)
    assert tokens.shape == (3, model.embed_dim)  # three words, no SOT / EOT / padding
    np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1, atol=1e-5)
    # causal text tower: the first word's feature does not depend on what follows it
    _, other = text_features(model, "construction zone")
    np.testing.assert_allclose(tokens[0], other[0], atol=1e-5)
    assert text_features(model, "")[1].shape == (0, model.embed_dim)
    # the short pass (up to EOT) equals the whole 77-token context's word tokens
    clip = model.clip
    ids = model.tokenizer(["construction cones ahead"])
    x = clip.token_embedding(ids) + clip.positional_embedding
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))[0]
    full = torch.nn.functional.normalize(x[1:4] @ clip.text_projection, dim=-1).detach().numpy()
    np.testing.assert_allclose(tokens, full, atol=1e-5)


def test_saliency(model, pixels):
    n = model.grid_size[0] * model.grid_size[1]
    cls = saliency_scores(model, pixels, "cls")
    roll = saliency_scores(model, pixels, "rollout")
    assert cls.shape == roll.shape == (3, n)
    assert np.all(cls <= 1 + 1e-5) and np.all(roll >= 0) and np.all(roll.sum(1) < 1)


def test_occlusion_scores(model, pixels):
    n = model.grid_size[0] * model.grid_size[1]
    occ = occlusion_scores(model, pixels[:1], "construction cones", chunk=40)
    assert occ.shape == (1, n)
    text = torch.from_numpy(text_features(model, "construction cones")[0])
    full = model.clip.encode_image(pixels[:1], normalize=True).detach()[0] @ text
    without_7 = encode_pruned(model, pixels[:1], torch.tensor([[i for i in range(n) if i != 7]]))[0] @ text
    assert occ[0, 7] == pytest.approx(float(full - without_7), abs=1e-5)
    sel = select_query_aware(model, pixels[0].permute(1, 2, 0).mul(40).add(128).clamp(0, 255).byte().numpy(),
                             "construction cones", method="occlusion")
    assert sel.k == 21


def test_select_images_modes(model):
    frames = [np.random.default_rng(i).integers(0, 255, (180, 320, 3), dtype=np.uint8) for i in range(2)]
    q = select_images(model, frames, "construction cones", 0.25, rule="max", method="sclip")
    s = select_images(model, frames, None, 0.25)
    r1 = select_images(model, frames, None, 0.25, mode="random", seed=5)
    r2 = select_images(model, frames, None, 0.25, mode="random", seed=5)
    assert all(sel.k == 21 for sel in q + s + r1)
    assert [x.indices.tolist() for x in r1] == [x.indices.tolist() for x in r2]
    # the 16:9 frame is centre-cropped to the 12:7 input, so the grid sits inside the frame
    left, top, right, bottom = q[0].box
    assert 0 < left < 10 and 310 < right < 320 and abs(top) < 0.5 and abs(bottom - 180) < 0.5
    single = select_query_aware(model, frames[0], "construction cones", 0.25, rule="max", method="sclip")
    assert single.indices.tolist() == q[0].indices.tolist()


def test_patch_coverage_follows_preprocess(model):
    mask = np.zeros((180, 320), bool)
    mask[90:, 160:] = True  # bottom-right quadrant
    cov = patch_coverage(model, mask).reshape(model.grid_size)
    assert cov.shape == (7, 12)
    assert cov[4:, 6:].min() > 0.95 and cov[:3].max() < 0.01 and cov[:, :5].max() < 0.01
    assert 0.4 < cov[3, 8] < 0.6  # row 3 straddles the mask's top edge (y = 56 of 112)


# ---- pruned encoder --------------------------------------------------------------------------
def test_pruned_full_equals_encoder(model, pixels):
    n = model.grid_size[0] * model.grid_size[1]
    full = model.clip.encode_image(pixels, normalize=True).detach()
    idx = torch.arange(n).expand(pixels.shape[0], -1)
    torch.testing.assert_close(encode_pruned(model, pixels, idx), full, atol=1e-5, rtol=0)
    np.testing.assert_allclose(embed_pruned(model, pixels, 1.0), full.numpy(), atol=1e-5)
    # token order does not matter: positions travel with the tokens
    perm = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(i)) for i in range(3)])
    torch.testing.assert_close(encode_pruned(model, pixels, perm), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(encode_pruned(model, pixels, idx, read_in=True), full, atol=1e-5, rtol=0)


def test_read_in_equals_pruning_after_block_one(model, pixels):
    """Reference: run block 1 on every token, then keep the class token and the chosen patches."""
    visual = model.clip.visual
    n = model.grid_size[0] * model.grid_size[1]
    idx = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(i))[:n // 4].sort().values
                       for i in range(pixels.shape[0])])
    with torch.no_grad():
        x = visual.conv1(pixels.to(visual.conv1.weight.dtype)).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype))
        first, *rest = visual.transformer.resblocks
        x = first(x)
        x = torch.cat([x[:, :1], x[:, 1:][torch.arange(x.shape[0])[:, None], idx]], dim=1)
        for block in rest:
            x = block(x)
        ref = visual.ln_post(x[:, 0]) @ visual.proj
        ref = ref / ref.norm(dim=-1, keepdim=True)
    read_in = encode_pruned(model, pixels, idx, read_in=True)
    torch.testing.assert_close(read_in, ref, atol=1e-5, rtol=0)
    assert (read_in - encode_pruned(model, pixels, idx)).abs().max() > 1e-3  # the dropped patches count


def test_pruned_half_feeds_fewer_tokens(model, pixels):
    n = model.grid_size[0] * model.grid_size[1]
    seen = []
    hook = model.clip.visual.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    try:
        idx = keep_indices(np.random.default_rng(0).random((3, n)), 0.5)
        half = encode_pruned(model, pixels, idx)
    finally:
        hook.remove()
    assert seen == [torch.Size([3, 1 + math.ceil(n / 2), model.clip.visual.transformer.width])]
    full = model.clip.encode_image(pixels, normalize=True).detach()
    assert (half - full).abs().max() > 1e-3
    torch.testing.assert_close(half.norm(dim=-1), torch.ones(3))
    for mode in ("query", "saliency", "random", "spread"):
        emb = embed_pruned(model, pixels, 0.5, mode=mode, query="construction cones", coverage=0.5)
        assert emb.shape == (3, model.embed_dim)
    with pytest.raises(ValueError):
        embed_pruned(model, pixels, 0.5, mode="query")
    with pytest.raises(ValueError):
        encode_pruned(model, pixels, torch.full((3, 4), n))


def test_early_pruned(model, pixels):
    full = model.clip.encode_image(pixels, normalize=True).detach()
    for layer in (1, 3):
        torch.testing.assert_close(encode_early_pruned(model, pixels, 1.0, layer=layer), full, atol=1e-5, rtol=0)
    seen = []
    blocks = model.clip.visual.transformer.resblocks
    hooks = [b.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1])) for b in blocks]
    try:
        for mode in ("saliency", "query", "random"):
            seen.clear()
            out = encode_early_pruned(model, pixels, 0.25, layer=2, mode=mode, query="cones", fuse=True)
            assert out.shape == (3, model.embed_dim)
            # block 1 runs through open_clip on all 85 tokens, block 2 is reimplemented (no hook),
            # blocks 3-6 see class + 21 kept + 1 fused token
            assert seen == [85, 23, 23, 23, 23]
        seen.clear()
        encode_early_pruned(model, pixels, 0.25, layer=2, fuse=False)
        assert seen == [85, 22, 22, 22, 22]
    finally:
        for h in hooks:
            h.remove()
    with pytest.raises(ValueError):
        encode_early_pruned(model, pixels, 0.25, layer=0)


# ---- heatmaps --------------------------------------------------------------------------------
def test_heatmap_size_and_outline():
    h, w = 180, 320
    frame = np.full((h, w, 3), 128, np.uint8)
    scores = np.zeros(84, np.float32)
    scores[13] = 1.0  # row 1, col 1 alone is kept
    sel = select_tokens(scores, k=1, grid=(7, 12))
    img = heatmap_image(frame, sel)
    assert isinstance(img, Image.Image) and img.size == (w + BAR_WIDTH, h)
    assert heatmap_image(frame, sel, colorbar=False).size == (w, h)
    px = np.asarray(heatmap_image(frame, sel, colorbar=False, grid_lines=False))
    pw, ph = w / 12, h / 7
    top_edge = px[round(ph), round(1.5 * pw)]
    assert tuple(top_edge) == OUTLINE
    # the kept patch's centre is bright (high score, not dimmed); a pruned one is darker
    kept_centre, pruned_centre = px[round(1.5 * ph), round(1.5 * pw)], px[round(5.5 * ph), round(8.5 * pw)]
    assert kept_centre.sum() > pruned_centre.sum()
    assert tuple(px[round(5.5 * ph), round(8.5 * pw)]) != OUTLINE


def test_heatmap_frames_shared_scale(model):
    frames = [np.random.default_rng(i).integers(0, 255, (90, 160, 3), dtype=np.uint8) for i in range(3)]
    sels = select_images(model, frames, "a zebra crossing", 0.25)
    imgs = heatmap_frames(frames, sels)
    assert [im.size for im in imgs] == [(160 + BAR_WIDTH, 90)] * 3
    with pytest.raises(ValueError):
        heatmap_frames(frames, sels[:2])
    assert input_box(model, (160, 90))[0] > 0


# ---- trained model: cones localisation --------------------------------------------------------
def construction_place() -> tuple[str, str]:
    """(attribute, value) whose render feature is construction; no attribute name spelled here."""
    for attr in default_schema():
        for v in attr.values:
            if v.render.get("feature") == "construction":
                return attr.name, v.name
    raise LookupError("schema has no construction feature")


def near_stages() -> tuple[str, list[str]]:
    """(attribute, values) of the stage values that draw the place near the camera."""
    for attr in default_schema():
        near = [v.name for v in attr.values if v.render.get("distance") in ("near", "at")]
        if near:
            return attr.name, near
    raise LookupError("schema has no near-distance stage")


# Cones cover ~5% of a frame, i.e. fewer patches than the 21 kept at 25%, so at that ratio even a
# perfect localiser cannot put most kept tokens on them (best achievable ~0.65 here). The test keeps
# k=3 tokens instead, where every kept token could be on the cones. Scenes are taken with the zone
# near the camera (entering / passing); a patch counts as on the cones when >= 2% of its pixels
# are masked. Scoring is leave-one-out occlusion with feature surgery against the schema's value
# phrases: the bundled model's raw patch-text scores are inverted (below chance;
# bench/RESULTS.md, section 7) while its global embedding aligns with text, and the surgery removes
# the drop every text shares. Measured with the bundled model (e0d9880a): 0.60 of the 3 kept tokens
# on the cones (0.57 without surgery), chance 0.16.
def test_cones_query_localises_cones():
    from core.synth import render_scene

    schema = default_schema()
    attr, value = construction_place()
    stage, near = near_stages()
    model = core.models.load_model()
    background = schema_background(model)
    shares, chance = [], []
    for seed in range(10):
        labels = schema.sample(random.Random(seed), fixed={attr: value, stage: near[seed % len(near)]})
        rgb, mask = render_scene(labels, seed=seed, size=(320, 180), return_mask=True)
        on_mask = patch_coverage(model, mask) >= 0.02
        if not on_mask.any():
            continue
        sel = select_query_aware(model, rgb, "construction cones", k=3, method="occlusion", background=background)
        assert sel.k == 3
        shares.append(on_mask[sel.indices].mean())
        chance.append(on_mask.mean())
    assert len(shares) >= 8
    share, base = float(np.mean(shares)), float(np.mean(chance))
    # Most kept tokens on the cones (measured 0.60; 0.57 without feature surgery; chance 0.16).
    assert share > 0.5 and share > 2.0 * base, f"kept share on cones {share:.2f}, chance {base:.2f}"
