"""The VLM's multiple-choice ranking loss (core.vqa.train_mc, ``train-vqa --mc-loss``): its batched option
scorer equals the inference one, its options are the question bank's, and a tiny run with it ranks the
right option higher than the same run without it."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from toy import write_toy_dataset, write_toy_model

TINY = {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128}
VOCAB = 300


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict:
    """One tiny stage-2 run without and one with the loss, from the same initial weights, on the train
    questions of a few dozen toy frames (one feature cache for both)."""
    from core.data import read_manifest
    from core.models import load_model
    from core.vqa.questions import question_bank
    from core.vqa.train_data import Example, FeatureCache, frame_rows, qa_pair
    from core.vqa.train_loop import Stage, run_stages
    from core.vqa.train_mc import choice_of
    from core.vqa.train_vlm import _batch_loss
    from core.vqa.vlm import VLM, VLMConfig, train_tokenizer

    tmp = tmp_path_factory.mktemp("vlm_mc")
    data = write_toy_dataset(tmp / "data", n=24, size=(112, 64))
    tower = load_model(f"file:{write_toy_model(tmp / 'tower')}")
    ds = read_manifest(data)
    where = frame_rows(ds.frames)
    rows = [r for r in question_bank(ds.frames.to_dict("records")) if r["split"] == "train"]
    frames = sorted({where[(r["scene"], r["frame"])] for r in rows})
    pairs = [qa_pair(r, ds.schema) for r in rows]
    examples = [Example(frames.index(where[(r["scene"], r["frame"])]), q, a, *choice_of(r, ds.schema, a))
                for r, (q, a) in zip(rows, pairs, strict=True)][:96]
    tok = train_tokenizer([t for p in pairs for t in p], VOCAB)
    cfg = VLMConfig(vision_model=tower.name, vision_identity=tower.identity, vision_dim=int(tower.embed_dim),
                    vocab_size=tok.get_vocab_size(), pooled=True, recovery_heads=2, **TINY)
    models, cache = {}, None
    for name, weight in (("lm", 0.0), ("mc", 1.0)):
        torch.manual_seed(0)
        vlm = models[name] = VLM(cfg, tower, tok)
        cache = cache or FeatureCache(vlm, [ds.abspath(ds.frames.iloc[i]["path"]) for i in frames])
        groups = [{"params": [p for p in vlm.parameters()], "lr": 3e-3}]
        run_stages(vlm, cache, [Stage("qa", "qa", 6, groups, examples)], batch_size=16, seed=0,
                   batch_loss=partial(_batch_loss, mc_weight=weight))
    return {"models": models, "cache": cache, "examples": [e for e in examples if e.options], "rows": rows,
            "schema": ds.schema}


def _prefix(vlm, cache, batch) -> torch.Tensor:
    frames = cache.patches[[ex.frame for ex in batch]]
    return vlm.visual_prefix(frames, cache.indices(batch, frames, vlm.cfg.keep_ratio, 0))


def test_options_are_the_banks_without_the_no_answer(runs: dict) -> None:
    from core.vqa.train_data import qa_pair
    from core.vqa.train_mc import choice_of

    schema = runs["schema"]
    seen = set()
    for r in runs["rows"]:
        q, a = qa_pair(r, schema)
        opts, right = choice_of(r, schema, a)
        if r["type"] == "multiple_choice" and a != schema.qa.no_answer:
            assert list(opts) == [o for o in r["options"] if o != schema.qa.no_answer] and opts[right] == a
        elif r["type"] == "yes_no":
            assert opts == (schema.qa.yes, schema.qa.no) and opts[right] == r["answer"]
        else:
            assert (opts, right) == ((), -1)
        seen.add(r["type"])
    assert {"multiple_choice", "yes_no", "free_form"} <= seen


def test_batched_scorer_equals_the_inference_scorer_and_has_gradients(runs: dict) -> None:
    from core.vqa.train_mc import option_logliks, option_scores

    vlm, cache = runs["models"]["mc"], runs["cache"]
    batch = runs["examples"][:6]
    prefix = _prefix(vlm, cache, batch)
    prompts, options = [vlm.prompt_ids(ex.question) for ex in batch], [ex.options for ex in batch]
    got = option_logliks(vlm, prefix, prompts, options)
    scores = option_scores(vlm, prefix, prompts, options)
    for j, ex in enumerate(batch):
        one = prefix[j : j + 1].detach()
        np.testing.assert_allclose(got[j].detach().numpy(), vlm.option_logliks(one, ex.question, ex.options),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(scores[j].detach().numpy(), vlm.option_scores(one, ex.question, ex.options),
                                   rtol=1e-4, atol=1e-4)
    vlm.zero_grad()
    torch.stack([s.sum() for s in got]).sum().backward()
    assert float(vlm.projector[0].weight.grad.abs().sum()) > 0 and float(vlm.lm.lm_head.weight.grad.abs().sum()) > 0
    vlm.zero_grad()


@torch.no_grad()
def test_the_loss_ranks_the_right_option_higher(runs: dict) -> None:
    from core.vqa.train_mc import mc_loss, option_scores

    cache, examples = runs["cache"], runs["examples"]
    out = {}
    for name, vlm in runs["models"].items():
        vlm.eval()
        prefix = _prefix(vlm, cache, examples)
        scores = option_scores(vlm, prefix, [vlm.prompt_ids(ex.question) for ex in examples],
                                [ex.options for ex in examples])
        picked = np.mean([int(s.argmax()) == ex.correct for s, ex in zip(scores, examples, strict=True)])
        out[name] = (float(mc_loss(vlm, prefix, examples)), float(picked))
    assert len(examples) >= 40
    assert out["mc"][0] < out["lm"][0] - 0.05, out
    assert out["mc"][1] > out["lm"][1], out


def test_clip_questions_get_no_ranking_loss(runs: dict) -> None:
    """Prediction and behavior rows (about a clip; the VLM sees one frame) train the LM loss only: no
    options, and a batch's ranking loss is the same with or without them."""
    import random

    from core.vqa.questions import clip_questions
    from core.vqa.train_data import Example, qa_pair
    from core.vqa.train_mc import choice_of, mc_loss

    schema, vlm, cache = runs["schema"], runs["models"]["mc"], runs["cache"]
    # A three-frame clip of one valid frame's labels: its bank rows (a behavior multiple choice at least).
    labels = [schema.sample(random.Random(0))] * 3
    clip_rows = clip_questions(schema, labels, random.Random(0), scene="c0")
    assert {r["type"] for r in clip_rows} >= {"multiple_choice"} and {r["kind"] for r in clip_rows} == {"clip"}
    clips = []
    for r in clip_rows:
        q, a = qa_pair(r, schema)
        assert choice_of(r, schema, a) == ((), -1)
        scene_form = choice_of({**r, "kind": "scene"}, schema, a)  # the same row as a scene's would be scored
        assert r["type"] == "free_form" or len(scene_form[0]) >= 2
        clips.append(Example(0, q, a, *choice_of(r, schema, a)))
    scenes = runs["examples"][:4]
    with torch.no_grad():
        only = mc_loss(vlm, _prefix(vlm, cache, clips), clips)
        mixed = mc_loss(vlm, _prefix(vlm, cache, clips + scenes), clips + scenes)
        alone = mc_loss(vlm, _prefix(vlm, cache, scenes), scenes)
    assert float(only) == 0.0 and float(alone) > 0
    np.testing.assert_allclose(float(mixed), float(alone), rtol=1e-5)
