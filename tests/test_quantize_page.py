"""The Model section's Quantize page (AppTest, tiny data) and its before/after rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import SmallIndex

WORKBENCH = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


def test_quantize_page_measures_before_and_after(index_env: SmallIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.handlers import quantize as quant_handlers

    for key, n in (("index", 24), ("queries", 12), ("calibration", 4), ("clips", 6)):
        monkeypatch.setitem(quant_handlers.QUANT_SIZES, key, n)
    at = AppTest.from_file(WORKBENCH, default_timeout=120)
    at.run()
    at.switch_page("views/quantize.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.info  # nothing measured yet
    at.selectbox(key="quant_variant").set_value("INT8 RTN (weights)").run()
    at.button(key="quant_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    table = next(df.value for df in at.dataframe if "k-NN macro F1" in df.value.columns)
    assert list(table["encoder"]) == ["FP32", "INT8 RTN (weights)"]
    before, after = table.iloc[0], table.iloc[1]
    assert after["file MB"] < before["file MB"] / 2  # int8 codes for the vision tower, fp16 text tower
    assert before["speed-up"] == 1.0 and after["ms / image (CPU, 1 thread)"] > 0
    for col in ("R@1", "R@5", "R@10", "clip R@1 (meanP)"):
        assert 0 <= after[col] <= 100 and before[col] <= 100
    # INT8 round-to-nearest barely moves the vectors: the k-NN votes stay close
    assert abs(after["k-NN macro F1"] - before["k-NN macro F1"]) < 0.15
