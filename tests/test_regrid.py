"""Moving a trained ViT to another input size: the positional embedding follows the patch grid."""

import numpy as np
import open_clip
import torch

import core.models  # noqa: F401 - registers scenescope-tiny with open_clip
from core.train.regrid import regrid


def _tiny(size=(32, 64)):
    torch.manual_seed(0)
    clip, _, pre = open_clip.create_model_and_transforms("scenescope-tiny", image_resize_mode="squash",
                                                         force_image_size=size)
    return clip.eval(), pre


def test_regrid_to_the_same_size_changes_nothing():
    clip, _ = _tiny()
    same, _ = regrid(clip, "scenescope-tiny", (32, 64))
    x = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        assert torch.allclose(clip.encode_image(x), same.eval().encode_image(x), atol=1e-5)


def test_regrid_resamples_a_smooth_positional_embedding_onto_the_finer_grid():
    clip, _ = _tiny()
    gh, gw = clip.visual.grid_size  # 2 x 4
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    pos = clip.visual.positional_embedding.detach().clone()
    # Channel 0 varies linearly down the rows, channel 1 across the columns (cell-centre units).
    pos[1:, 0] = torch.tensor((rows.ravel() + 0.5) / gh, dtype=pos.dtype)
    pos[1:, 1] = torch.tensor((cols.ravel() + 0.5) / gw, dtype=pos.dtype)
    with torch.no_grad():
        clip.visual.positional_embedding.copy_(pos)
    grown, pre = regrid(clip, "scenescope-tiny", (64, 128))
    assert tuple(grown.visual.grid_size) == (4, 8)
    assert tuple(pre.transforms[0].size) == (64, 128)
    new = grown.visual.positional_embedding.detach()
    assert torch.equal(new[0], pos[0])  # the class token's position is not on the grid
    nh, nw = 4, 8
    r, c = np.meshgrid(np.arange(nh), np.arange(nw), indexing="ij")
    inner = ((r > 0) & (r < nh - 1) & (c > 0) & (c < nw - 1)).ravel()  # edges clamp; the interior is linear
    want_r, want_c = ((r + 0.5) / nh).ravel(), ((c + 0.5) / nw).ravel()
    np.testing.assert_allclose(new[1:, 0].numpy()[inner], want_r[inner], atol=0.03)
    np.testing.assert_allclose(new[1:, 1].numpy()[inner], want_c[inner], atol=0.03)
