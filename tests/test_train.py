"""Fine-tuning: a tiny run lowers the loss, captions fit CLIP's context, freezing/LoRA/unfreezing
choose which parameters get gradients, WiSE-FT blends weights, and a stopped run resumes exactly."""

from __future__ import annotations

import math

import open_clip
import pytest
import torch
from safetensors.torch import load_file
from toy import TOY_MODEL_CFG, write_toy_dataset, write_toy_model

from core.schema import default_schema
from core.train.finetune import (
    OPTION_HELP,
    FinetuneOptions,
    auto_batch_size,
    caption_token_count,
    check_captions,
    finetune,
    interpolate,
    set_trainable,
    tower_of,
    trainable_at,
    wise_ft,
)
from core.train.lora import add_lora, lora_parameter_names, merge_lora
from core.train.model_defaults import finetune_defaults

FAST = {"epochs": 3, "lr": 1e-3, "batch_size": 8, "workers": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_dataset(root / "data", n=36), write_toy_model(root / "base")


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory):
    """One uninterrupted run shared by the tests that need it (training is the slow part)."""
    data, base = toy
    return finetune(data, f"file:{base}", tmp_path_factory.mktemp("ref") / "model", FinetuneOptions(**FAST))


def toy_clip(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.CLIP(**TOY_MODEL_CFG)


def grads_after_one_step(model: torch.nn.Module) -> set[str]:
    torch.manual_seed(1)
    x = torch.randn(4, 3, 112, 192)
    tokens = open_clip.tokenize(["a road", "fog", "snow on the road", "a city street"])
    img, txt, scale = model(x, tokens)[:3]
    open_clip.ClipLoss()(img, txt, scale).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


# ---- training ------------------------------------------------------------------------------------
def test_tiny_run_lowers_loss_and_writes_a_registry_model(toy, reference):
    from core.models import load_model

    data, base = toy
    result = reference
    losses = [row["loss"] for row in result.log]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert all("val_f1" in row for row in result.log) and result.val_f1_before is not None
    assert (result.model_dir / "open_clip_model.safetensors").is_file()
    card = (result.model_dir / "MODEL_CARD.md").read_text()
    assert "lr | 0.001" in card and "Seed 0" in card and str(data.resolve()) in card
    model = load_model(result.model_name)
    torch.set_num_threads(1)  # load_model takes every core; results depend on the thread count
    assert model.identity.startswith("file:model@") and result.images_per_s > 0
    assert result.peak_rss_mb > 0
    # the new file: model carries its base's fine-tuning defaults (here the paper's lr, as its base has none)
    lr, source = finetune_defaults(result.model_name)["lr"]
    assert lr == 1e-5 and f"from its base model file:{base}" in source and result.model_defaults == {}


def test_stopped_run_resumes_to_the_uninterrupted_result(toy, reference, tmp_path):
    data, base = toy
    opts = FinetuneOptions(**FAST)
    ref = reference
    steps = {"n": 0}

    def stop_in_epoch_two() -> bool:
        steps["n"] += 1
        return steps["n"] == 5  # 3 steps per epoch: stop inside the second epoch

    first = finetune(data, f"file:{base}", tmp_path / "run", opts, should_stop=stop_in_epoch_two)
    assert first.stopped and first.model_dir is None
    second = finetune(data, f"file:{base}", tmp_path / "run", opts)
    a = load_file(ref.model_dir / "open_clip_model.safetensors")
    b = load_file(second.model_dir / "open_clip_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert [r["loss"] for r in ref.log] == pytest.approx([r["loss"] for r in second.log], rel=1e-5)


def test_resume_refuses_other_options(toy, tmp_path):
    data, base = toy
    stop = finetune(data, f"file:{base}", tmp_path / "m", FinetuneOptions(**FAST), should_stop=lambda: True)
    assert stop.stopped
    with pytest.raises(ValueError, match="other options"):
        finetune(data, f"file:{base}", tmp_path / "m", FinetuneOptions(**{**FAST, "lr": 2e-3}))


# ---- captions ------------------------------------------------------------------------------------
def test_every_compressed_caption_fits_77_tokens():
    schema = default_schema()
    # Upper bound over every label set and paraphrase: the longest phrase of each attribute plus a
    # comma between parts plus the start/end tokens.
    longest = [max(caption_token_count(p) - 2 for v in a.values for p in v.phrases) for a in schema.attributes]
    bound = sum(longest) + (len(longest) - 1) + 2
    assert bound <= 77, f"the longest possible caption takes {bound} tokens"
    import random

    rng = random.Random(0)
    for _ in range(200):
        check_captions([schema.caption(schema.sample(rng), rng)])


def test_check_captions_refuses_a_long_caption():
    check_captions(["fog, a highway"])
    with pytest.raises(ValueError, match="tokens"):
        check_captions([", ".join(["a very foggy multi-lane freeway at night"] * 12)])


# ---- which parameters receive gradients -----------------------------------------------------------
def test_freeze_text_tower_only_vision_and_vision_head_get_gradients():
    model = toy_clip()
    set_trainable(model, 0, FinetuneOptions(freeze_text=True))
    got = grads_after_one_step(model)
    assert got and all(tower_of(n) != "text" for n in got)
    assert "text_projection" not in got and "visual.proj" in got
    assert any(n.startswith("visual.transformer.resblocks.0.") for n in got)


def test_freeze_first_blocks():
    model = toy_clip()
    set_trainable(model, 0, FinetuneOptions(freeze_blocks=1))
    got = grads_after_one_step(model)
    assert not any("resblocks.0." in n for n in got)
    assert not {"visual.conv1.weight", "token_embedding.weight", "positional_embedding"} & got
    assert any(n.startswith("visual.transformer.resblocks.1.") for n in got)
    assert any(n.startswith("transformer.resblocks.1.") for n in got)


def test_gradual_unfreezing_schedule():
    opts = FinetuneOptions(epochs=6, unfreeze_text_at=3, unfreeze_vision_at=5)
    text, vision = "transformer.resblocks.0.mlp.c_fc.weight", "visual.transformer.resblocks.0.mlp.c_fc.weight"
    assert [trainable_at(text, e, opts) for e in range(6)] == [False, False, True, True, True, True]
    assert [trainable_at(vision, e, opts) for e in range(6)] == [False] * 4 + [True] * 2
    assert all(trainable_at("visual.proj", e, opts) for e in range(6))  # heads train from the start
    model = toy_clip()
    set_trainable(model, 0, opts)
    got = grads_after_one_step(model)
    assert got <= {"visual.proj", "text_projection", "logit_scale"} and "visual.proj" in got
    model.zero_grad(set_to_none=True)
    set_trainable(model, 2, opts)
    assert any(n.startswith("transformer.") for n in grads_after_one_step(model))


def test_gradual_unfreezing_in_training_keeps_the_text_tower_until_its_epoch(toy, tmp_path):
    data, base = toy
    from core.train import loop

    snapshots = []
    original = loop.save_state

    def spy(path, clip, *args, **kwargs):  # noqa: ANN202
        snapshots.append({k: v.detach().clone() for k, v in clip.state_dict().items()})
        return original(path, clip, *args, **kwargs)

    loop.save_state = spy
    try:
        finetune(data, f"file:{base}", tmp_path / "m",
                 FinetuneOptions(**{**FAST, "epochs": 2, "unfreeze_text_at": 2, "validate": False}))
    finally:
        loop.save_state = original
    start = load_file(base / "open_clip_model.safetensors")
    key = "transformer.resblocks.0.mlp.c_fc.weight"
    assert torch.equal(snapshots[0][key], start[key])  # epoch 1: frozen
    assert not torch.equal(snapshots[1][key], start[key])  # epoch 2: training
    assert not torch.equal(snapshots[0]["visual.proj"], start["visual.proj"])


def test_lora_trains_only_adapters_and_merges_to_plain_weights():
    model = toy_clip()
    keys = set(model.state_dict())
    wrapped = add_lora(model, rank=4, alpha=8)
    set_trainable(wrapped, 0, FinetuneOptions(lora_rank=4))
    for n, p in wrapped.named_parameters():  # B starts at zero: give the A matrices a gradient path
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)
    got = grads_after_one_step(wrapped)
    assert got and all("lora_" in n for n in got)
    assert any(".attn." in n for n in got)  # attention (in_proj via MultiheadAttention) is adapted
    assert set(lora_parameter_names(wrapped)) >= got
    x = torch.randn(2, 3, 112, 192)
    with torch.no_grad():
        before = wrapped.encode_image(x)
        merged = merge_lora(wrapped)
        after = merged.encode_image(x)
    assert set(merged.state_dict()) == keys
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)


