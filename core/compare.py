"""Before/after comparison of two models on the same evaluation rows.

Input: two :func:`core.eval.evaluate` reports over the same frames (same split, same order), and
optionally the two models' 2-D maps of the same indexed frames. Output: per-attribute F1 with
deltas, the classes that improved and regressed, the failures fixed and the new ones, and the
after-map Procrustes-aligned onto the before-map so the two can be shown side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.schema import Schema, default_schema

if TYPE_CHECKING:
    from core.data import Dataset
    from core.index import IndexStore
    from core.models import SceneModel

ATTRIBUTE_COLUMNS = ["attribute", "display", "f1_before", "f1_after", "delta", "n"]
CLASS_COLUMNS = ["attribute", "value", "display", "f1_before", "f1_after", "delta", "support"]
FAILURE_COLUMNS = ["row", "path", "attribute", "truth", "before", "after"]


@dataclass
class Comparison:
    macro_f1_before: float
    macro_f1_after: float
    attributes: pd.DataFrame  # ATTRIBUTE_COLUMNS, one row per attribute
    classes: pd.DataFrame  # CLASS_COLUMNS, one row per (attribute, value) seen in either report
    improved: pd.DataFrame  # classes whose F1 rose by more than min_delta, largest gain first
    regressed: pd.DataFrame  # classes whose F1 fell by more than min_delta, largest loss first
    fixed: pd.DataFrame  # FAILURE_COLUMNS: wrong before, right after
    new_failures: pd.DataFrame  # FAILURE_COLUMNS: right before, wrong after
    maps: dict[str, Any] = field(default_factory=dict)  # before, after (aligned), disparity
    labels: dict[str, str] = field(default_factory=dict)  # names of the two models

    @property
    def delta(self) -> float:
        return self.macro_f1_after - self.macro_f1_before

    def to_dict(self) -> dict[str, Any]:
        def records(df: pd.DataFrame) -> list[dict]:
            return json.loads(df.to_json(orient="records"))

        maps = {k: (np.asarray(v).tolist() if k in ("before", "after") else v) for k, v in self.maps.items()}
        return {
            "macro_f1_before": self.macro_f1_before, "macro_f1_after": self.macro_f1_after,
            "delta": self.delta, "attributes": records(self.attributes), "classes": records(self.classes),
            "improved": records(self.improved), "regressed": records(self.regressed),
            "fixed": records(self.fixed), "new_failures": records(self.new_failures),
            "maps": maps, "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        maps = {k: (np.asarray(v, dtype=np.float64) if k in ("before", "after") else v)
                for k, v in (d.get("maps") or {}).items()}
        return cls(
            d["macro_f1_before"], d["macro_f1_after"],
            pd.DataFrame(d["attributes"], columns=ATTRIBUTE_COLUMNS),
            pd.DataFrame(d["classes"], columns=CLASS_COLUMNS),
            pd.DataFrame(d["improved"], columns=CLASS_COLUMNS),
            pd.DataFrame(d["regressed"], columns=CLASS_COLUMNS),
            pd.DataFrame(d["fixed"], columns=FAILURE_COLUMNS),
            pd.DataFrame(d["new_failures"], columns=FAILURE_COLUMNS),
            maps, d.get("labels") or {},
        )

    def to_markdown(self, max_rows: int = 10) -> str:
        before = self.labels.get("before", "before")
        after = self.labels.get("after", "after")
        lines = [
            f"## Before / after: macro F1 {self.macro_f1_before:.3f} -> {self.macro_f1_after:.3f} "
            f"({_signed(self.delta)})",
            "",
            f"before = `{before}`, after = `{after}`",
            "",
            "| attribute | F1 before | F1 after | delta |",
            "|---|---|---|---|",
            *[f"| {r.display} | {r.f1_before:.3f} | {r.f1_after:.3f} | {_signed(r.delta)} |"
              for r in self.attributes.itertuples()],
            f"| **macro** | **{self.macro_f1_before:.3f}** | **{self.macro_f1_after:.3f}** | "
            f"**{_signed(self.delta)}** |",
            "",
        ]
        for title, df in (("Improved classes", self.improved), ("Regressed classes", self.regressed)):
            lines += [f"### {title} ({len(df)})", ""]
            if len(df):
                lines += ["| attribute | class | F1 before | F1 after | delta | support |", "|---|---|---|---|---|---|"]
                lines += [f"| {r.attribute} | {r.display} | {r.f1_before:.3f} | {r.f1_after:.3f} | "
                          f"{_signed(r.delta)} | {r.support} |" for r in df.head(max_rows).itertuples()]
                if len(df) > max_rows:
                    lines.append(f"| ... {len(df) - max_rows} more | | | | | |")
            lines.append("")
        lines.append(f"Failures fixed: {len(self.fixed)}; new failures: {len(self.new_failures)} "
                     f"(net {_signed(len(self.fixed) - len(self.new_failures), 0)}).")
        if self.maps.get("disparity") is not None:
            lines.append(f"Maps Procrustes-aligned (disparity {self.maps['disparity']:.3f}).")
        return "\n".join(lines) + "\n"


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _display(schema: Schema, attr: str, value: str) -> str:
    try:
        return schema.display(attr, value)
    except ValueError:  # a value outside the schema (an old report): show it as is
        return value


def attribute_table(before: dict, after: dict, schema: Schema) -> pd.DataFrame:
    rows = []
    for a in schema.attributes:
        b, f = before["attributes"].get(a.name), after["attributes"].get(a.name)
        if b is None or f is None:
            continue
        rows.append({"attribute": a.name, "display": a.display, "f1_before": float(b["f1"]),
                     "f1_after": float(f["f1"]), "delta": float(f["f1"]) - float(b["f1"]),
                     "n": int(f.get("n", 0))})
    return pd.DataFrame(rows, columns=ATTRIBUTE_COLUMNS)


def class_table(before: dict, after: dict, schema: Schema) -> pd.DataFrame:
    """Per (attribute, class) F1 before and after; a class absent from one report scores 0 there."""
    rows = []
    for a in schema.attributes:
        b = (before["attributes"].get(a.name) or {}).get("per_class", {})
        f = (after["attributes"].get(a.name) or {}).get("per_class", {})
        order = [v for v in a.value_names if v in b or v in f] + sorted((set(b) | set(f)) - set(a.value_names))
        for v in order:
            fb, fa = float(b.get(v, {}).get("f1", 0.0)), float(f.get(v, {}).get("f1", 0.0))
            support = int(f.get(v, b.get(v, {})).get("support", 0))
            rows.append({"attribute": a.name, "value": v, "display": _display(schema, a.name, v),
                         "f1_before": fb, "f1_after": fa, "delta": fa - fb, "support": support})
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def failure_changes(before: dict, after: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fixed, new): failures keyed by (row, attribute) present in only one of the reports."""
    fb = {(f["row"], f["attribute"]): f for f in before.get("failures", [])}
    fa = {(f["row"], f["attribute"]): f for f in after.get("failures", [])}

    def row(f: dict, before_pred: str, after_pred: str) -> dict:
        return {"row": int(f["row"]), "path": f.get("path"), "attribute": f["attribute"],
                "truth": f["truth"], "before": before_pred, "after": after_pred}

    fixed = [row(f, f["prediction"], f["truth"]) for key, f in fb.items() if key not in fa]
    new = [row(f, f["truth"], f["prediction"]) for key, f in fa.items() if key not in fb]
    key = ["row", "attribute"]
    return (pd.DataFrame(fixed, columns=FAILURE_COLUMNS).sort_values(key, ignore_index=True),
            pd.DataFrame(new, columns=FAILURE_COLUMNS).sort_values(key, ignore_index=True))


