"""The small VLM (core.vqa.vlm) and its two-stage training (core.vqa.train_vlm), on a toy tower and
a few dozen 112x64 toy frames: training lowers the loss, full keep equals no selection, generation
equals a hand-rolled greedy loop, multiple choice picks the most likely option, save/load is exact."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toy import write_toy_dataset, write_toy_model

TINY = {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "vocab_size": 300}
QUESTION = "What is the weather?"


@dataclass
class Trained:
    data: Path
    out: Path
    vision: str
    report: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Trained:
    from core.vqa.train_vlm import train_vqa

    tmp = tmp_path_factory.mktemp("vlm")
    data = write_toy_dataset(tmp / "data", n=24, size=(112, 64))
    vision = f"file:{write_toy_model(tmp / 'tower')}"
    report = train_vqa(data, tmp / "vlm", vision=vision, text_epochs=1, stage1_epochs=1, stage2_epochs=2,
                       max_rows=120, batch_size=16, seed=0, **TINY)
    return Trained(data, tmp / "vlm", vision, report)


@pytest.fixture(scope="module")
def vlm(trained: Trained):
    from core.vqa.vlm_folder import load_vlm

    return load_vlm(trained.out)


def _pixels(vlm, data: Path, i: int = 0) -> torch.Tensor:
    with Image.open(data / "frames" / f"{i:04d}.png") as im:
        return vlm.vision.preprocess_batch([im.convert("RGB")])


def test_training_lowers_the_qa_loss(trained: Trained, vlm) -> None:
    from core.data import read_manifest
    from core.vqa.questions import question_bank
    from core.vqa.train_data import Example, FeatureCache, frame_rows, qa_pair
    from core.vqa.train_vlm import mean_loss
    from core.vqa.vlm import VLM

    r = trained.report
    assert r["train_rows"] == 120 and r["frames"] > 0
    assert [len(r["stages"][s]) for s in ("text", "align", "qa")] == [1, 1, 2]
    assert r["loss_after"] < r["loss_before"] - 0.5
    assert r["stages"]["qa"][-1] < r["stages"]["qa"][0]
    # Independently of the report: the saved model beats an untrained one of the same shape on
    # training questions rebuilt from the manifest.
    ds = read_manifest(trained.data)
    where = frame_rows(ds.frames)
    rows = [r for r in question_bank(ds.frames.to_dict("records")) if r["split"] == "train"][:24]
    frames = sorted({where[(r["scene"], r["frame"])] for r in rows})
    cache = FeatureCache(vlm, [ds.abspath(ds.frames.iloc[i]["path"]) for i in frames])
    examples = [Example(frames.index(where[(r["scene"], r["frame"])]), *qa_pair(r, ds.schema)) for r in rows]
    torch.manual_seed(1)
    fresh = VLM(vlm.cfg, vlm.vision, vlm.tokenizer).eval()
    assert mean_loss(vlm, cache, examples) < mean_loss(fresh, cache, examples) - 0.5
    card = (trained.out / "MODEL_CARD.md").read_text()
    assert "seed: 0" in card and trained.vision in json.loads((trained.out / "training.json").read_text())["vision"]


def test_full_keep_equals_no_selection(trained: Trained, vlm) -> None:
    px = _pixels(vlm, trained.data)
    sel, idx = vlm.prefix_of(px, QUESTION, keep_ratio=1.0, select=True)
    full, all_idx = vlm.prefix_of(px, QUESTION, select=False)
    assert torch.equal(idx, all_idx) and torch.equal(sel, full)
    assert torch.equal(vlm.logits(sel, QUESTION), vlm.logits(full, QUESTION))
    assert vlm.generate_ids(sel, QUESTION, 6) == vlm.generate_ids(full, QUESTION, 6)


def test_query_aware_selection_keeps_top_quarter_and_recovers_context(trained: Trained, vlm) -> None:
    from core.tokens.features import dense_forward, text_features

    px = _pixels(vlm, trained.data, 1)
    prefix, idx = vlm.prefix_of(px, QUESTION)
    patches = dense_forward(vlm.vision, px)[1][0].numpy().astype(np.float64)
    words = text_features(vlm.vision, QUESTION)[1].astype(np.float64)
    # Independent reference: numpy cosine, best over the question's word tokens, top ceil(25%).
    p = patches / np.linalg.norm(patches, axis=1, keepdims=True)
    w = words / np.linalg.norm(words, axis=1, keepdims=True)
    scores = (p @ w.T).max(axis=1)
    k = int(np.ceil(0.25 * len(scores)))
    assert prefix.shape[1] - vlm.lead == k == idx.shape[1]
    assert set(idx[0].tolist()) == set(np.argsort(-scores, kind="stable")[:k].tolist())
    # Recovery: a dropped patch still reaches the prefix through the cross-attention.
    tokens = vlm.patch_tokens(px)
    dropped = sorted(set(range(tokens.shape[1] - vlm.lead)) - set(idx[0].tolist()))[0]
    moved = tokens.clone()
    moved[0, vlm.lead + dropped] = -moved[0, vlm.lead + dropped]  # a patch, not the pooled token
    with torch.no_grad():
        assert not torch.allclose(vlm.visual_prefix(tokens, idx), vlm.visual_prefix(moved, idx))


def test_generate_equals_a_greedy_loop(trained: Trained, vlm) -> None:
    px = _pixels(vlm, trained.data)
    prefix, _ = vlm.prefix_of(px, QUESTION)
    ids, _ = vlm.generate_ids(prefix, QUESTION, 5)
    x = vlm.prompt_embeds(prefix, QUESTION)
    mine = []
    with torch.no_grad():
        for _ in range(5):
            t = int(vlm.lm(inputs_embeds=x).logits[0, -1].argmax())
            if t == vlm.ids["<eos>"]:
                break
            mine.append(t)
            x = torch.cat([x, vlm.lm.get_input_embeddings()(torch.tensor([[t]]))], dim=1)
    assert ids == mine


def _plain_logliks(vlm, prefix: torch.Tensor, question: str, options: list[str]) -> list[float]:
    """Reference: each option as its own full sequence (no KV cache, no padding), log-probabilities summed."""
    out = []
    with torch.no_grad():
        for o in options:
            target = vlm.target_ids(o)
            x = torch.cat([vlm.prompt_embeds(prefix, question),
                           vlm.lm.get_input_embeddings()(torch.tensor([target]))], dim=1)
            logp = torch.log_softmax(vlm.lm(inputs_embeds=x).logits[0].double(), -1)
            start = x.shape[1] - len(target)
            out.append(sum(float(logp[start - 1 + j, t]) for j, t in enumerate(target)))
    return out


def _same_as_generate_and_plain_scoring(vlm, patches: torch.Tensor, questions: list[str], options: list[str]) -> None:
    """The lean greedy decode gives HF generate's tokens and confidence, and the KV-cached option scores
    equal the plain full-sequence ones, at 25% and 100% kept."""
    for keep in (0.25, 1.0):
        for q in questions:
            prefix, _ = vlm.prefix_of_patches(patches, q, keep)
            ids, logp = vlm.generate_ids(prefix, q, 12)
            ref_ids, ref_logp = vlm.generate_ids(prefix, q, 12, hf=True)
            assert ids == ref_ids and abs(logp - ref_logp) < 1e-4
            np.testing.assert_allclose(vlm.option_logliks(prefix, q, options), _plain_logliks(vlm, prefix, q, options),
                                       rtol=1e-4, atol=1e-4)


def test_lean_decode_and_cached_scoring_equal_the_references(trained: Trained, vlm) -> None:
    patches = vlm.patch_tokens(_pixels(vlm, trained.data, 3))
    # options of 1 to 6 tokens, one of them empty (only its <eos>): the padding of the batched pass
    _same_as_generate_and_plain_scoring(vlm, patches, [QUESTION, "Is the road wet?", "What should the car do?"],
                                        ["", "Sunny", "Heavy rain over the road today.", "Fog"])


def test_bundled_vlm_lean_decode_equals_generate(trained: Trained, one_torch_thread: None) -> None:
    """The shipped model's answers are token for token those of ``generate`` and the plain scoring."""
    from core.vqa.vlm_folder import load_vlm

    vlm = load_vlm()
    with Image.open(trained.data / "frames" / "0001.png") as im:
        patches = vlm.patch_tokens(vlm.vision.preprocess_batch([im.convert("RGB")]))
    _same_as_generate_and_plain_scoring(vlm, patches, ["Is the road surface wet?", "What is the weather?",
                                                       "What should the ego vehicle do?"],
                                        ["Sunny", "Rain", "Keep the lane and the speed.", "Slow down."])