def test_lora_finetune_run_leaves_frozen_weights_alone(toy, tmp_path):
    data, base = toy
    res = finetune(data, f"file:{base}", tmp_path / "m", FinetuneOptions(**{**FAST, "epochs": 1, "lora_rank": 4, "validate": False}))
    start = load_file(base / "open_clip_model.safetensors")
    out = load_file(res.model_dir / "open_clip_model.safetensors")
    assert set(out) == set(start)
    assert torch.equal(out["visual.conv1.weight"], start["visual.conv1.weight"])  # not a LoRA target
    assert torch.equal(out["logit_scale"], start["logit_scale"])


# ---- WiSE-FT and helpers -------------------------------------------------------------------------
def test_interpolate_and_wise_ft_pick_the_best_alpha():
    theta0 = {"w": torch.zeros(3), "step": torch.tensor(1)}
    theta1 = {"w": torch.ones(3) * 4, "step": torch.tensor(7)}
    mid = interpolate(theta0, theta1, 0.25)
    assert torch.equal(mid["w"], torch.ones(3)) and int(mid["step"]) == 7

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    start = {"weight": torch.zeros(1, 1)}
    # Best score where the weight is 0.5 (alpha 0.5); alpha 1 is known, so it is not re-scored.
    calls = []

    def score(m):  # noqa: ANN202
        calls.append(float(m.weight.detach()))
        return -abs(float(m.weight.detach()) - 0.5)

    alpha, scores = wise_ft(model, start, (0.0, 0.25, 0.5, 0.75, 1.0), score, known={1.0: -0.5})
    assert alpha == 0.5 and float(model.weight.detach()) == pytest.approx(0.5)
    assert 1.0 not in calls and len(scores) == 5


