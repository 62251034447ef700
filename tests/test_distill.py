"""Self-distillation for token-pruned encoding: pruned embeddings move onto the full-token ones,
the full-token embeddings and the text tower stay put, and a stopped run resumes exactly."""

from __future__ import annotations

import open_clip
import pytest
import torch
from toy import TOY_MODEL_CFG

from core.tokens.select import spread_scores
from core.train.distill import DistillConfig, distill_pruned, embed_spread, kept_indices, teacher_embeddings

GRID = (7, 12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_clip(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.CLIP(**TOY_MODEL_CFG)


def pixels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 112, 192, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_kept_indices_counts_order_and_patterns():
    g = torch.Generator().manual_seed(0)
    spread = kept_indices(GRID, 5, 0.25, True, g)
    assert spread.shape == (5, 21)
    assert (spread == spread[0]).all()  # one pattern for every image
    top = set(torch.from_numpy(spread_scores(GRID)).argsort(descending=True)[:21].tolist())
    assert set(spread[0].tolist()) == top
    rand = kept_indices(GRID, 5, 0.5, False, g)
    assert rand.shape == (5, 42)
    assert (rand.diff(dim=1) > 0).all()  # ascending, no repeats
    assert len({tuple(r) for r in rand.tolist()}) == 5  # a subset per image


def test_distillation_pulls_pruned_embeddings_onto_the_full_ones(tmp_path):
    import random

    from core.models import load_model
    from core.schema import default_schema
    from core.synth import render_scene

    # The bundled model on real synthetic scenes: a random toy model embeds every image alike, so
    # pruning would cost it nothing to recover.
    model = load_model("scenescope-tiny")
    clip = model.clip.float()
    schema = default_schema()
    px = model.preprocess_batch(
        [render_scene(schema.sample(random.Random(i)), seed=i, size=(320, 180)) for i in range(32)])
    text_before = {k: v.clone() for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    teacher = teacher_embeddings(clip.visual, px)

    def gap() -> float:
        # Tokens dropped before block 1: the bundled model is distilled with the read-in, so this
        # pattern leaves it a gap to close.
        return float(1 - (embed_spread(clip, px, 0.25, read_in=False) * teacher).sum(-1).mean())

    before = gap()
    log = distill_pruned(clip, px, DistillConfig(epochs=4, lr=3e-4, batch_size=16, keep_ratios=(0.25,),
                                                 spread_share=1.0, read_in=False, precision="fp32"),
                         state_dir=tmp_path / "state")
    after = gap()
    assert after < 0.6 * before, (before, after)
    with torch.no_grad():
        full = torch.nn.functional.normalize(clip.encode_image(px), dim=-1)
    assert float((full * teacher).sum(-1).mean()) > 0.95  # the anchor keeps full-token embeddings
    for k, v in text_before.items():
        torch.testing.assert_close(clip.state_dict()[k], v)  # only the image tower trains
    assert all(p.requires_grad for p in clip.parameters())  # trainability restored
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert (tmp_path / "state" / "teacher.safetensors").is_file()


def test_stopped_distillation_resumes_to_the_uninterrupted_result(tmp_path):
    px = pixels(32, seed=1)
    cfg = DistillConfig(epochs=3, lr=1e-3, batch_size=16, precision="fp32")
    whole = toy_clip(1)
    distill_pruned(whole, px, cfg, state_dir=tmp_path / "a")

    with pytest.raises(_Killed):  # dies in epoch 3, after epoch 2's checkpoint
        distill_pruned(toy_clip(1), px, cfg, state_dir=tmp_path / "b", on_epoch=lambda e, row: _stop_after(e, 2))
    # A fresh process: new weights, the teacher comes from the state folder, not from these weights.
    resumed = toy_clip(99)
    distill_pruned(resumed, px, cfg, state_dir=tmp_path / "b")
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)


class _Killed(Exception):
    pass


def _stop_after(epoch: int, last: int) -> dict:
    if epoch > last:
        raise _Killed
    return {}


def test_teacher_count_mismatch_is_refused(tmp_path):
    clip = toy_clip()
    distill_pruned(clip, pixels(16), DistillConfig(epochs=1, batch_size=16, precision="fp32"),
                   state_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="teacher embeddings"):
        distill_pruned(clip, pixels(20), DistillConfig(epochs=2, batch_size=16), state_dir=tmp_path / "s")
