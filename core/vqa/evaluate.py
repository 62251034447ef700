"""Answer a dataset's question bank (``qa.jsonl``, one split) and score it with the challenge's metrics.

Votes: when the index holds the dataset's frames (same dataset folder, every needed path indexed),
each frame votes under the one leave-out rule (``core.scoring.vote_rows``: no frame of its own clip,
train-split voters), so a frame never answers from itself; otherwise the frames are embedded and vote
as outside queries (``core.pipeline.classify_images``, familiarity judged).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.predict import Vote
from core.vqa.answer import DEFAULT_THRESHOLD, Answer, answer
from core.vqa.drivelm import option_letter, read_qa_table
from core.vqa.questions import CLIP_FRAME

if TYPE_CHECKING:
    import torch

    from core.data import Dataset
    from core.types import IndexStore, SceneModel
    from core.vqa.vlm_answerer import VLMAnswerer

_EMBED_CHUNK = 256  # images held in memory at once when the frames are not indexed


def prediction_text(ans: Answer, row: Mapping[str, Any]) -> str:
    """What an answer says in the question bank's answer form: a letter for multiple choice (the
    schema's no-answer text when no option was chosen), else the answer's text."""
    if row["type"] == "multiple_choice":
        return option_letter(ans.choice) if ans.choice is not None else ans.text
    return ans.text


def _frame_votes(part: Dataset, model: SceneModel, store: IndexStore, k: int, **vote_kw: object) -> list[Vote]:
    """A vote per row of ``part`` (see the module docstring for which rule)."""
    from core.pipeline import classify_images, load_image
    from core.scoring import vote_rows

    rel = part.frames["path"].astype(str).tolist()
    same = store.data_root.resolve() == Path(part.root).resolve()
    where = {p: i for i, p in enumerate(store.paths())} if same else {}
    if same and all(p in where for p in rel):
        return vote_rows(store, [where[p] for p in rel], k=k, prompt_space=vote_kw.get("prompt_space"))  # type: ignore[arg-type]
    votes: list[Vote] = []
    for s in range(0, len(rel), _EMBED_CHUNK):
        images = [load_image(part.abspath(p)) for p in rel[s : s + _EMBED_CHUNK]]
        votes += classify_images(images, model, store, k, **vote_kw)
    return votes


def answer_dataset(
    data: str | Path, model: SceneModel, store: IndexStore, *, split: str = "test", k: int = 5,
    threshold: float = DEFAULT_THRESHOLD, limit: int | None = None, qa_path: str | Path | None = None,
    objects: Mapping[str, Mapping[str, Any]] | None = None, **vote_kw: object,
) -> tuple[pd.DataFrame, dict[str, Answer]]:
    """The split's questions (a QA table) and each one's Answer by the retrieval answerer, by id.
    ``limit``: only the first questions (quick checks); ``qa_path``: the question bank (default
    ``data/qa.jsonl``); ``objects``: the index's object annotations by frame path (default: its
    dataset's ``objects.jsonl``, if any), which object questions vote on."""
    from core.data import read_manifest
    from core.synth.objects import read_objects

    ds = read_manifest(data, store.schema)
    part = ds.split(split)
    if not len(part):
        raise ValueError(f"{data}: the dataset has no {split!r} frames")
    qa = read_qa_table(qa_path if qa_path is not None else data)
    clips = set(part.frames["clip_id"].astype(str))
    qa = qa[qa["scene"].astype(str).isin(clips)].reset_index(drop=True)
    if limit is not None:
        qa = qa.head(int(limit))
    if not len(qa):
        raise ValueError(f"{data}: qa.jsonl has no questions about the {split!r} split")
    frames = part.frames.assign(_row=np.arange(len(part)), _fi=part.frames.get("frame_index", 0))
    needed = frames[frames["clip_id"].astype(str).isin(set(qa["scene"].astype(str)))]
    sub = type(part)(part.root, needed.drop(columns=["_row", "_fi"]).reset_index(drop=True), part.schema)
    votes = _frame_votes(sub, model, store, k, **vote_kw)
    if objects is None:
        objects = read_objects(store.data_root)
    by_clip: dict[str, list[tuple[int, Vote]]] = {}
    for fi, clip, v in zip(needed["_fi"].fillna(0).astype(int), needed["clip_id"].astype(str), votes, strict=True):
        by_clip.setdefault(clip, []).append((int(fi), v))
    answers: dict[str, Answer] = {}
    for row in qa.to_dict("records"):
        frames_of = sorted(by_clip[str(row["scene"])], key=lambda x: x[0])
        if str(row["frame"]) == CLIP_FRAME:
            chosen = [v for _, v in frames_of]
        else:
            chosen = [v for fi, v in frames_of if fi == int(row["frame"])]
            if not chosen:
                raise ValueError(f"{data}/qa.jsonl {row['id']}: clip {row['scene']} has no frame {row['frame']}")
        answers[row["id"]] = answer(row["question"], chosen, schema=store.schema, threshold=threshold,
                                    objects=objects)
    return qa, answers