def test_options_validation_and_auto_batch():
    with pytest.raises(ValueError, match="unknown fine-tuning options"):
        FinetuneOptions.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="alphas"):
        FinetuneOptions(wise_alphas=(0.5, 2.0)).check()
    bs = auto_batch_size(toy_clip(), n_train=1000)
    assert 2 <= bs <= 128 and bs & (bs - 1) == 0
    assert auto_batch_size(toy_clip(), n_train=20) <= 5
    assert FinetuneOptions().lr is None and FinetuneOptions().epochs == 8  # lr: the start model's default
    assert math.isclose(FinetuneOptions().weight_decay, 0.1)


def test_option_help_names_real_options_and_reaches_the_cli(capsys):
    from dataclasses import fields

    from core.cli import main

    assert set(OPTION_HELP) <= {f.name for f in fields(FinetuneOptions)}
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse rewraps the help text
    assert "converged pretrained CLIP" in out and "+5.4" in out


def test_crash_while_saving_a_state_leaves_the_previous_epoch_loadable(tmp_path, monkeypatch):
    from core.train import checkpoint

    def fresh(seed: int):  # noqa: ANN202
        model = toy_clip(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    first, opt, sched = fresh(0)
    checkpoint.save_state(tmp_path, first, opt, sched, 1, {"log": []})
    second, opt2, sched2 = fresh(1)

    def crash(*args, **kwargs):  # noqa: ANN202
        raise KeyboardInterrupt  # killed after the epoch-2 files, before state.json

    monkeypatch.setattr(checkpoint, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_state(tmp_path, second, opt2, sched2, 2, {"log": []})
    monkeypatch.undo()

    loaded, opt3, sched3 = fresh(2)
    meta = checkpoint.load_state(tmp_path, loaded, opt3, sched3)
    assert meta["epoch"] == 1
    for k, v in first.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    checkpoint.save_state(tmp_path, second, opt2, sched2, 2, {"log": []})
    assert sorted(p.name for p in tmp_path.glob("weights*")) == ["weights-e002.safetensors"]


def test_attribute_loss_trains_heads_resumes_and_leaves_a_plain_model(toy, tmp_path):
    from core.data import read_manifest
    from core.train.data import epoch_subset_captions, label_codes
    from core.train.loop import TrainConfig, train_contrastive

    data, _ = toy
    schema = default_schema()
    ds = read_manifest(data).split("train")
    pixels = torch.rand(len(ds), 3, 112, 192)
    codes = label_codes(ds, schema)
    tok = open_clip.get_tokenizer("ViT-B-32")
    cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=8, attribute_loss=1.0)

    def run(state, stop=None):  # noqa: ANN001, ANN202
        model = toy_clip(3)
        log = train_contrastive(model, pixels, lambda e: epoch_subset_captions(ds, schema, 0, e), tok, cfg,
                                state_dir=state, should_stop=stop, label_codes=codes)
        return model, log

    plain = toy_clip(3)
    full, log = run(tmp_path / "a")
    assert set(full.state_dict()) == set(plain.state_dict())  # heads removed after the run
    state = load_file(tmp_path / "a" / "weights-e002.safetensors")
    heads = [k for k in state if k.startswith("attribute_heads.")]
    assert len(heads) == len(schema.attributes)  # checkpointed with the model, so resumes carry them
    n = {"steps": 0}

    def stop() -> bool:
        n["steps"] += 1
        return n["steps"] == len(ds) // 8 + 1  # inside epoch two

    run(tmp_path / "b", stop)
    after_one = load_file(tmp_path / "b" / "weights-e001.safetensors")
    # The heads learn: their prototypes moved between epochs one and two.
    assert any(not torch.equal(after_one[k], state[k]) for k in heads)
    resumed, _ = run(tmp_path / "b")
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="label_codes"):
        train_contrastive(toy_clip(), pixels, lambda e: ["a road"] * len(ds), tok, cfg)
    # The heads' loss reaches the towers: the same run without it ends elsewhere.
    plain_run = toy_clip(3)
    train_contrastive(plain_run, pixels, lambda e: epoch_subset_captions(ds, schema, 0, e), tok,
                      TrainConfig(epochs=2, lr=1e-3, batch_size=8), label_codes=codes)
    assert not torch.allclose(plain_run.visual.proj, full.visual.proj, atol=1e-4)