def align_maps(before_xy: np.ndarray, after_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The after-map rotated (or mirrored), scaled and shifted onto the before-map (Procrustes).

    UMAP's axes are arbitrary, so without this the same cluster lands in different corners and the
    eye cannot follow a frame from one map to the other. Rows must be the same frames in the same
    order. Returns (before, after aligned, disparity): the residual squared distance as a share of
    the before-map's spread (0: same layout up to rotation and scale).
    """
    from core.maps import aligned_layouts

    a, b = aligned_layouts(before_xy, after_xy)
    if len(a) < 3:
        raise ValueError("aligning two maps needs at least 3 points")
    spread = float(((a - a.mean(axis=0)) ** 2).sum())
    disparity = float(((a - b) ** 2).sum()) / spread if spread else 0.0
    return a, b, disparity


def compare_models(
    report_before: dict,
    report_after: dict,
    schema: Schema | None = None,
    min_delta: float = 0.01,
    map_before: np.ndarray | None = None,
    map_after: np.ndarray | None = None,
    labels: dict[str, str] | None = None,
) -> Comparison:
    """Compare two evaluation reports of the same rows (and, optionally, two maps of the same frames)."""
    schema = schema or default_schema()
    if report_before.get("rows") != report_after.get("rows"):
        raise ValueError(f"reports cover different rows ({report_before.get('rows')} vs "
                         f"{report_after.get('rows')}); evaluate both models on the same split")
    classes = class_table(report_before, report_after, schema)
    improved = classes[classes["delta"] > min_delta].sort_values("delta", ascending=False, ignore_index=True)
    regressed = classes[classes["delta"] < -min_delta].sort_values("delta", ignore_index=True)
    fixed, new = failure_changes(report_before, report_after)
    maps: dict[str, Any] = {}
    if map_before is not None and map_after is not None:
        b, a, disparity = align_maps(map_before, map_after)
        maps = {"before": b, "after": a, "disparity": disparity}
    return Comparison(
        float(report_before["macro_f1"]), float(report_after["macro_f1"]),
        attribute_table(report_before, report_after, schema), classes, improved, regressed,
        fixed, new, maps, dict(labels or {}),
    )


def project_2d(store: IndexStore, seed: int = 0) -> np.ndarray:
    """2-D map of an index: the workbench's cached UMAP when available, else a direct UMAP."""
    try:
        from core.maps import umap_projection
    except ImportError:
        umap_projection = None
    if umap_projection is not None:
        return np.asarray(umap_projection(store))
    import umap

    x = np.asarray(store.embeddings(), dtype=np.float32)
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(15, len(x) - 1)), random_state=seed)
    return reducer.fit_transform(x)


