"""Before/after comparison: the F1 table with deltas, improved/regressed classes, failures fixed and
new, Procrustes-aligned maps; on hand-made predictions and on a known pair of models."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from core.compare import Comparison, align_maps, before_after, compare_models
from core.eval import evaluate
from core.schema import default_schema

torch.set_num_threads(1)
SCHEMA = default_schema()


def other(attr, value: str) -> str:
    names = attr.value_names
    return names[(names.index(value) + 1) % len(names)]


@pytest.fixture(scope="module")
def known_pair():
    """Truth for 8 rows; 'before' gets attribute A wrong on rows 0 and 1, 'after' fixes those and
    gets attribute B wrong on row 2."""
    rng = random.Random(3)
    truth = [SCHEMA.sample(rng) for _ in range(8)]
    a, b = SCHEMA.attributes[3], SCHEMA.attributes[2]
    before = [dict(t) for t in truth]
    after = [dict(t) for t in truth]
    for r in (0, 1):
        before[r][a.name] = other(a, truth[r][a.name])
    after[2][b.name] = other(b, truth[2][b.name])
    meta = [{"path": f"f{i}.png"} for i in range(8)]
    return truth, evaluate(truth, before, SCHEMA, meta=meta), evaluate(truth, after, SCHEMA, meta=meta), a, b


def test_attribute_table_and_deltas(known_pair):
    truth, rb, ra, a, b = known_pair
    cmp = compare_models(rb, ra, SCHEMA, labels={"before": "m0", "after": "m1"})
    table = cmp.attributes.set_index("attribute")
    assert list(table.index) == SCHEMA.names
    assert table.loc[a.name, "f1_before"] < 1.0 and table.loc[a.name, "f1_after"] == 1.0
    assert table.loc[b.name, "f1_before"] == 1.0 and table.loc[b.name, "f1_after"] < 1.0
    for name in SCHEMA.names:
        row = table.loc[name]
        assert row["f1_before"] == pytest.approx(rb["attributes"][name]["f1"])
        assert row["delta"] == pytest.approx(row["f1_after"] - row["f1_before"])
        if name not in (a.name, b.name):
            assert row["delta"] == 0.0
    assert cmp.macro_f1_before == pytest.approx(rb["macro_f1"]) and cmp.delta == pytest.approx(
        ra["macro_f1"] - rb["macro_f1"])


def test_improved_and_regressed_classes(known_pair):
    truth, rb, ra, a, b = known_pair
    cmp = compare_models(rb, ra, SCHEMA)
    assert set(cmp.improved["attribute"]) == {a.name}
    assert set(cmp.regressed["attribute"]) == {b.name}
    assert truth[0][a.name] in set(cmp.improved["value"])
    assert truth[2][b.name] in set(cmp.regressed["value"])
    assert (cmp.improved["delta"] > 0).all() and cmp.improved["delta"].is_monotonic_decreasing
    assert (cmp.regressed["delta"] < 0).all() and cmp.regressed["delta"].is_monotonic_increasing


def test_failures_fixed_and_new(known_pair):
    truth, rb, ra, a, b = known_pair
    cmp = compare_models(rb, ra, SCHEMA)
    assert list(zip(cmp.fixed["row"], cmp.fixed["attribute"], strict=True)) == [(0, a.name), (1, a.name)]
    assert list(zip(cmp.new_failures["row"], cmp.new_failures["attribute"], strict=True)) == [(2, b.name)]
    fixed = cmp.fixed.iloc[0]
    assert fixed["after"] == fixed["truth"] == truth[0][a.name] and fixed["before"] != fixed["truth"]
    assert fixed["path"] == "f0.png"
    new = cmp.new_failures.iloc[0]
    assert new["before"] == new["truth"] and new["after"] == other(b, truth[2][b.name])


def test_round_trip_and_markdown(known_pair):
    _, rb, ra, a, _ = known_pair
    xy = np.random.default_rng(0).normal(size=(8, 2))
    cmp = compare_models(rb, ra, SCHEMA, map_before=xy, map_after=xy[:, ::-1] * 3 + 1,
                         labels={"before": "m0", "after": "m1"})
    back = Comparison.from_dict(cmp.to_dict())
    assert back.delta == pytest.approx(cmp.delta)
    assert back.fixed.equals(cmp.fixed) and len(back.classes) == len(cmp.classes)
    np.testing.assert_allclose(back.maps["after"], cmp.maps["after"], atol=1e-6)
    md = cmp.to_markdown()
    assert "| attribute | F1 before | F1 after | delta |" in md and a.display in md
    assert "Failures fixed: 2; new failures: 1" in md and "`m1`" in md


def test_reports_of_different_rows_are_refused(known_pair):
    truth, rb, _, _, _ = known_pair
    shorter = evaluate(truth[:4], truth[:4], SCHEMA)
    with pytest.raises(ValueError, match="different rows"):
        compare_models(rb, shorter, SCHEMA)


def test_procrustes_aligns_a_rotated_mirrored_scaled_map():
    rng = np.random.default_rng(1)
    before = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    after = (before @ rot) * np.array([1, -1]) * 2.5 + np.array([4.0, -7.0])
    a, b, disparity = align_maps(before, after)
    np.testing.assert_allclose(a, before, atol=1e-5)  # the before-map keeps its coordinates
    np.testing.assert_allclose(b, before, atol=1e-4)
    assert disparity < 1e-8
    _, _, noisy = align_maps(before, after + rng.normal(scale=0.5, size=after.shape))
    assert 0 < noisy < 1
    with pytest.raises(ValueError):
        align_maps(before, after[:10])


def test_before_after_on_a_known_pair_of_models(tmp_path):
    """Model vs itself: no change anywhere. Two different models: swapping them negates every delta
    and swaps fixed and new failures, and each side's numbers match a direct k-NN evaluation."""
    from toy import write_toy_dataset, write_toy_model

    from core.compare import evaluate_knn
    from core.data import read_manifest
    from core.index import IndexStore
    from core.models import load_model

    data = read_manifest(write_toy_dataset(tmp_path / "data", n=24))
    m0 = f"file:{write_toy_model(tmp_path / 'm0', seed=0)}"
    m1 = f"file:{write_toy_model(tmp_path / 'm1', seed=1)}"
    same = before_after(data, m0, m0, tmp_path / "same", maps=False)
    assert same.delta == 0 and same.improved.empty and same.regressed.empty
    assert same.fixed.empty and same.new_failures.empty
    assert (same.attributes["delta"] == 0).all()

    fwd = before_after(data, m0, m1, tmp_path / "fwd", maps=False)
    back = before_after(data, m1, m0, tmp_path / "back", maps=False)
    torch.set_num_threads(1)  # load_model takes every core
    assert fwd.labels["split"] == "test" and fwd.labels["before"] == m0
    assert fwd.macro_f1_before == pytest.approx(same.macro_f1_after)
    assert back.delta == pytest.approx(-fwd.delta)
    np.testing.assert_allclose(back.attributes["delta"], -fwd.attributes["delta"], atol=1e-12)
    assert len(back.improved) == len(fwd.regressed) and len(back.regressed) == len(fwd.improved)
    assert back.fixed[["row", "attribute"]].equals(fwd.new_failures[["row", "attribute"]])
    assert back.new_failures[["row", "attribute"]].equals(fwd.fixed[["row", "attribute"]])

    model1 = load_model(m1)
    torch.set_num_threads(1)
    store1 = IndexStore.load(tmp_path / "fwd" / "index", model=model1)  # the re-indexed dataset
    assert len(store1) == len(data.split("train"))
    direct = evaluate_knn(data.split("test"), model1, store1)
    assert fwd.macro_f1_after == pytest.approx(direct["macro_f1"])
