"""``scenescope train-default`` and ``adapt``: train the bundled model, adapt a model to new footage."""

from __future__ import annotations

import argparse
import sys

from core.cli_args import add_dataclass_options, given_options
from core.train.recipe import DefaultRecipe


def cmd_train_default(a: argparse.Namespace) -> None:
    from core.train.default import train_default

    # Options left out keep DefaultRecipe's values, which are the bundled model's.
    recipe = DefaultRecipe(**given_options(a, DefaultRecipe))
    summary = train_default(recipe, out=a.out, work=a.work, device=a.device)
    print(f"trained in {summary['train_seconds']} s; wrote {a.out}")


def cmd_adapt(a: argparse.Namespace) -> None:
    from core.train.adapt import AdaptOptions, adapt

    options = AdaptOptions(epochs=a.epochs, domain_lambda=a.domain_lambda, lr=a.lr, batch_size=a.batch_size,
                           max_target_frames=a.max_target_frames, augment=not a.no_augment, seed=a.seed,
                           randomize=a.randomize,
                           device=a.device)

    def show(info: dict) -> None:
        if info.get("phase") == "epoch_done":
            print(f"epoch {info['epoch']}/{info['epochs']}: loss {info['loss']:.4f}, domain accuracy "
                  f"{info['domain_acc_pooled']:.3f} (pooled) {info['domain_acc_tokens']:.3f} (tokens)", file=sys.stderr)
        elif info.get("phase") in ("loading", "measuring", "saving"):
            print(f"{info['phase']}...", file=sys.stderr)

    r = adapt(a.data, a.target, a.model, a.out, options, index=a.index, state_dir=a.state, on_progress=show,
              labels=a.labels)
    print(f"wrote {r.model_dir} (load it as {r.model_name}; identity {r.identity})")
    for key, label in (("familiarity_median", "target familiarity (median)"),
                       ("flagged_share", "target frames unlike the index"),
                       ("domain_probe", "domain probe accuracy")):
        print(f"{label}: {r.before[key]:.3f} -> {r.after[key]:.3f}")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train-default", help="reproduce the bundled model from scratch")
    s.add_argument("--out", default="assets/scenescope-tiny")
    s.add_argument("--work", default=None, help="stage checkpoints and data (default: <workspace>/train-default)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where every stage trains")
    add_dataclass_options(s, DefaultRecipe)
    s.set_defaults(fn=cmd_train_default)

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
    s.add_argument("--randomize", action="store_true",
                   help="also the renderer's domain randomization as augmentation (camera zoom/pitch, lens, texture)")
    s.add_argument("--labels", default=None,
                   help="CSV of target-frame labels (file,<attribute>...): accuracy before/after; evaluation only")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--state", default=None, help="per-epoch state folder (default <out>.state); rerun to resume")
    s.set_defaults(fn=cmd_adapt)
