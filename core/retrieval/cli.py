"""``scenescope eval-retrieval``: text<->clip and moment retrieval metrics (core.retrieval)."""

from __future__ import annotations

import argparse
import json


def cmd_eval_retrieval(a: argparse.Namespace) -> None:
    from core.models import load_model
    from core.retrieval.evaluate import evaluate_retrieval, report_text

    report = evaluate_retrieval(a.data, load_model(a.model), split=a.split, method=a.method,
                                moments=not a.no_moments)
    print(json.dumps(report, indent=2) if a.json else report_text(report))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("eval-retrieval", help="text<->clip R@1/5/10, MdR, MnR and moments on a clip dataset")
    s.add_argument("--data", required=True, help="clip dataset folder (core.retrieval.data)")
    s.add_argument("--split", choices=("test", "all"), default="test", help="clips in the gallery")
    s.add_argument("--model", default="scenescope-tiny", help="registry name of the model")
    s.add_argument("--method", choices=("afa", "meanp", "teacher"), default="afa",
                   help="clip vectors: the distilled AFA student (default), mean pooling, or the fine-grained teacher")
    s.add_argument("--no-moments", action="store_true", help="skip moment retrieval in the long drives")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_eval_retrieval)
