"""`scenescope` command line. Errors exit non-zero with one clear line (SCENESCOPE_DEBUG=1: traceback)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.train.recipe import DefaultRecipe

if TYPE_CHECKING:
    from core.schema import Schema

def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers, e.g. ``3,2,2,1,1,1``."""
    return tuple(float(x) for x in text.split(","))


def ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers, e.g. ``176,320``."""
    return tuple(int(x) for x in text.split(","))


# Command-line parsers of the field types an options dataclass may use (a tuple is a comma list).
_OPTION_TYPES: dict[Any, Any] = {int: int, float: float, str: str, tuple[int, ...]: ints,
                                 tuple[int, int]: ints, tuple[float, ...]: floats}


def add_dataclass_options(s: argparse.ArgumentParser, cls: type) -> None:
    """One ``--field-name`` option per field of ``cls``, left ``None`` when not given (the field's default
    applies; :func:`given_options` collects the rest), so the options cannot drift from the dataclass."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind = _OPTION_TYPES.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {hints[f.name]} in _OPTION_TYPES")
        default = f.default if f.default is not MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        s.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None,
                       help=f"default {shown} ({cls.__name__})")


def given_options(a: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (see :func:`add_dataclass_options`)."""
    return {f.name: getattr(a, f.name) for f in fields(cls) if getattr(a, f.name, None) is not None}


SCHEMA_COMMANDS = ("synth", "import", "index", "classify", "eval", "leakage", "train-vqa")  # the ones --schema reaches


def _schema(a: argparse.Namespace) -> Schema:
    """The ``--schema`` file, else the bundled schema; a bad file is one error line naming it."""
    from core.schema import load_schema

    return load_schema(a.schema)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def cmd_synth(a: argparse.Namespace) -> None:
    from core.synth import write_synth_dataset

    path = write_synth_dataset(Path(a.out), scenes=a.scenes, clips=a.clips, seed=a.seed,
                               size=_size(a.size), fps=a.fps, schema=_schema(a), qa=a.qa)
    print(f"wrote {path}")


def cmd_index(a: argparse.Namespace) -> None:
    from core.data import read_manifest
    from core.index import build_index, discard_build
    from core.models import load_model

    if a.discard:
        discard_build(Path(a.out))
        print(f"discarded the unfinished build of {a.out}")
        return
    store = build_index(read_manifest(a.data, _schema(a)), load_model(a.model), Path(a.out), split=a.split,
                        factory=a.factory, batch_size=a.batch_size, resume=a.resume)
    print(f"indexed {len(store)} frames into {a.out} ({a.factory}, model {store.manifest['model']})")


def cmd_classify(a: argparse.Namespace) -> None:
    from core.pipeline import classify_path, open_index
    from core.predict import vote_space

    model, store = open_index(a.index, a.model, _schema(a))
    result = classify_path(Path(a.path), model, store, k=a.k, fps=a.fps, smoothing=a.smoothing,
                           prompt_space=vote_space(model, a.vote_space, store.schema))
    print(json.dumps(result.to_dict(), indent=2) if a.json else result.to_text(store.schema))


def cmd_eval(a: argparse.Namespace) -> None:
    from core.data import read_manifest
    from core.pipeline import evaluate_split, open_index
    from core.predict import vote_space

    schema = _schema(a)
    model, store = open_index(a.index, a.model, schema)
    report, md = evaluate_split(read_manifest(a.data, schema), a.split, model, store, k=a.k,
                                prompt_space=vote_space(model, a.vote_space, store.schema))
    if a.out:
        Path(a.out).write_text(md)
    print(json.dumps(report, indent=2, default=str) if a.json else md)


def cmd_models(a: argparse.Namespace) -> None:
    from core.model_names import list_models  # not core.models: listing names needs no torch

    print("\n".join(list_models()))


def cmd_import(a: argparse.Namespace) -> None:
    from core.data import importers

    if a.format == "drivelm":
        if not a.qa or not a.out:
            raise ValueError("import drivelm needs --qa FILE (DriveLM QA JSON) and --out DIR (the new dataset)")
        from core.vqa.drivelm import import_drivelm

        print(f"wrote {import_drivelm(Path(a.root), Path(a.qa), Path(a.out), schema=_schema(a))}")
        return
    if not a.labels:
        raise ValueError(f"import {a.format} needs --labels FILE")
    fn = {"table": importers.import_table, "hsd": importers.import_hsd,
          "bdd100k": importers.import_bdd100k}[a.format]
    print(f"wrote {fn(Path(a.root), Path(a.labels), schema=_schema(a))}")


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
        from core.vqa.vlm import VLMAnswerer, load_vlm

        if not a.vlm:
            raise ValueError("--answerer vlm needs --vlm DIR (a folder written by scenescope train-vqa)")
        answerer = VLMAnswerer(load_vlm(a.vlm), threshold=threshold, keep_ratio=a.keep)
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

        model, store = _answerer_index(a)
        threshold = DEFAULT_THRESHOLD if a.threshold is None else a.threshold
        report = evaluate_dataset(a.data, model, store, split=a.split, k=a.k, threshold=threshold,
                                  meteor=not a.no_meteor, limit=a.limit)
        print(json.dumps(report, indent=2) if a.json else report_text(report))
        return
    qa = read_drivelm(a.qa).qa if a.qa else None
    report = score_predictions(read_predictions(a.predictions), qa, challenge_filter=not a.all_questions,
                               meteor=not a.no_meteor)
    print(json.dumps(report, indent=2) if a.json else report_text(report))


def cmd_leakage(a: argparse.Namespace) -> None:
    from core.data.leakage import find_leakage
    from core.index import IndexStore

    store = IndexStore.load(Path(a.index), schema=_schema(a))
    pairs = find_leakage(store.embeddings(), store.meta["split"].to_numpy(), threshold=a.threshold)
    print(pairs.head(a.top).to_string(index=False) if len(pairs) else "no near-duplicates across splits")


def cmd_train_default(a: argparse.Namespace) -> None:
    from core.train.default import train_default

    # Options left out keep DefaultRecipe's values, which are the bundled model's.
    recipe = DefaultRecipe(**given_options(a, DefaultRecipe))
    summary = train_default(recipe, out=a.out, work=a.work, device=a.device)
    print(f"trained in {summary['train_seconds']} s; wrote {a.out}")


def cmd_train_vqa(a: argparse.Namespace) -> None:
    from core.vqa.train_vlm import train_vqa

    report = train_vqa(a.data, a.out, vision=a.model, schema=_schema(a), text_epochs=a.text_epochs,
                       stage1_epochs=a.stage1_epochs, stage2_epochs=a.stage2_epochs, keep_ratio=a.keep,
                       batch_size=a.batch_size, max_rows=a.max_rows, seed=a.seed, device=a.device,
                       progress=print)
    print(f"trained in {report['seconds']:.0f} s; wrote {a.out}")


def cmd_model_card(a: argparse.Namespace) -> None:
    from core.model_card import write_model_card

    print(write_model_card(a.model_dir, scenes=a.scenes, seed=a.seed))


def cmd_demo(a: argparse.Namespace) -> None:
    from core.demo import demo_clip, ensure_demo
    from core.pipeline import classify_path, open_index

    data, index = ensure_demo()
    print(f"demo dataset: {data}\ndemo index:   {index}")
    if a.write_asset:
        from core.demo import write_demo_asset

        print(f"start-up asset: {write_demo_asset(index_dir=index, data_dir=data)}")
        return
    if not a.prepare_only:
        model, store = open_index(index, None)
        result = classify_path(demo_clip(data), model, store)
        print(result.to_text(store.schema))


def cmd_quantize(a: argparse.Namespace) -> None:
    from core.quant.export import quantize_to_folder

    out = quantize_to_folder(a.model, bits=a.bits, out=a.out, method=a.method, calibration=a.calibration,
                             group_size=a.group_size, seed=a.seed, progress=True)
    print(f"wrote {out} (load it as file:{out})")


def cmd_adapt(a: argparse.Namespace) -> None:
    from core.train.adapt import AdaptOptions, adapt

    options = AdaptOptions(epochs=a.epochs, domain_lambda=a.domain_lambda, lr=a.lr, batch_size=a.batch_size,
                           max_target_frames=a.max_target_frames, augment=not a.no_augment, seed=a.seed,
                           device=a.device)

    def show(info: dict) -> None:
        if info.get("phase") == "epoch_done":
            print(f"epoch {info['epoch']}/{info['epochs']}: loss {info['loss']:.4f}, domain accuracy "
                  f"{info['domain_acc_pooled']:.3f} (pooled) {info['domain_acc_tokens']:.3f} (tokens)", file=sys.stderr)
        elif info.get("phase") in ("loading", "measuring", "saving"):
            print(f"{info['phase']}...", file=sys.stderr)

    r = adapt(a.data, a.target, a.model, a.out, options, index=a.index, state_dir=a.state, on_progress=show)
    print(f"wrote {r.model_dir} (load it as {r.model_name}; identity {r.identity})")
    for key, label in (("familiarity_median", "target familiarity (median)"),
                       ("flagged_share", "target frames unlike the index"),
                       ("domain_probe", "domain probe accuracy")):
        print(f"{label}: {r.before[key]:.3f} -> {r.after[key]:.3f}")


def cmd_eval_retrieval(a: argparse.Namespace) -> None:
    from core.models import load_model
    from core.retrieval.evaluate import evaluate_retrieval, report_text

    report = evaluate_retrieval(a.data, load_model(a.model), split=a.split, method=a.method,
                                moments=not a.no_moments)
    print(json.dumps(report, indent=2) if a.json else report_text(report))


class _VoteSpaces(Sequence):
    """``core.predict.VOTE_SPACES``, read when argparse first looks at it (to check a value or to
    write a help text): importing core.predict loads numpy, which building the parser need not."""

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        from core.predict import VOTE_SPACES

        return VOTE_SPACES[i]

    def __len__(self) -> int:
        from core.predict import VOTE_SPACES

        return len(VOTE_SPACES)


def _add_vote_space(s: argparse.ArgumentParser) -> None:
    # A metavar, else add_argument itself reads the choices to lay out the usage line.
    s.add_argument("--vote-space", choices=_VoteSpaces(), default="embedding", metavar="SPACE",
                   help="%(choices)s: neighbours by the whole embedding (default), or per attribute by its value prompts")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scenescope", description="Explore and triage driving scenes with CLIP.")
    schema_help = (f"attribute schema YAML for {', '.join(SCHEMA_COMMANDS)} "
                   "(default: the bundled core/schema/hsd.yaml)")
    p.add_argument("--schema", metavar="PATH", default=None, help=schema_help)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="render a synthetic driving dataset with known labels")
    s.add_argument("--out", required=True)
    s.add_argument("--scenes", type=int, default=1000, help="single-frame scenes")
    s.add_argument("--clips", type=int, default=0, help="clips driving through one place")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", default="320x180", help="frame size WxH")
    s.add_argument("--fps", type=float, default=2.0, help="clip frame rate")
    s.add_argument("--qa", action="store_true", help="also write the question bank qa.jsonl beside the manifest")
    s.set_defaults(fn=cmd_synth)

    s = sub.add_parser("index", help="embed a dataset split into a FAISS index")
    s.add_argument("--data", required=False, help="dataset folder with a manifest")
    s.add_argument("--out", required=True, help="index folder, e.g. indexes/mydata")
    s.add_argument("--model", default="scenescope-tiny")
    s.add_argument("--split", default="train", help="train, val, test or all")
    s.add_argument("--factory", default="Flat", help="FAISS index factory string (Flat, HNSW32, IVF1024,Flat, ...)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--resume", action="store_true", help="continue an interrupted build")
    s.add_argument("--discard", action="store_true", help="delete an interrupted build")
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("classify", help="vote the attributes of an image or clip from its k nearest scenes")
    s.add_argument("path", help="image, video (mp4/mov/avi/mkv/gif) or folder of frames")
    s.add_argument("--index", required=True)
    s.add_argument("--model", default=None, help="defaults to the index's model")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--fps", type=float, default=2.0, help="clip sampling rate")
    s.add_argument("--smoothing", type=int, default=1, help="majority window over frames (odd)")
    s.add_argument("--json", action="store_true")
    _add_vote_space(s)
    s.set_defaults(fn=cmd_classify)

    s = sub.add_parser("eval", help="per-attribute precision/recall/F1 of k-NN votes on a split")
    s.add_argument("--index", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--model", default=None)
    s.add_argument("--split", default="test")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--json", action="store_true")
    s.add_argument("--out", help="also write the Markdown report here")
    _add_vote_space(s)
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("models", help="list the model registry")
    s.set_defaults(fn=cmd_models)

    s = sub.add_parser("import", help="write a manifest for a labelled folder")
    s.add_argument("format", choices=["table", "hsd", "bdd100k", "drivelm"])
    s.add_argument("--root", required=True, help="dataset folder (paths are relative to it); for drivelm "
                   "the folder holding (somewhere below) nuscenes/samples")
    s.add_argument("--labels", help="CSV/JSONL table, HSD sentences, or BDD100K JSON")
    s.add_argument("--qa", help="drivelm: DriveLM-nuScenes QA JSON (e.g. train_sample.json, test_eval.json)")
    s.add_argument("--out", help="drivelm: new dataset folder (manifest, qa.jsonl, key_frames.jsonl, images)")
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("ask", help="answer a question about an image or clip from its k-NN votes")
    s.add_argument("path", help="image, video or folder of frames")
    s.add_argument("question", help="e.g. \"Is the road surface wet?\" (at most 512 characters)")
    s.add_argument("--option", action="append", metavar="TEXT", help="a multiple-choice option (repeat)")
    s.add_argument("--index", help="index to vote with (default: $SCENESCOPE_INDEX, else the demo index)")
    s.add_argument("--answerer", choices=["retrieval", "vlm"], default="retrieval")
    s.add_argument("--vlm", metavar="DIR", help="--answerer vlm: the VLM folder (scenescope train-vqa --out)")
    s.add_argument("--keep", type=float, default=None, help="--answerer vlm: share of patch tokens kept "
                   "(default: the VLM's own, 0.25)")
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
    s.add_argument("--answerer", choices=["retrieval"], default="retrieval")
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

    s = sub.add_parser("leakage", help="near-duplicate frames across splits of an index")
    s.add_argument("--index", required=True)
    s.add_argument("--threshold", type=float, default=0.95)
    s.add_argument("--top", type=int, default=20)
    s.set_defaults(fn=cmd_leakage)

    s = sub.add_parser("train-default", help="reproduce the bundled model from scratch")
    s.add_argument("--out", default="assets/scenescope-tiny")
    s.add_argument("--work", default=None, help="stage checkpoints and data (default: <workspace>/train-default)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where every stage trains")
    add_dataclass_options(s, DefaultRecipe)
    s.set_defaults(fn=cmd_train_default)

    s = sub.add_parser("train-vqa", help="train the small VLM (DriVLM's two stages) on a dataset's qa.jsonl")
    s.add_argument("--data", required=True, help="dataset folder (manifest, qa.jsonl from synth --qa)")
    s.add_argument("--out", required=True, help="VLM folder to write (safetensors, config, tokenizer, card)")
    s.add_argument("--model", default="scenescope-tiny", help="registry vision tower (frozen)")
    s.add_argument("--text-epochs", type=int, default=1, help="language warm-up of the LM, no image")
    s.add_argument("--stage1-epochs", type=int, default=2, help="projector alignment on captions")
    s.add_argument("--stage2-epochs", type=int, default=4, help="projector + LM fine-tuning on the QA mix")
    s.add_argument("--keep", type=float, default=0.25, help="share of patch tokens kept per question")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--max-rows", type=int, default=None, help="at most N questions per split (smoke runs)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(fn=cmd_train_vqa)

    s = sub.add_parser("model-card", help="measure a model on fresh synthetic data and write its card")
    s.add_argument("model_dir", nargs="?", default="assets/scenescope-tiny")
    s.add_argument("--scenes", type=int, default=3000)
    s.add_argument("--seed", type=int, default=1001, help="data seed; must differ from training's")
    s.set_defaults(fn=cmd_model_card)

    s = sub.add_parser("demo", help="prepare the embedded demo (dataset + index) and classify a demo clip")
    s.add_argument("--prepare-only", action="store_true")
    s.add_argument("--write-asset", action="store_true",
                   help="save the demo's vectors and map as assets/demo (after a model or renderer change)")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("quantize", help="weight-only INT8/INT4 quantization of a model's vision encoder")
    s.add_argument("--model", default="scenescope-tiny", help="registry name of the model to quantize")
    s.add_argument("--bits", type=int, choices=(8, 4), required=True)
    s.add_argument("--method", choices=("rtn", "gptq"), default="gptq", help="round-to-nearest or GPTQ")
    s.add_argument("--calibration", type=int, default=200, help="synthetic calibration frames (GPTQ)")
    s.add_argument("--group-size", type=int, default=128, help="input columns sharing one scale")
    s.add_argument("--seed", type=int, default=4242, help="calibration data seed")
    s.add_argument("--out", required=True, help="new folder for the file: model")
    s.set_defaults(fn=cmd_quantize)

    s = sub.add_parser("adapt", help="adapt a model to unlabelled footage (domain-adversarial + distillation)")
    s.add_argument("--model", default="scenescope-tiny", help="registry name of the model to adapt")
    s.add_argument("--target", required=True, nargs="+", help="unlabelled target images, clips or folders of them")
    s.add_argument("--data", required=True, help="labelled source dataset folder (its train split trains)")
    s.add_argument("--out", required=True, help="new folder for the file: model")
    s.add_argument("--index", default=None, help="index (built with --model) to measure the target against")
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--lambda", dest="domain_lambda", metavar="LAMBDA", type=float, default=0.1,
                   help="gradient-reversal strength (0: no alignment, only the source task and distillation)")
    s.add_argument("--lr", type=float, default=1e-5)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--max-target-frames", type=int, default=1000)
    s.add_argument("--no-augment", action="store_true", help="no blur/noise/JPEG/colour augmentation")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--state", default=None, help="per-epoch state folder (default <out>.state); rerun to resume")
    s.set_defaults(fn=cmd_adapt)

    s = sub.add_parser("eval-retrieval", help="text<->clip R@1/5/10, MdR, MnR and moments on a clip dataset")
    s.add_argument("--data", required=True, help="clip dataset folder (core.retrieval.data)")
    s.add_argument("--split", choices=("test", "all"), default="test", help="clips in the gallery")
    s.add_argument("--model", default="scenescope-tiny", help="registry name of the model")
    s.add_argument("--method", choices=("afa", "meanp", "teacher"), default="afa",
                   help="clip vectors: the distilled AFA student (default), mean pooling, or the fine-grained teacher")
    s.add_argument("--no-moments", action="store_true", help="skip moment retrieval in the long drives")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_eval_retrieval)

    for name in SCHEMA_COMMANDS:
        # Also accepted after the command; SUPPRESS keeps an absent one from hiding a global one.
        sub.choices[name].add_argument("--schema", metavar="PATH", default=argparse.SUPPRESS, help=schema_help)
    from core.jobs.cli import register  # finetune and jobs live beside their feature

    register(sub)
    for add_command in _plugin_commands():
        add_command(sub)
    return p


PLUGIN_GROUP = "scenescope.commands"


def _plugin_commands() -> list:
    """Sub-command registrars declared by installed packages in the ``scenescope.commands`` entry-point
    group (pyproject.toml), each ``add(subparsers)``. Layers above core add their commands this way
    (the Gradio demo's ``demo-ui``), so core never imports them; a registrar imports its heavy
    modules only when its command runs. One that fails to load is reported and left out."""
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            out.append(ep.load())
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take every command down with it
            print(f"warning: command {ep.name} ({ep.value}) left out: {type(e).__name__}: {e}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "index" and not args.discard and not args.data:
        print("error: index needs --data DIR", file=sys.stderr)
        return 2
    try:
        args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one-line contract holds for every type, expected or not
        if os.environ.get("SCENESCOPE_DEBUG"):
            raise
        from core.quote import one_line

        msg = one_line(str(e), 500) or type(e).__name__
        if not isinstance(e, ValueError | RuntimeError | OSError | LookupError):
            msg = f"{type(e).__name__}: {msg}"  # unexpected: the type helps a bug report
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