def test_multiple_choice_picks_the_most_likely_option(trained: Trained, vlm) -> None:
    from core.vqa.vlm_answerer import VLMAnswerer

    options = ["Sunny", "Heavy rain", "Fog over the road", "Snow"]
    px = _pixels(vlm, trained.data, 2)
    prefix, _ = vlm.prefix_of(px, QUESTION)
    ll = vlm.option_logliks(prefix, QUESTION, options)
    ref = _plain_logliks(vlm, prefix, QUESTION, options)  # each option alone, no padding, summed by hand
    np.testing.assert_allclose(ll, ref, rtol=1e-4, atol=1e-4)
    # Multiple choice scores each option with or without its closing period (log-sum of the two).
    dotted = vlm.option_logliks(prefix, QUESTION, [o + "." for o in options])
    both = np.logaddexp(np.asarray(ref), dotted)
    np.testing.assert_allclose(vlm.option_scores(prefix, QUESTION, [o + "." for o in options]), both, rtol=1e-4, atol=1e-4)
    text, conf, choice, _ = vlm.answer_pixels(px, QUESTION, options)
    assert choice == int(np.argmax(both)) and text == options[choice]
    # The answerer skips the no-answer option when scoring and maps the pick back to the given list.
    ans = VLMAnswerer(vlm, threshold=0.0).answer(QUESTION, trained.data / "frames" / "0002.png",
                                                  ["No definite answer", *options])
    assert ans.choice == choice + 1 and ans.definite
    unsure = VLMAnswerer(vlm, threshold=1.01).answer(QUESTION, trained.data / "frames" / "0002.png", options)
    assert not unsure.definite and unsure.text == "No definite answer" and "below the threshold" in unsure.reason


