"""``scenescope ask``, ``eval-vqa`` and ``train-vqa``: questions about scenes (core.vqa)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli_args import schema_option


def _answerer_index(a: argparse.Namespace) -> tuple:
    """The model and index a retrieval answerer votes with: --index, else the default index."""
    from core.pipeline import open_index
    from core.workspace import default_index, demo_missing

    index = Path(a.index) if a.index else default_index()
    if demo_missing(index):
        from core.demo import ensure_demo

        ensure_demo()
    return open_index(index, getattr(a, "model", None))


def cmd_ask(a: argparse.Namespace) -> None:
    from core.vqa.answer import DEFAULT_THRESHOLD, RetrievalAnswerer, check_question

    check_question(a.question)  # a bad question fails before the model loads
    threshold = DEFAULT_THRESHOLD if a.threshold is None else a.threshold
    if a.answerer == "vlm":
        from core.vqa.vlm_answerer import VLMAnswerer
        from core.vqa.vlm_folder import load_vlm

        answerer = VLMAnswerer(load_vlm(a.vlm), threshold=threshold, keep_ratio=a.keep)  # None: the bundled one
        ans = answerer.answer(a.question, a.path, a.option)
    else:
        model, store = _answerer_index(a)
        ans = RetrievalAnswerer(model, store, k=a.k, threshold=threshold).answer(a.question, a.path, a.option)
    out = ans.to_dict()
    if a.json:
        print(json.dumps(out, indent=2))
        return
    letter = f"{out['letter']}. " if out["letter"] else ""
    said = f"; {len(ans.evidence)} voters)" if a.answerer == "retrieval" else ")"
    print(f"{letter}{ans.text}  (confidence {ans.confidence:.2f}" + (f"; {ans.reason})" if ans.reason else said))


def cmd_eval_vqa(a: argparse.Namespace) -> None:
    from core.vqa.drivelm import read_drivelm, read_predictions
    from core.vqa.metrics import report_text, score_predictions

    if bool(a.data) == bool(a.predictions):
        raise ValueError("eval-vqa needs either --predictions FILE or --data DIR")
    if a.data:
        from core.vqa.answer import DEFAULT_THRESHOLD
        from core.vqa.evaluate import evaluate_dataset

        threshold = DEFAULT_THRESHOLD if a.threshold is None else a.threshold
        if a.answerer == "vlm":
            from core.vqa.vlm_answerer import VLMAnswerer
            from core.vqa.vlm_folder import load_vlm

            vlm = VLMAnswerer(load_vlm(a.vlm), threshold=threshold, keep_ratio=a.keep)
            report = evaluate_dataset(a.data, split=a.split, meteor=not a.no_meteor, limit=a.limit, vlm=vlm)
        else:
            model, store = _answerer_index(a)
            report = evaluate_dataset(a.data, model, store, split=a.split, k=a.k, threshold=threshold,
                                      meteor=not a.no_meteor, limit=a.limit)
        print(json.dumps(report, indent=2) if a.json else report_text(report))
        return
    qa = read_drivelm(a.qa).qa if a.qa else None
    report = score_predictions(read_predictions(a.predictions), qa, challenge_filter=not a.all_questions,
                               meteor=not a.no_meteor)
    print(json.dumps(report, indent=2) if a.json else report_text(report))


def cmd_train_vqa(a: argparse.Namespace) -> None:
    from core.vqa.train_vlm import train_vqa

    options = {"text_epochs": a.text_epochs, "stage1_epochs": a.stage1_epochs, "stage2_epochs": a.stage2_epochs,
               "keep_ratio": a.keep, "batch_size": a.batch_size, "max_rows": a.max_rows, "max_frames": a.max_frames,
               "seed": a.seed, "hidden": a.hidden, "layers": a.layers, "heads": a.heads,
               "intermediate": a.intermediate, "vocab_size": a.vocab_size, "lr_align": a.lr_align,
               "lr_qa": a.lr_qa, "prefix_norm": a.prefix_norm,
               "feature_norm": a.feature_norm, "pooled_norm": a.pooled_norm, "mc_loss": a.mc_loss,
               **({"init": a.init} if a.init else {})}
    if a.job:  # the same training as a background job: progress, cancel and resume through `scenescope jobs`
        from core.jobs.cli import _report_end, follow
        from core.jobs.runner import start_job
        from core.workspace import workspace

        ws = a.workspace or str(workspace())
        job_id = start_job(ws, {"kind": "train-vqa", "data_dir": a.data, "base_model": a.model,
                                "out_dir": a.out, "options": options, "compare": False, "maps": False})
        print(f"started job {job_id} (workspace {ws})", file=sys.stderr)
        if a.detach:
            print(job_id)
            return
        status = follow(ws, job_id)  # Ctrl-C stops watching, not the job
        if status["state"] != "finished":
            raise SystemExit(_report_end(ws, status))
        r = status.get("result") or {}
        print(f"job {job_id} finished: wrote {r.get('model_dir')}; QA loss {r.get('loss_before', 0):.3f} -> "
              f"{r.get('loss_after', 0):.3f}")
        return
    report = train_vqa(a.data, a.out, vision=a.model, schema=schema_option(a), device=a.device, state_dir=a.state,
                       progress=lambda m: print(m, flush=True), **options)
    if report.get("stopped"):
        return
    print(f"trained in {report['seconds']:.0f} s; wrote {a.out}")


def _vlm_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--vlm", metavar="DIR", default=None,
                   help="--answerer vlm: the VLM folder (default: the bundled scenescope-vqa-tiny)")
    s.add_argument("--keep", type=float, default=None, help="--answerer vlm: share of patch tokens kept "
                   "(default: the VLM's own, 0.25)")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("ask", help="answer a question about an image or clip (k-NN votes, or the bundled VLM)")
    s.add_argument("path", help="image, video or folder of frames")
    s.add_argument("question", help="e.g. \"Is the road surface wet?\" (at most 512 characters)")
    s.add_argument("--option", action="append", metavar="TEXT", help="a multiple-choice option (repeat)")
    s.add_argument("--index", help="index to vote with (default: $SCENESCOPE_INDEX, else the demo index)")
    s.add_argument("--answerer", choices=["retrieval", "vlm"], default="retrieval")
    _vlm_options(s)
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--threshold", type=float, default=None,
                   help="below this confidence: no definite answer (default: core.vqa.answer.DEFAULT_THRESHOLD, 0.5)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_ask)

    s = sub.add_parser("eval-vqa", help="score DriveLM-style VQA predictions with the challenge's metrics, "
                       "or answer and score a dataset's qa.jsonl (--data)")
    s.add_argument("--predictions",
                   help="JSON list of {id, question, gt_answer, answer} with optional tag, group, type")
    s.add_argument("--data", help="dataset folder with qa.jsonl (synth --qa): answer its --split and score it")
    s.add_argument("--index", help="--data: index to vote with (default: $SCENESCOPE_INDEX, else the demo index)")
    s.add_argument("--answerer", choices=["retrieval", "vlm"], default="retrieval")
    _vlm_options(s)
    s.add_argument("--split", default="test")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--threshold", type=float, default=None,
                   help="below this confidence: no definite answer (default: core.vqa.answer.DEFAULT_THRESHOLD, 0.5)")
    s.add_argument("--limit", type=int, default=None, help="--data: only the first N questions")
    s.add_argument("--qa", help="DriveLM QA JSON with tags (test_eval.json): questions, answers, groups, tags")
    s.add_argument("--all-questions", action="store_true",
                   help="score every question (skip the challenge's filter on objects the first answer missed)")
    s.add_argument("--no-meteor", action="store_true", help="skip METEOR (its java start-up takes seconds)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_eval_vqa)

    s = sub.add_parser("train-vqa", help="train the small VLM (DriVLM's two stages) on a dataset's qa.jsonl")
    s.add_argument("--data", required=True, help="dataset folder (manifest, qa.jsonl from synth --qa)")
    s.add_argument("--out", required=True, help="VLM folder to write (safetensors, config, tokenizer, card)")
    s.add_argument("--model", default="scenescope-tiny", help="registry vision tower (frozen)")
    s.add_argument("--text-epochs", type=int, default=1, help="language warm-up of the LM, no image")
    s.add_argument("--stage1-epochs", type=int, default=2, help="projector alignment on captions")
    s.add_argument("--stage2-epochs", type=int, default=4, help="projector + LM fine-tuning on the QA mix")
    s.add_argument("--keep", type=float, default=0.25, help="share of patch tokens kept per question")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--max-rows", type=int, default=None, help="at most N questions per split (a seeded sample)")
    s.add_argument("--max-frames", type=int, default=None, help="questions about at most N frames (a seeded sample)")
    s.add_argument("--hidden", type=int, default=192, help="language model width")
    s.add_argument("--layers", type=int, default=4, help="language model layers")
    s.add_argument("--heads", type=int, default=4, help="language model attention heads")
    s.add_argument("--intermediate", type=int, default=512, help="language model MLP width")
    s.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary trained on the QA corpus")
    s.add_argument("--lr-align", type=float, default=1e-3, help="stage 1 learning rate")
    s.add_argument("--lr-qa", type=float, default=5e-4, help="language warm-up and stage 2 learning rate")
    s.add_argument("--state", metavar="DIR", default=None,
                   help="checkpoint every finished epoch here; the same command again resumes from the last one")
    s.add_argument("--job", action="store_true", help="run as a background job (`scenescope jobs` shows, "
                   "cancels and resumes it)")
    s.add_argument("--workspace", default=None, help="--job: the jobs' workspace (default: the usual one)")
    s.add_argument("--detach", action="store_true", help="--job: print the job id and return")
    s.add_argument("--prefix-norm", action="store_true",
                   help="LayerNorm the projector's output at the LM's embedding scale (bench/RESULTS.md 14c: "
                        "not better in the one run measured)")
    s.add_argument("--feature-norm", action="store_true",
                   help="standardise the vision tower's tokens by the training frames' statistics and LayerNorm "
                        "the projector's input (bench/RESULTS.md 14d)")
    s.add_argument("--pooled-norm", action="store_true",
                   help="standardise the pooled image token by the training frames' statistics, through its own "
                        "input layer; converts an --init VLM without changing its answers (bench/RESULTS.md 14i)")
    s.add_argument("--mc-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="stage 2: add WEIGHT x a multiple-choice ranking loss (cross-entropy over the options' "
                        "summed log-likelihoods, as multiple choice and yes/no are scored; bench/RESULTS.md 14e)")
    s.add_argument("--init", metavar="DIR", default=None,
                   help="start from this VLM folder's weights and tokenizer (its shape wins over --hidden etc.); "
                        "e.g. --init assets/scenescope-vqa-tiny --text-epochs 0 --stage1-epochs 0 to fine-tune it")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(fn=cmd_train_vqa)
