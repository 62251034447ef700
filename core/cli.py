"""`scenescope` command line. Errors exit non-zero with one clear line (SCENESCOPE_DEBUG=1: traceback)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli_args import (  # noqa: F401 (re-exported)
    add_dataclass_options,
    add_vote_space,
    floats,
    frame_size,
    given_options,
    ints,
    schema_option,
)

if TYPE_CHECKING:
    pass



SCHEMA_COMMANDS = ("synth", "import", "index", "classify", "eval", "leakage", "train-vqa")  # the ones --schema reaches


def cmd_synth(a: argparse.Namespace) -> None:
    from core.synth import write_synth_dataset

    path = write_synth_dataset(Path(a.out), scenes=a.scenes, clips=a.clips, seed=a.seed,
                               size=frame_size(a.size), fps=a.fps, schema=schema_option(a), qa=a.qa,
                               randomize=a.randomize, objects=a.objects)
    print(f"wrote {path}")


def cmd_index(a: argparse.Namespace) -> None:
    from core.data import read_manifest
    from core.index import build_index, discard_build
    from core.models import load_model

    if a.discard:
        discard_build(Path(a.out))
        from core.index.ray_engine import discard_shards

        discard_shards(Path(a.out))  # the Ray engine's finished shards, if any
        print(f"discarded the unfinished build of {a.out}")
        return
    if a.engine == "ray":
        from core.index.ray_engine import build_index_ray, import_ray

        import_ray()  # without Ray: one line saying how to install it, before loading anything
        store = build_index_ray(read_manifest(a.data, schema_option(a)), load_model(a.model), a.model, Path(a.out),
                                split=a.split, factory=a.factory, batch_size=a.batch_size,
                                workers=a.workers or 2, address=a.address, resume=a.resume)
    else:
        store = build_index(read_manifest(a.data, schema_option(a)), load_model(a.model), Path(a.out),
                            split=a.split, factory=a.factory, batch_size=a.batch_size, resume=a.resume,
                            workers=2 if a.workers is None else a.workers)
    print(f"indexed {len(store)} frames into {a.out} ({a.factory}, model {store.manifest['model']})")


def cmd_classify(a: argparse.Namespace) -> None:
    from core.pipeline import classify_path, open_index
    from core.predict import vote_space

    model, store = open_index(a.index, a.model, schema_option(a))
    result = classify_path(Path(a.path), model, store, k=a.k, fps=a.fps, smoothing=a.smoothing,
                           prompt_space=vote_space(model, a.vote_space, store.schema))
    print(json.dumps(result.to_dict(), indent=2) if a.json else result.to_text(store.schema))


def cmd_eval(a: argparse.Namespace) -> None:
    from core.data import read_manifest
    from core.pipeline import evaluate_split, open_index
    from core.predict import vote_space

    schema = schema_option(a)
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

        print(f"wrote {import_drivelm(Path(a.root), Path(a.qa), Path(a.out), schema=schema_option(a))}")
        return
    if not a.labels:
        raise ValueError(f"import {a.format} needs --labels FILE")
    fn = {"table": importers.import_table, "hsd": importers.import_hsd,
          "bdd100k": importers.import_bdd100k}[a.format]
    print(f"wrote {fn(Path(a.root), Path(a.labels), schema=schema_option(a))}")


def cmd_leakage(a: argparse.Namespace) -> None:
    from core.data.leakage import find_leakage
    from core.index import IndexStore

    store = IndexStore.load(Path(a.index), schema=schema_option(a))
    pairs = find_leakage(store.embeddings(), store.meta["split"].to_numpy(), threshold=a.threshold)
    print(pairs.head(a.top).to_string(index=False) if len(pairs) else "no near-duplicates across splits")


def cmd_model_card(a: argparse.Namespace) -> None:
    from core.model_card import write_model_card

    print(write_model_card(a.model_dir, scenes=a.scenes, seed=a.seed))


def cmd_demo(a: argparse.Namespace) -> None:
    from core.demo import demo_clip, ensure_demo
    from core.synth.pending import LOG, pending_frames

    data, index = ensure_demo(frames_later=a.frames_later and not a.write_asset)
    print(f"demo dataset: {data}\ndemo index:   {index}")
    pending = pending_frames(data)
    if pending:
        print(f"demo frames:  {pending[0]:,} of {pending[1]:,} rendered; the rest render in the background "
              f"(log: {data / LOG})")
    if a.write_asset:
        from core.demo import write_demo_asset

        print(f"start-up asset: {write_demo_asset(index_dir=index, data_dir=data)}")
        return
    if not a.prepare_only:
        from core.pipeline import classify_path, open_index  # torch: not for --prepare-only

        model, store = open_index(index, None)
        result = classify_path(demo_clip(data), model, store)
        print(result.to_text(store.schema))


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
    s.add_argument("--objects", action="store_true", help="also write objects.jsonl (each frame's cones, barrels, "
                   "signs, gates, signals, vehicles: class, centre, box); with --qa, DriveLM's important-objects "
                   "question with <c1,CAM_FRONT,x,y> positions")
    s.add_argument("--randomize", action="store_true", help="domain randomization: camera, distractors, textures, "
                   "photometric noise, lens, blur and JPEG vary (same labels; off: the usual look)")
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
    s.add_argument("--engine", choices=("default", "ray"), default="default",
                   help="default: one process; ray: an actor pool on Ray (pip install 'scenescope[ray]')")
    s.add_argument("--address", default=None,
                   help="ray engine: auto or ray://HOST:PORT to join a cluster (default: start a local Ray)")
    s.add_argument("--workers", type=int, default=None,
                   help="ray engine: embedding actors (default 2); default engine: image loader threads (default 2)")
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("classify", help="vote the attributes of an image or clip from its k nearest scenes")
    s.add_argument("path", help="image, video (mp4/mov/avi/mkv/gif) or folder of frames")
    s.add_argument("--index", required=True)
    s.add_argument("--model", default=None, help="defaults to the index's model")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--fps", type=float, default=2.0, help="clip sampling rate")
    s.add_argument("--smoothing", type=int, default=1, help="majority window over frames (odd)")
    s.add_argument("--json", action="store_true")
    add_vote_space(s)
    s.set_defaults(fn=cmd_classify)

    s = sub.add_parser("eval", help="per-attribute precision/recall/F1 of k-NN votes on a split")
    s.add_argument("--index", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--model", default=None)
    s.add_argument("--split", default="test")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--json", action="store_true")
    s.add_argument("--out", help="also write the Markdown report here")
    add_vote_space(s)
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

    s = sub.add_parser("leakage", help="near-duplicate frames across splits of an index")
    s.add_argument("--index", required=True)
    s.add_argument("--threshold", type=float, default=0.95)
    s.add_argument("--top", type=int, default=20)
    s.set_defaults(fn=cmd_leakage)

    s = sub.add_parser("model-card", help="measure a model on fresh synthetic data and write its card")
    s.add_argument("model_dir", nargs="?", default="assets/scenescope-tiny")
    s.add_argument("--scenes", type=int, default=3000)
    s.add_argument("--seed", type=int, default=1001, help="data seed; must differ from training's")
    s.set_defaults(fn=cmd_model_card)

    s = sub.add_parser("demo", help="prepare the embedded demo (dataset + index) and classify a demo clip")
    s.add_argument("--prepare-only", action="store_true")
    s.add_argument("--frames-later", action="store_true",
                   help="render the demo's frames in a background process (`make run`): the index comes from "
                        "the shipped asset, so the workbench works at once and thumbnails fill in as frames appear")
    s.add_argument("--write-asset", action="store_true",
                   help="save the demo's vectors and map as assets/demo (after a model or renderer change)")
    s.set_defaults(fn=cmd_demo)

    # Each feature's commands live beside it (register(sub)); imported here, when the parser is built.
    from core.jobs import cli as jobs_cli
    from core.quant import cli as quant_cli
    from core.retrieval import cli as retrieval_cli
    from core.train import cli as train_cli
    from core.vqa import cli as vqa_cli

    for feature in (vqa_cli, train_cli, quant_cli, retrieval_cli, jobs_cli):
        feature.register(sub)
    for name in SCHEMA_COMMANDS:
        # Also accepted after the command; SUPPRESS keeps an absent one from hiding a global one.
        sub.choices[name].add_argument("--schema", metavar="PATH", default=argparse.SUPPRESS, help=schema_help)
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