def test_save_load_round_trip(trained: Trained, vlm, tmp_path: Path) -> None:
    from core.models import load_model
    from core.vqa.vlm import MAX_BYTES
    from core.vqa.vlm_folder import folder_bytes, load_vlm, save_vlm

    save_vlm(vlm, tmp_path / "copy")
    again = load_vlm(tmp_path / "copy", vision=vlm.vision)
    assert folder_bytes(tmp_path / "copy") <= MAX_BYTES and folder_bytes(trained.out) <= MAX_BYTES
    px = _pixels(vlm, trained.data, 3)
    a, _ = vlm.prefix_of(px, QUESTION)
    b, _ = again.prefix_of(px, QUESTION)
    assert torch.equal(a, b)
    assert torch.equal(vlm.logits(a, QUESTION), again.logits(b, QUESTION))
    assert vlm.generate_ids(a, QUESTION, 6) == again.generate_ids(b, QUESTION, 6)
    # A VLM names the tower it was trained on; another tower is refused, in one line.
    other = tmp_path / "other"
    write_toy_model(other, seed=1)
    with pytest.raises(ValueError, match="trained on vision tower"):
        load_vlm(tmp_path / "copy", vision=load_model(f"file:{other}"))


def test_feature_norm_standardises_and_round_trips(trained: Trained, vlm, tmp_path: Path) -> None:
    """``feature_norm``: the statistics are numpy's per-dimension mean and std of the pooled and the
    patch tokens apart, they travel with the weights, and the prefix is the same after a reload."""
    from dataclasses import replace

    from core.vqa.vlm import VLM
    from core.vqa.vlm_folder import load_vlm, save_vlm

    norm = VLM(replace(vlm.cfg, feature_norm=True), vlm.vision, vlm.tokenizer).eval()
    tokens = torch.cat([vlm.patch_tokens(_pixels(vlm, trained.data, i)) for i in range(6)])
    norm.fit_feature_norm(tokens)
    t = tokens.numpy()
    np.testing.assert_allclose(norm.feature_mean.numpy(), [t[:, 0].mean(0), t[:, 1:].reshape(-1, t.shape[-1]).mean(0)],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.feature_std.numpy(), [t[:, 0].std(0, ddof=1),
                                                          t[:, 1:].reshape(-1, t.shape[-1]).std(0, ddof=1)],
                               rtol=1e-3, atol=1e-5)
    save_vlm(norm, tmp_path / "norm")
    again = load_vlm(tmp_path / "norm", vision=vlm.vision)
    assert again.cfg.feature_norm and torch.equal(again.feature_std, norm.feature_std)
    px = _pixels(vlm, trained.data, 2)
    assert torch.equal(norm.prefix_of(px, QUESTION)[0], again.prefix_of(px, QUESTION)[0])