def question_frames(
    data: str | Path, schema: Any = None, *, split: str = "test", limit: int | None = None,
    qa_path: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """The split's questions and, by id, the image each is asked about (a clip question: the clip's
    middle frame, as the VLM was trained)."""
    from core.data import read_manifest
    from core.vqa.train_data import frame_rows

    part = read_manifest(data, schema).split(split)
    qa = read_qa_table(qa_path if qa_path is not None else data)
    qa = qa[qa["scene"].astype(str).isin(set(part.frames["clip_id"].astype(str)))].reset_index(drop=True)
    if limit is not None:
        qa = qa.head(int(limit))
    if not len(qa):
        raise ValueError(f"{data}: qa.jsonl has no questions about the {split!r} split")
    where = frame_rows(part.frames)
    images: dict[str, Path] = {}
    for row in qa.to_dict("records"):
        key = (str(row["scene"]), str(row["frame"]))
        if key not in where:
            raise ValueError(f"{data}/qa.jsonl {row['id']}: clip {row['scene']} has no frame {row['frame']}")
        images[row["id"]] = part.abspath(str(part.frames.iloc[where[key]]["path"]))
    return qa, images


def answer_dataset_vlm(
    data: str | Path, answerer: VLMAnswerer, *, split: str = "test", limit: int | None = None,
    qa_path: str | Path | None = None, patches: dict[Path, torch.Tensor] | None = None,
) -> tuple[pd.DataFrame, dict[str, Answer]]:
    """The split's questions and each one's Answer by the VLM answerer, by id. Each frame is embedded
    once (``patches``: image path -> patch tokens, filled here; pass one dict to reuse the tokens
    across calls, e.g. at two keep ratios)."""
    from core.images import open_image

    qa, images = question_frames(data, answerer.schema, split=split, limit=limit, qa_path=qa_path)
    cache = {} if patches is None else patches
    answers: dict[str, Answer] = {}
    for row in qa.to_dict("records"):
        path = images[row["id"]]
        if path not in cache:
            cache[path] = answerer.patches(open_image(path))
        answers[row["id"]] = answerer.answer_tokens(row["question"], cache[path])
    return qa, answers


def score_answers(qa: pd.DataFrame, answers: Mapping[str, Answer], *, meteor: bool = True) -> dict[str, Any]:
    """``score_predictions``'s report of answers to a QA table, plus ``no_definite_answer`` (how
    many) and ``mean_confidence``."""
    from core.vqa.metrics import score_predictions

    rows = qa.to_dict("records")
    entries = [{"id": r["id"], "answer": prediction_text(answers[r["id"]], r)} for r in rows]
    report = score_predictions(entries, qa, challenge_filter=False, meteor=meteor)
    report.update(no_definite_answer=sum(not a.definite for a in answers.values()),
                  mean_confidence=float(np.mean([a.confidence for a in answers.values()])))
    return report


def evaluate_dataset(
    data: str | Path, model: SceneModel | None = None, store: IndexStore | None = None, *, split: str = "test",
    k: int = 5, threshold: float = DEFAULT_THRESHOLD, meteor: bool = True, limit: int | None = None,
    qa_path: str | Path | None = None, vlm: VLMAnswerer | None = None, **vote_kw: object,
) -> dict[str, Any]:
    """``score_answers``'s report (docs/CONTRACTS.md, eval-vqa) on the split's questions, plus
    ``answerer`` and ``split``: the retrieval answerer voting with ``model``/``store``, or the VLM
    answerer ``vlm`` when given (plus its ``keep_ratio``)."""
    if vlm is not None:
        qa, answers = answer_dataset_vlm(data, vlm, split=split, limit=limit, qa_path=qa_path)
        report = score_answers(qa, answers, meteor=meteor)
        report.update(answerer="vlm", split=split, keep_ratio=vlm.keep_ratio or vlm.vlm.cfg.keep_ratio)
        return report
    if store is None:
        raise ValueError("the retrieval answerer needs an index to vote with")
    qa, answers = answer_dataset(data, model, store, split=split, k=k, threshold=threshold, limit=limit,
                                 qa_path=qa_path, **vote_kw)
    report = score_answers(qa, answers, meteor=meteor)
    report.update(answerer="retrieval", split=split)
    return report


__all__ = ["answer_dataset", "answer_dataset_vlm", "evaluate_dataset", "prediction_text", "question_frames",
           "score_answers"]
