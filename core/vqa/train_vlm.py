"""Train the small VLM (``core.vqa.vlm``) in DriVLM's two stages: ``scenescope train-vqa``.

0. text (``text_epochs``, default 1): DriVLM starts from a pretrained language model; ours is built
   from a config with random weights, so it first learns the corpus's language (answers after
   their questions, captions after an empty prompt) with no image: otherwise stage 1 would align
   the projector to a frozen random LM, which teaches it nothing.
1. align (``stage1_epochs``): the connector (recovery attention + MLP projector) learns to caption
   the frames (``Schema.caption``, two random paraphrases per frame) with the tower and LM frozen.
   A caption has no question to select tokens by, so a seeded random subset at the keep ratio is
   kept (FLIP's masking): the connector learns from subsets like those it sees at answer time.
2. qa (``stage2_epochs``): connector + LM fine-tune on the QA mix of the train split
   (``qa.jsonl``; built in memory from the manifest when absent). A multiple-choice row trains its
   stem followed by the correct option's text, which is what multiple choice scores.

The loop (``core.vqa.train_loop``) checkpoints every finished epoch when given a state folder and
resumes from it: ``scenescope train-vqa --state DIR`` or the ``train-vqa`` job (core/jobs/vqa_job.py).

The tower is frozen, so its patch features and the questions' text tokens are computed once.
Every question is about one frame: a clip question uses the frame it names, or the clip's middle
frame when it is about the whole clip.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.schema import Schema, default_schema
from core.vqa import train_mc
from core.vqa.questions import QA_FILE, question_bank
from core.vqa.train_data import Example, FeatureCache, frame_rows, qa_pair, read_qa
from core.vqa.vlm import VLM, VLMConfig, train_tokenizer
from core.vqa.vlm_folder import save_vlm

if TYPE_CHECKING:
    from core.models import SceneModel

Progress = Callable[[str], None]
PROBE = 512  # examples the before/after losses are measured on


def _batch_loss(vlm: VLM, cache: FeatureCache, batch: Sequence[Example], visual: bool, seed: int,
                mc_weight: float = 0.0) -> torch.Tensor:
    """LM loss, plus ``mc_weight`` x the multiple-choice ranking loss (core.vqa.train_mc) on visual stages."""
    prefix = None
    if visual:
        frames = cache.patches[[ex.frame for ex in batch]]
        prefix = vlm.visual_prefix(frames, cache.indices(batch, frames, vlm.cfg.keep_ratio, seed))
    loss = vlm.loss(prefix, [vlm.prompt_ids(ex.question) for ex in batch], [vlm.target_ids(ex.answer) for ex in batch])
    if mc_weight > 0 and visual:  # answers are always scored with the image: the text warm-up keeps LM loss only
        loss = loss + mc_weight * train_mc.mc_loss(vlm, prefix, batch)
    return loss


@torch.no_grad()
def mean_loss(vlm: VLM, cache: FeatureCache, examples: Sequence[Example], visual: bool = True,
              batch_size: int = 32) -> float:
    """Mean per-example loss (deterministic selection), for before/after comparisons."""
    vlm.eval()
    total = 0.0
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        total += float(_batch_loss(vlm, cache, batch, visual, seed=i)) * len(batch)
    return total / max(1, len(examples))


def _card(report: dict[str, Any]) -> str:
    lines = [
        "# scenescope-vqa (small VLM)", "",
        "DriVLM's shape with LaVida Drive's query-aware token selection (see core/vqa/vlm.py).", "",
        f"- data: `{report['data']}` ({report['train_rows']} train QA rows, {report['frames']} frames, "
        f"{report['val_rows']} val QA rows)",
        f"- seed: {report['seed']}; trained {report['finished']} in {report['seconds']:.0f} s",
        f"- vision tower (frozen): `{report['vision_identity']}`; keep ratio {report['keep_ratio']}",
        f"- stage 2 loss: next-token LM loss + {report['mc_loss']:g} x multiple-choice ranking loss "
        "(cross-entropy over the options' summed log-likelihoods, core/vqa/train_mc.py)"
        + (f"; started from `{report['init']}`" if report.get("init") else ""),
        f"- language model: Llama config, {report['config']['layers']} layers, hidden {report['config']['hidden']}, "
        f"vocabulary {report['config']['vocab_size']} (byte-level BPE on the QA corpus)",
        f"- parameters: {report['parameters']:,}",
        "", "| stage | epochs | loss per epoch |", "|---|---|---|",
    ]
    for stage, losses in report["stages"].items():
        lines.append(f"| {stage} | {len(losses)} | {', '.join(f'{x:.3f}' for x in losses) or '-'} |")
    lines += ["", f"QA loss on the train split: {report['loss_before']:.3f} before, {report['loss_after']:.3f} after; "
              f"val: {report['val_loss'] if report['val_loss'] is None else round(report['val_loss'], 3)}.", ""]
    return "\n".join(lines)


def train_vqa(
    data: str | Path,
    out: str | Path,
    *,
    vision: str = "scenescope-tiny",
    schema: Schema | None = None,
    text_epochs: int = 1,
    stage1_epochs: int = 2,
    stage2_epochs: int = 4,
    keep_ratio: float = 0.25,
    batch_size: int = 16,
    lr_align: float = 1e-3,
    lr_qa: float = 5e-4,
    hidden: int = 192,
    layers: int = 4,
    heads: int = 4,
    intermediate: int = 512,
    vocab_size: int = 1024,
    pooled: bool = True,
    prefix_norm: bool = False,  # LayerNorm the projector output (VLMConfig.prefix_norm); unproven, off
    feature_norm: bool = False,  # standardise the tower's tokens, LayerNorm the projector input (VLMConfig)
    pooled_norm: bool = False,  # the pooled token standardised, through its own input layer (VLMConfig)
    mc_loss: float = 0.0,  # weight of the multiple-choice ranking loss beside the LM loss (core.vqa.train_mc)
    init: str | Path | None = None,  # a VLM folder to start from (its shape and tokenizer win over the options above)
    max_rows: int | None = None,  # per split: a seeded random sample of the questions
    max_frames: int | None = None,  # a seeded random sample of the frames questions may be about
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
    vision_model: SceneModel | None = None,
    state_dir: str | Path | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train a VLM on a dataset (manifest + optional qa.jsonl) and save it to ``out``; returns the
    training report (also saved as training.json beside the weights). With ``state_dir`` every
    finished epoch is checkpointed there and a second call resumes from the last one; when
    ``should_stop`` says so it returns ``{"stopped": True}`` without writing ``out``."""
    from core.data import read_manifest
    from core.vqa.train_loop import Stage, Stopped, read_state, run_stages

    start = time.time()
    torch.manual_seed(seed)
    root = Path(data)
    schema = schema or default_schema()
    state = Path(state_dir) if state_dir is not None else None
    ds = read_manifest(root, schema)
    qa, manifest_rows = _examples(root, ds, schema, max_rows, max_frames, seed)
    labels = [ds.labels(i) for i in manifest_rows]
    # Everything that decides the batches: a checkpoint is only resumed by the same run.
    fingerprint = {"data": str(root.resolve()), "seed": seed, "rows": len(qa["train"]), "frames": len(manifest_rows),
                   "options": [text_epochs, stage1_epochs, stage2_epochs, keep_ratio, batch_size, lr_align, lr_qa,
                               hidden, layers, heads, intermediate, vocab_size, pooled, prefix_norm, feature_norm, vision,
                               *([mc_loss, "mc-no-clips"] if mc_loss else []),  # clip rows left out of the loss (train_mc)
                               *(["pooled-norm"] if pooled_norm else []),
                               *([str(init)] if init else [])]}  # absent: old ones resume
    meta = read_state(state, fingerprint)

    if vision_model is None:
        from core.models import load_model

        vision_model = load_model(vision, device=device)
    if init is not None:  # continue training a saved VLM: its shape, tokenizer, weights (and feature statistics)
        from core.vqa.vlm_folder import load_vlm

        vlm = load_vlm(init, vision=vision_model, device=device)
    else:
        if meta is not None:  # the tokenizer the checkpoint's embeddings belong to
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str((state / "tokenizer.json").read_text())  # type: ignore[operator]
        else:
            corpus = [t for ex in qa["train"] for t in (ex.question or "", ex.answer)]
            corpus += [schema.caption(lab, random.Random(i)) for i, lab in enumerate(labels)]
            tok = train_tokenizer(corpus, vocab_size)
            if state is not None:
                from core.atomic import atomic_write_text

                state.mkdir(parents=True, exist_ok=True)
                atomic_write_text(state / "tokenizer.json", tok.to_str())
        cfg = VLMConfig(vision_model=vision_model.name, vision_identity=vision_model.identity,
                        vision_dim=int(vision_model.embed_dim), vocab_size=tok.get_vocab_size(), keep_ratio=keep_ratio,
                        pooled=pooled, prefix_norm=prefix_norm, feature_norm=feature_norm, hidden=hidden, layers=layers, heads=heads,
                        intermediate=intermediate,
                        recovery_heads=next(h for h in (4, 2, 1) if vision_model.embed_dim % h == 0))
        vlm = VLM(cfg, vision_model, tok).to(device)
    if progress:
        progress(f"encoding {len(manifest_rows)} frames with {vision_model.name}")
    if on_progress:
        on_progress({"phase": "encoding"})
    cache = FeatureCache(vlm, [ds.abspath(ds.frames.iloc[i]["path"]) for i in manifest_rows])
    if feature_norm and init is None:
        vlm.fit_feature_norm(cache.patches)
    if pooled_norm and not vlm.cfg.pooled_norm:  # also converts an --init VLM, its function unchanged
        vlm.enable_pooled_norm(cache.patches[:, 0])

    def captions(stage: str, copies: int = 1) -> list[Example]:  # fresh random paraphrases, seeded per stage
        rng = random.Random(f"{seed}:captions:{stage}")
        return [Example(j, None, schema.caption(lab, rng)) for _ in range(copies) for j, lab in enumerate(labels)]

    connector = [*vlm.recovery_norm.parameters(), *vlm.recovery.parameters(), *vlm.projector.parameters(),
                 *(vlm.input_norm.parameters() if vlm.cfg.feature_norm else ()),
                 *(vlm.pooled_in.parameters() if vlm.cfg.pooled_norm else ())]
    lm = list(vlm.lm.parameters())
    probe = qa["train"][:PROBE]  # before/after losses on a fixed sample: a full pass costs an epoch
    before = float(meta["before"]) if meta is not None else mean_loss(vlm, cache, probe)
    stages = [
        Stage("text", "text", text_epochs, [{"params": lm, "lr": lr_qa}], [*qa["train"], *captions("text")], False),
        Stage("align", "stage 1 (align)", stage1_epochs, [{"params": connector, "lr": lr_align}], captions("align", 2)),
        # The connector keeps its own (alignment) learning rate beside the LM's in stage 2.
        Stage("qa", "stage 2 (qa)", stage2_epochs,
              [{"params": connector, "lr": lr_align}, {"params": lm, "lr": lr_qa}], qa["train"]),
    ]
    try:
        losses = run_stages(vlm, cache, stages, batch_size=batch_size, seed=seed,
                            batch_loss=partial(_batch_loss, mc_weight=mc_loss),
                            state_dir=state, fingerprint=fingerprint, extra={"before": before},
                            progress=progress, emit=on_progress, should_stop=should_stop)
    except Stopped:
        return {"stopped": True}
    if on_progress:
        on_progress({"phase": "saving"})
    report: dict[str, Any] = {
        "data": str(root), "seed": seed, "vision": vision_model.name, "vision_identity": vision_model.identity,
        "keep_ratio": vlm.cfg.keep_ratio, "mc_loss": mc_loss, "init": None if init is None else str(init), "train_rows": len(qa["train"]), "val_rows": len(qa["val"]),
        "frames": len(manifest_rows), "stages": losses,
        "loss_before": before, "loss_after": mean_loss(vlm, cache, probe),
        "val_loss": mean_loss(vlm, cache, qa["val"][:PROBE]) if qa["val"] else None,
        "parameters": sum(p.numel() for p in vlm.parameters()), "config": {
            "hidden": vlm.cfg.hidden, "layers": vlm.cfg.layers, "vocab_size": vlm.cfg.vocab_size},
        # Wall time of this call (a resumed run counts from its resume) and when it finished.
        "seconds": time.time() - start, "resumed_from_epoch": int(meta["epoch"]) if meta else 0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save_vlm(vlm, out, card=_card(report), files={"training.json": json.dumps(report, indent=2)})
    if progress:
        progress(f"wrote {out}: QA loss {report['loss_before']:.3f} -> {report['loss_after']:.3f}")
    return report


def _examples(root: Path, ds: Any, schema: Schema, max_rows: int | None, max_frames: int | None,
              seed: int) -> tuple[dict[str, list[Example]], list[int]]:
    """The train and val examples (their ``frame`` a row of the feature cache) and the manifest row
    of each cache row."""
    rows = read_qa(root)
    if rows is None:
        rows = question_bank(ds.frames.to_dict("records"), schema, seed)
    where = frame_rows(ds.frames)
    # The frozen tower's cost is per frame and the LM's per question: on a small CPU budget, fewer
    # frames with their questions beat many frames' first questions; sampling keeps every kind.
    allowed = None
    if max_frames is not None and max_frames < len(ds.frames):
        allowed = set(random.Random(seed).sample(range(len(ds.frames)), max_frames))
    rows = list(rows)
    if max_rows is not None:
        random.Random(seed + 1).shuffle(rows)
    picked: dict[int, int] = {}  # manifest row -> cache row
    qa: dict[str, list[Example]] = {"train": [], "val": []}
    for row in rows:
        split = str(row.get("split") or "train")
        if split not in qa or (max_rows is not None and len(qa[split]) >= max_rows):
            continue
        key = (str(row["scene"]), str(row["frame"]))
        if key not in where:
            raise ValueError(f"{root / QA_FILE}: question {row.get('id', '?')} names frame {key}, not in the manifest")
        if allowed is not None and where[key] not in allowed:
            continue
        q, a = qa_pair(row, schema)
        qa[split].append(Example(picked.setdefault(where[key], len(picked)), q, a, *train_mc.choice_of(row, schema, a)))
    if not qa["train"]:
        raise ValueError(f"{root}: no train-split questions to learn from")
    return qa, sorted(picked, key=picked.get)  # type: ignore[arg-type]


__all__ = ["Example", "FeatureCache", "mean_loss", "qa_pair", "read_qa", "train_vqa"]
