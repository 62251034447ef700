"""Retrieval metrics against hand-computed rank matrices and IoUs, and against CLIP4Clip's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval import moment_metrics, rank_metrics, retrieval_metrics, retrieval_ranks, temporal_iou


def _clip4clip_style(x: np.ndarray) -> dict[str, float]:
    """CLIP4Clip's definitions re-derived independently: the 0-based position of the diagonal item
    in its row sorted by decreasing score; R@k in percent; median/mean rank + 1."""
    order = np.argsort(-x, axis=1)
    pos = np.array([list(row).index(i) for i, row in enumerate(order)])
    return {"r1": 100 * np.mean(pos == 0), "r5": 100 * np.mean(pos < 5), "r10": 100 * np.mean(pos < 10),
            "mdr": np.median(pos) + 1, "mnr": np.mean(pos) + 1}


def test_hand_computed_ranks_without_ties():
    sim = np.array([[0.9, 0.1, 0.2, 0.3],
                    [0.8, 0.5, 0.1, 0.0],
                    [0.4, 0.7, 0.3, 0.6],
                    [0.2, 0.9, 0.1, 0.35]])
    assert retrieval_ranks(sim).tolist() == [0, 1, 3, 1]
    assert retrieval_ranks(sim.T).tolist() == [0, 2, 0, 1]
    m = retrieval_metrics(sim)
    assert m["t2v"] == pytest.approx({"r1": 25.0, "r5": 100.0, "r10": 100.0, "mdr": 2.0, "mnr": 2.25})
    assert m["v2t"] == pytest.approx({"r1": 50.0, "r5": 100.0, "r10": 100.0, "mdr": 1.5, "mnr": 1.75})


def test_ties_count_against_the_correct_item():
    sim = np.array([[0.5, 0.5, 0.1],
                    [0.2, 0.7, 0.7],
                    [0.3, 0.3, 0.3]])
    assert retrieval_ranks(sim).tolist() == [1, 1, 2]  # CLIP4Clip's first-match would give 0, 0, 0
    assert retrieval_ranks(sim.T).tolist() == [0, 0, 1]
    m = retrieval_metrics(sim)
    assert m["t2v"] == pytest.approx({"r1": 0.0, "r5": 100.0, "r10": 100.0, "mdr": 2.0, "mnr": 1 + 4 / 3})
    assert m["v2t"]["r1"] == pytest.approx(200 / 3)


def test_a_collapsed_model_earns_no_recall():
    m = retrieval_metrics(np.full((20, 20), 0.42))
    for side in ("t2v", "v2t"):
        assert m[side] == pytest.approx({"r1": 0.0, "r5": 0.0, "r10": 0.0, "mdr": 20.0, "mnr": 20.0})


@pytest.mark.parametrize("n", [1, 7, 12, 40])
def test_matches_clip4clip_definitions_without_ties(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        sim = rng.normal(size=(n, n))
        sim[np.arange(n), np.arange(n)] += rng.uniform(0, 2)  # some queries right, some wrong
        m = retrieval_metrics(sim)
        assert m["t2v"] == pytest.approx(_clip4clip_style(sim))
        assert m["v2t"] == pytest.approx(_clip4clip_style(sim.T))


def test_several_captions_per_clip():
    sim = np.array([[0.9, 0.2, 0.95],   # caption 0 of clip 0: rank 1
                    [0.3, 0.6, 0.1],    # caption 1 of clip 0: rank 1
                    [0.4, 0.8, 0.5],    # clip 1: rank 0
                    [0.2, 0.7, 0.7]])   # clip 2: tied with clip 1, rank 1
    m = retrieval_metrics(sim, clip_of_text=[0, 0, 1, 2])
    assert m["t2v"] == pytest.approx({"r1": 25.0, "r5": 100.0, "r10": 100.0, "mdr": 2.0, "mnr": 1.75})
    # clip 0 is found by caption 0 (0.9, nothing wrong above); clip 2's caption has 0.95 above it.
    assert m["v2t"] == pytest.approx({"r1": 200 / 3, "r5": 100.0, "r10": 100.0, "mdr": 1.0, "mnr": 4 / 3})


def test_rank_metrics_and_bad_input():
    assert rank_metrics(np.array([0, 4, 5, 9, 10])) == pytest.approx(
        {"r1": 20.0, "r5": 40.0, "r10": 80.0, "mdr": 6.0, "mnr": 6.6})
    with pytest.raises(ValueError, match="row 1"):
        retrieval_metrics(np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="clip_of_text"):
        retrieval_metrics(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="clip 1 has no caption"):
        retrieval_metrics(np.zeros((2, 2)), clip_of_text=[0, 0])


def test_temporal_iou_by_hand():
    iou = temporal_iou(np.array([[0, 10], [5, 15], [20, 25]]), np.array([[0, 10], [2, 4]]))
    expected = [[1.0, 0.2], [5 / 15, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(iou, expected)


def test_moment_metrics_by_hand():
    preds = [
        # IoU 0.88 then a duplicate of IoU 1.0: AP 1 up to 0.85, 0.5 at 0.90/0.95 -> 0.9
        np.array([[1.2, 10, 0.9], [0, 10, 0.5]]),
        # two ground-truth windows: IoUs 0.78 (2nd window), 0.63 (1st), 0 -> AP 1, 1, 1, .5, .5, .5, 0 x4 = 0.45
        np.array([[40, 50, 0.2], [22.2, 30, 0.9], [0, 6.3, 0.7]]),  # given out of score order
        # top window IoU 1/3 (a miss), second 0.96: AP 0.5 at every threshold
        np.array([[5, 15, 0.9], [0, 9.6, 0.5]]),
        # nothing predicted: a miss, AP 0
        np.zeros((0, 3)),
        # IoU 0.58: R1 hit at 0.5 only, AP 1 at 0.50/0.55 -> 0.2
        np.array([[0, 5.8, 0.9]]),
    ]
    gts = [np.array([[0, 10]]), np.array([[0, 10], [20, 30]]), np.array([[0, 10]]), np.array([[0, 10]]),
           np.array([[0, 10]])]
    m = moment_metrics(preds, gts)
    assert m["r1_05"] == pytest.approx(3 / 5)
    assert m["r1_07"] == pytest.approx(2 / 5)
    assert m["map"] == pytest.approx((0.9 + 0.45 + 0.5 + 0.0 + 0.2) / 5)


def test_moment_metrics_keep_the_top_ten_windows():
    wrong = [[50 + i, 51 + i, 1.0 - 0.01 * i] for i in range(10)]
    right = [[0, 10, 0.5]]  # the 11th by score: cut, as Moment-DETR keeps 10
    m = moment_metrics([np.array(wrong + right)], [np.array([[0, 10]])])
    assert m == {"r1_05": 0.0, "r1_07": 0.0, "map": 0.0}
    m = moment_metrics([np.array(wrong[:9] + right)], [np.array([[0, 10]])])
    assert m["map"] == pytest.approx(0.1)  # found at position 10: precision 1/10 at recall 1


def test_moment_metrics_reject_bad_windows():
    with pytest.raises(ValueError, match="query 0: no ground-truth"):
        moment_metrics([np.array([[0, 1, 1.0]])], [np.zeros((0, 2))])
    with pytest.raises(ValueError, match="query 1: a predicted window ends before"):
        moment_metrics([np.array([[0, 1, 1.0]]), np.array([[3, 1, 1.0]])], [np.array([[0, 1]])] * 2)
