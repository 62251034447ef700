"""Domain adaptation (issue 20): the gradient-reversal layer, adversarial alignment that makes the
domains harder to tell apart while the source task holds, and the adapted model as a ``file:``
model with its own identity. The target domain is made here: toy frames of another seed under a
strong tint, blur and noise (never the real fixtures)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageFilter
from toy import TOY_MODEL_CFG, write_toy_dataset, write_toy_model

from core.data import read_manifest
from core.train.adapt import (
    AdaptOptions,
    SensorAugment,
    _normalization,
    adapt,
    adapt_model,
    domain_probe_accuracy,
    embed,
    source_task_loss,
    target_images,
)
from core.train.data import epoch_subset_captions, label_codes, load_pixels
from core.train.grl import DomainClassifier, grad_reverse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shifted(im: Image.Image, seed: int) -> Image.Image:
    """The made-up target camera: blurrier, dimmer, green-tinted and much noisier."""
    im = im.convert("RGB").filter(ImageFilter.GaussianBlur(1.5))
    a = np.asarray(im).astype(float) * 0.7 + np.array([20, 70, 20])
    a += np.random.default_rng(seed).normal(0, 20, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("adapt")
    data = write_toy_dataset(tmp / "data", n=36, seed=0)
    other = write_toy_dataset(tmp / "other", n=36, seed=7)
    target = tmp / "target"
    target.mkdir()
    for i, p in enumerate(sorted((other / "frames").glob("*.png"))):
        if read_manifest(other).frames["split"].iloc[i] == "train":  # 24 frames, as many as the source
            shifted(Image.open(p), i).save(target / p.name)
    return {"data": data, "target": target, "model": write_toy_model(tmp / "source-model", seed=0), "tmp": tmp}


def test_gradient_reversal_negates_and_scales_the_gradient():
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 7, dtype=torch.float64)
    (reference,) = torch.autograd.grad((x * w).sum(), x)  # the gradient without the layer: w
    for lam in (1.0, 0.37, 0.0):
        y = grad_reverse(x, lam)
        assert torch.equal(y, x)  # identity forward
        (g,) = torch.autograd.grad((y * w).sum(), x)
        assert torch.equal(g, -lam * reference)
    # Chained with other layers, only the part of the graph before it is reversed.
    lin = torch.nn.Linear(7, 1).double()
    (g_plain,) = torch.autograd.grad(lin(x).sum(), x)
    (g_rev,) = torch.autograd.grad(lin(grad_reverse(x, 2.0)).sum(), x)
    torch.testing.assert_close(g_rev, -2.0 * g_plain, rtol=0, atol=0)
    lin(grad_reverse(x, 3.0)).sum().backward()
    for p in lin.parameters():  # the classifier's own gradient is not reversed
        (plain,) = torch.autograd.grad(lin(x).sum(), p)
        torch.testing.assert_close(p.grad, plain)


def test_domain_classifier_token_loss_is_the_mean_over_tokens():
    torch.manual_seed(0)
    clf = DomainClassifier(8, hidden=4)
    tokens = torch.randn(3, 5, 8)
    domain = torch.tensor([0.0, 1.0, 1.0])
    loss, acc = clf.loss(tokens, domain, 1.0)
    p = torch.sigmoid(clf(tokens)).detach().numpy()
    y = np.repeat(domain.numpy()[:, None], 5, axis=1)
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()  # binary cross-entropy by hand
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(acc) == pytest.approx(((p > 0.5) == y).mean())


def test_adversarial_alignment_hides_the_domain_while_the_source_task_holds(domains):
    data = read_manifest(domains["data"])
    train = data.split("train")
    preprocess = open_clip.image_transform((112, 192), is_train=False, resize_mode="squash")
    pixels = load_pixels(train, preprocess, workers=1, progress=False)
    target = torch.stack([preprocess(im) for im in target_images([domains["target"]])]).half()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    captions, mentions = epoch_subset_captions(train, data.schema, 0, 0)
    codes = label_codes(train, data.schema)
    torch.manual_seed(0)
    start = open_clip.CLIP(**TOY_MODEL_CFG)
    probe_before = domain_probe_accuracy(embed(start, pixels), embed(start, target))
    loss_before = source_task_loss(start, pixels, captions, mentions, codes, tokenizer)
    assert probe_before > 0.85  # the made-up camera is easy to tell apart to begin with

    runs = {}
    for lam in (0.0, 1.0):  # lambda 0: the same run, the classifiers train but the encoder ignores them
        clip = copy.deepcopy(start)
        log = adapt_model(clip, tokenizer, train, pixels, target,
                          AdaptOptions(epochs=5, batch_size=8, lr=3e-4, head_lr=1e-2, domain_lambda=lam,
                                       augment=False))
        runs[lam] = {"log": log, "probe": domain_probe_accuracy(embed(clip, pixels), embed(clip, target)),
                     "loss": source_task_loss(clip, pixels, captions, mentions, codes, tokenizer)}
    free, adversarial = runs[0.0], runs[1.0]
    # Without reversal the classifiers end up near certain; with it they are pushed towards chance.
    assert free["log"][-1]["domain_acc_pooled"] > 0.9
    assert adversarial["log"][-1]["domain_acc_pooled"] < free["log"][-1]["domain_acc_pooled"] - 0.15
    assert adversarial["log"][-1]["domain_acc_tokens"] < free["log"][-1]["domain_acc_tokens"] - 0.03
    # A fresh linear probe (scikit-learn) agrees: the domains are harder to separate.
    assert adversarial["probe"] < min(probe_before, free["probe"]) - 0.1
    # ...while the source task holds: no worse than at the start, and about as good as without reversal.
    assert adversarial["loss"] < loss_before
    assert adversarial["loss"] < free["loss"] * 1.03


def test_sensor_augment_is_seeded_and_stays_in_range(domains):
    preprocess = open_clip.image_transform((112, 192), is_train=False, resize_mode="squash")
    mean, std = _normalization(preprocess)
    x = torch.stack([preprocess(im) for im in target_images([domains["target"]], max_frames=4)])
    aug = SensorAugment(mean, std)
    a, b, c = aug(x, 1), aug(x, 1), aug(x, 2)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    raw = a * std + mean
    assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5


def test_target_images_read_folders_and_refuse_bad_input(domains, tmp_path):
    assert len(target_images([domains["target"]], max_frames=5)) == 5
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="0 target frames"):
        target_images([tmp_path])
    with pytest.raises(ValueError, match="notes.txt: not an image"):
        target_images([tmp_path / "notes.txt"])
    with pytest.raises(FileNotFoundError, match="no such target"):
        target_images([tmp_path / "missing"])


def test_adapted_model_loads_through_the_registry_with_its_own_identity(domains, capsys):
    from core.cli import main
    from core.models import load_model

    source = f"file:{domains['model']}"
    out = domains["tmp"] / "adapted"
    assert main(["adapt", "--model", source, "--target", str(domains["target"]), "--data", str(domains["data"]),
                 "--out", str(out), "--epochs", "1", "--lambda", "1", "--lr", "3e-4", "--batch-size", "8"]) == 0
    printed = capsys.readouterr()
    model = load_model(f"file:{out}")
    assert f"load it as file:{out.resolve()}; identity {model.identity}" in printed.out
    assert "epoch 1/1: loss" in printed.err
    assert model.identity != load_model(source).identity
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["identity"] == model.identity  # the card names the identity it loads with
    assert summary["target"] == [str(Path(domains["target"]).resolve())]
    assert summary["options"]["seed"] == 0 and summary["finished"]
    for side in ("before", "after"):
        report = summary[side]
        assert report["frames"] == 24
        assert set(report["votes"]) == set(read_manifest(domains["data"]).schema.names)
        for shares in report["votes"].values():
            assert sum(shares.values()) == pytest.approx(1.0)
    card = (out / "MODEL_CARD.md").read_text()
    assert "Before / after on the target footage" in card and model.identity in card
    # Run again with the same arguments: the finished state is resumed, nothing retrains, and
    # the same weights (the same identity) come out.
    options = AdaptOptions(epochs=1, batch_size=8, lr=3e-4, domain_lambda=1.0)  # the CLI's run's
    again = adapt(domains["data"], [domains["target"]], source, out, options)
    assert again.identity == model.identity
    assert json.loads((out / "adapt.json").read_text())["before"] == summary["before"]
    with pytest.raises(ValueError, match="other inputs or options"):  # a state is not resumed with other options
        adapt(domains["data"], [domains["target"]], source, out, AdaptOptions(epochs=2, batch_size=8, lr=3e-4))