def test_attribute_heads_weigh_each_attribute_and_check_the_count():
    from core.train.loop import AttributeHeads

    torch.manual_seed(0)
    heads = AttributeHeads(8, [3, 2])
    img, codes = torch.randn(5, 8), torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1]])
    per = []
    for a in range(2):
        logits = heads.scale * torch.nn.functional.normalize(img, dim=-1) @ \
            torch.nn.functional.normalize(heads.prototypes[a], dim=-1).T
        per.append(torch.nn.functional.cross_entropy(logits, codes[:, a]))
    assert torch.isclose(heads.loss(img, codes), (per[0] + per[1]) / 2)
    heads.weights = (3.0, 1.0)
    assert torch.isclose(heads.loss(img, codes), (3 * per[0] + per[1]) / 4)
    heads.weights = (1.0,)
    with pytest.raises(ValueError, match="1 attribute loss weights for 2 attributes"):
        heads.loss(img, codes)


def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch):
    from core.train import resources

    monkeypatch.setattr(resources, "cpu_has_bf16", lambda: False)
    assert resources.resolve_precision("auto", "cpu") == "fp32"  # emulated bf16 is slower than fp32
    monkeypatch.setattr(resources, "cpu_has_bf16", lambda: True)
    assert resources.resolve_precision("auto", "cpu") == "bf16"
    assert resources.resolve_precision("fp32", "cpu") == "fp32"