def evaluate_knn(part: Dataset, model: SceneModel, store: IndexStore, k: int = 5) -> dict:
    """k-NN vote every frame of a dataset (split) against ``store``; scored by ``core.scoring``."""
    from core.scoring import score_dataset

    return score_dataset(part, model, store, k=k, progress=False)


def before_after(
    dataset: Dataset,
    before_model: str,
    after_model: str,
    work_dir: str | Path,
    eval_split: str = "test",
    k: int = 5,
    maps: bool = True,
    emit: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> Comparison:
    """Index ``dataset``'s train split with each model, evaluate both on ``eval_split`` and compare.

    The indexes go to ``work_dir/index-before`` and ``work_dir/index`` (the re-indexed dataset).
    ``eval_split`` falls back to val when the dataset has no frames in it.
    """
    from core.index import build_index
    from core.models import load_model

    emit = emit or (lambda _info: None)
    work_dir = Path(work_dir)
    split = eval_split if len(dataset.split(eval_split)) else "val"
    if not len(dataset.split(split)):
        raise ValueError(f"{dataset.root}: no {eval_split} or val frames to compare the models on")
    reports, stores = {}, {}
    for side, name, folder in (("before", before_model, "index-before"), ("after", after_model, "index")):
        emit({"phase": f"indexing ({side})"})
        model = load_model(name)
        stores[side] = build_index(dataset, model, work_dir / folder, split="train", progress=progress)
        emit({"phase": f"evaluating ({side})"})
        reports[side] = evaluate_knn(dataset.split(split), model, stores[side], k=k)
    xy = {}
    if maps:
        emit({"phase": "maps"})
        xy = {side: project_2d(stores[side]) for side in ("before", "after")}
    return compare_models(reports["before"], reports["after"], dataset.schema,
                          map_before=xy.get("before"), map_after=xy.get("after"),
                          labels={"before": before_model, "after": after_model, "split": split,
                                  "index_before": str(work_dir / "index-before"),
                                  "index_after": str(work_dir / "index")})
