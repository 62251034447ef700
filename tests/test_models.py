"""Model registry: bundled/file checkpoints, open_clip pretrained tags from a local cache, offline errors."""

import json

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import save_file

import core.models as M
from core.models.registry import CONFIGS
from core.train import save_model_dir

TINY_CFG = json.loads((CONFIGS / "scenescope-tiny.json").read_text())


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model("scenescope-tiny").eval()


def test_file_folder_round_trip(tmp_path):
    clip = _tiny()
    save_model_dir(clip, TINY_CFG, tmp_path / "m")
    model = M.load_model(f"file:{tmp_path / 'm'}")
    x = torch.rand(2, 3, *model.image_size)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(clip.encode_image(x), dim=-1).numpy()
    assert np.allclose(model.embed_batch(x), ref, atol=1e-5)
    emb = model.embed_images([np.zeros((180, 320, 3), np.uint8), np.full((90, 160, 3), 200, np.uint8)])
    assert emb.shape == (2, model.embed_dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert model.grid_size == (7, 12)


def test_file_weights_only_torch_checkpoint_with_config_beside(tmp_path):
    clip = _tiny(1)
    save_model_dir(clip, TINY_CFG, tmp_path / "m")
    (tmp_path / "m" / "open_clip_model.safetensors").unlink()
    torch.save(clip.state_dict(), tmp_path / "m" / "weights.pt")
    model = M.load_model(f"file:{tmp_path / 'm' / 'weights.pt'}")
    for k, v in clip.state_dict().items():
        assert torch.equal(model.clip.state_dict()[k], v)


def test_identity_tracks_weights(tmp_path):
    save_model_dir(_tiny(0), TINY_CFG, tmp_path / "a")
    save_model_dir(_tiny(1), TINY_CFG, tmp_path / "b")
    a, a2, b = (M.load_model(f"file:{tmp_path / n}") for n in ("a", "a", "b"))
    assert a.identity == a2.identity != b.identity


def test_unknown_and_missing_models_fail_clearly(tmp_path):
    with pytest.raises(M.ModelUnavailableError, match="unknown model"):
        M.load_model("nonsense")
    with pytest.raises(M.ModelUnavailableError, match="no such checkpoint"):
        M.load_model(f"file:{tmp_path / 'absent'}")
    (tmp_path / "noconf").mkdir()
    with pytest.raises(M.ModelUnavailableError, match="open_clip_config.json"):
        M.load_model(f"file:{tmp_path / 'noconf'}")
    with pytest.raises(M.ModelUnavailableError, match="no pretrained tag"):
        M.load_model("openclip:ViT-B-32/no-such-tag")


def test_pretrained_tag_offline_without_cache_says_how_to_supply(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(M.ModelUnavailableError) as err:
        M.load_model("openclip:ViT-B-32/laion2b_s34b_b79k", cache_dir=str(tmp_path))
    assert "file:" in str(err.value) and "cache" in str(err.value)


@pytest.mark.slow
def test_pretrained_tag_loads_from_local_hub_cache(tmp_path, monkeypatch):
    """The real `openclip:<arch>/<tag>` path, served from a locally saved Hugging Face cache."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    arch, tag = "ViT-B-32", "laion2b_s34b_b79k"
    repo = open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].strip("/")
    torch.manual_seed(3)
    ref = open_clip.create_model(arch).eval()
    commit = "0" * 40
    snap = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, snap / "open_clip_model.safetensors")

    model = M.load_model(f"openclip:{arch}/{tag}", cache_dir=str(tmp_path))
    assert model.identity.startswith(f"openclip:{arch}/{tag}@")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        expect = torch.nn.functional.normalize(ref.encode_image(x), dim=-1).numpy()
    assert np.allclose(model.embed_batch(x), expect, atol=1e-5)
    assert model.embed_texts(["a snowy road"]).shape == (1, 512)


def test_registry_lists_bundled_first():
    names = M.list_models()
    assert names[0] == "scenescope-tiny"
    assert "openclip:ViT-B-32/laion2b_s34b_b79k" in names