def test_pooled_norm_converts_without_changing_the_prefix(trained: Trained, vlm, tmp_path: Path) -> None:
    """``enable_pooled_norm``: the pooled token's statistics are numpy's, folding them into
    ``pooled_in`` leaves the prefix as it was, they travel with the weights, and it is set once."""
    from core.vqa.vlm_folder import load_vlm, save_vlm

    conv = load_vlm(trained.out)
    tokens = torch.cat([conv.patch_tokens(_pixels(conv, trained.data, i)) for i in range(6)])
    idx = conv.select(tokens[:3], [QUESTION] * 3)
    with torch.no_grad():
        before = conv.visual_prefix(tokens[:3], idx)
        conv.enable_pooled_norm(tokens[:, 0])
        after = conv.visual_prefix(tokens[:3], idx)
    t = tokens[:, 0].numpy()
    np.testing.assert_allclose(conv.pooled_mean.numpy(), t.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(conv.pooled_std.numpy(), t.std(0, ddof=1), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4 * float(before.abs().max()))
    with pytest.raises(ValueError, match="set once"):
        conv.enable_pooled_norm(tokens[:, 0])
    save_vlm(conv, tmp_path / "pn")
    again = load_vlm(tmp_path / "pn", vision=conv.vision)
    assert again.cfg.pooled_norm and torch.equal(again.pooled_std, conv.pooled_std)
    with torch.no_grad():
        assert torch.equal(again.visual_prefix(tokens[:3], idx), after)


def test_train_vqa_pooled_norm_fine_tunes_the_pooled_input(trained: Trained, tmp_path: Path) -> None:
    """``train-vqa --init DIR --pooled-norm``: the converted VLM trains its own pooled input layer
    (it moves from the folded start) and the QA loss falls."""
    from core.vqa.train_vlm import train_vqa
    from core.vqa.vlm_folder import load_vlm

    report = train_vqa(trained.data, tmp_path / "ft", vision=trained.vision, init=trained.out, pooled_norm=True,
                       text_epochs=0, stage1_epochs=0, stage2_epochs=2, max_rows=120, batch_size=16, seed=0,
                       lr_qa=2e-3, lr_align=2e-3)
    assert report["loss_after"] < report["loss_before"]
    ft, base = load_vlm(tmp_path / "ft"), load_vlm(trained.out)
    assert ft.cfg.pooled_norm and not base.cfg.pooled_norm
    folded = base.projector[0].weight * ft.pooled_std
    assert not torch.allclose(ft.pooled_in.weight, folded)


def test_bad_qa_line_names_file_and_line(tmp_path: Path) -> None:
    from core.vqa.train_data import read_qa

    (tmp_path / "qa.jsonl").write_text('{"scene": "c0", "frame": "0", "question": "q", "answer": "a"}\n{oops\n')
    with pytest.raises(ValueError, match=r"qa.jsonl row 2: invalid JSON"):
        read_qa(tmp_path)
    # JSONL lines end at "\n" only: U+2028 and U+0085 inside a string are not line breaks
    (tmp_path / "qa.jsonl").write_text('{"scene": "c0", "frame": "0", "question": "q\u2028x\u0085", "answer": "a"}\n',
                                       encoding="utf-8")
    assert read_qa(tmp_path)[0]["question"] == "q\u2028x\u0085"


def test_cli_train_vqa(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from core.cli import main

    rc = main(["train-vqa", "--data", str(trained.data), "--out", str(tmp_path / "cli"), "--model", trained.vision,
               "--text-epochs", "0", "--stage1-epochs", "1", "--stage2-epochs", "1", "--max-rows", "16"])
    assert rc == 0, capsys.readouterr().err
    assert {"vlm.safetensors", "vlm_config.json", "tokenizer.json", "MODEL_CARD.md"} <= {
        p.name for p in (tmp_path / "cli").iterdir()}
    capsys.readouterr()
    image = str(trained.data / "frames" / "0000.png")
    rc = main(["ask", image, QUESTION, "--answerer", "vlm", "--vlm", str(trained.out), "--threshold", "0",
               "--option", "Sunny", "--option", "Snow", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["choice"] in (0, 1) and out["answer"] == ["Sunny", "Snow"][out["choice"]]
    assert main(["ask", image, QUESTION, "--answerer", "vlm", "--vlm", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no such VLM folder" in err and err.count("\n") == 1
    # eval-vqa --answerer vlm answers a dataset's question bank with the VLM and scores it.
    from core.vqa.questions import write_question_bank

    write_question_bank(trained.data)
    rc = main(["eval-vqa", "--data", str(trained.data), "--answerer", "vlm", "--vlm", str(trained.out),
               "--limit", "12", "--no-meteor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["answerer"] == "vlm" and report["keep_ratio"] == 0.25
    assert report["n"] == 12 and set(report["by_group"]) == {"perception", "prediction", "planning", "behavior"}
    rc = main(["train-vqa", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), "--model", trained.vision])
    assert rc == 2 and "nowhere" in capsys.readouterr().err


def test_bundled_vlm_loads_and_answers(tmp_path: Path, one_torch_thread: None) -> None:
    """The shipped scenescope-vqa-tiny loads by default (within the size budget) and answers every
    multiple-choice question about freshly rendered frames with one of its options."""
    from core.data import read_manifest
    from core.synth import write_synth_dataset
    from core.vqa.vlm import BUNDLED_VLM, MAX_BYTES
    from core.vqa.vlm_answerer import VLMAnswerer
    from core.vqa.vlm_folder import folder_bytes, load_vlm

    assert folder_bytes(BUNDLED_VLM) <= MAX_BYTES
    data = write_synth_dataset(tmp_path / "d", scenes=2, clips=0, seed=77, qa=True, progress=False)
    mc = [r for r in map(json.loads, (data / "qa.jsonl").read_text().splitlines()) if r["type"] == "multiple_choice"]
    frames = read_manifest(data).frames
    image = {c: data / p for c, p in zip(frames["clip_id"], frames["path"], strict=True)}
    answerer = VLMAnswerer(load_vlm(), threshold=0.0)
    for r in mc[:6]:
        ans = answerer.answer(r["question"], image[r["scene"]])
        assert ans.definite and ans.choice is not None and ans.text.rstrip(".") == r["options"][ans.choice]


def test_bundled_vlm_answers_better_than_chance(tmp_path: Path, one_torch_thread: None) -> None:
    """The shipped scenescope-vqa-tiny picks the right option of multiple-choice perception questions
    about freshly rendered frames more often than 1.5x chance (the 2400-question figures are
    bench/RESULTS.md section 14)."""
    from core.synth import write_synth_dataset
    from core.vqa.drivelm import option_letter
    from core.vqa.evaluate import answer_dataset_vlm
    from core.vqa.vlm import BUNDLED_VLM, MAX_BYTES
    from core.vqa.vlm_answerer import VLMAnswerer
    from core.vqa.vlm_folder import folder_bytes, load_vlm

    assert folder_bytes(BUNDLED_VLM) <= MAX_BYTES
    data = write_synth_dataset(tmp_path / "d", scenes=6, clips=0, seed=77, qa=True, progress=False)
    rows = [json.loads(x) for x in (data / "qa.jsonl").read_text().splitlines()]
    mc = [r for r in rows if r["group"] == "perception" and r["type"] == "multiple_choice"]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    qa, answers = answer_dataset_vlm(data, VLMAnswerer(load_vlm(), threshold=0.0), split="all",
                                     qa_path=tmp_path / "mc.jsonl")
    letters = {r["id"]: r["answer"] for r in mc}
    # The bank's own lettering: place questions list up to 13 options (letters to M), and a ten-letter
    # alphabet here once raised IndexError, which the old strict xfail mark swallowed as the expected failure.
    right = [answers[i].choice is not None and option_letter(answers[i].choice) == letters[i] for i in qa["id"]]
    chance = float(np.mean([1 / (len(r["options"]) - 1) for r in mc]))  # the no-answer option never wins
    assert len(right) >= 20 and np.mean(right) > 1.5 * chance


def test_train_vqa_init_starts_from_the_saved_vlm(trained: Trained, tmp_path: Path) -> None:
    """``train-vqa --init DIR``: with no epochs to run, the saved VLM is the one it started from (same
    weights, tokenizer and shape), and its QA loss before training is the saved run's loss after."""
    from safetensors.torch import load_file

    from core.vqa.train_vlm import train_vqa

    report = train_vqa(trained.data, tmp_path / "same", vision=trained.vision, init=trained.out, text_epochs=0,
                       stage1_epochs=0, stage2_epochs=0, max_rows=120, batch_size=16, seed=0, hidden=32)
    before, after = load_file(trained.out / "vlm.safetensors"), load_file(tmp_path / "same" / "vlm.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "same" / "tokenizer.json").read_text() == (trained.out / "tokenizer.json").read_text()
    assert report["config"]["hidden"] == trained.report["config"]["hidden"] != 32  # the saved shape wins
    assert report["init"] == str(trained.out)
    assert report["loss_before"] == pytest.approx(trained.report["loss_after"], rel=1e-4)
