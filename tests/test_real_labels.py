"""The hand-labelled real frames (issue 20; evaluation only, never trained on): the DriveLM
sample's front-camera frames and the Udacity footage, well-formed against the schema, every row
saying how it was judged, and naming files that exist in the fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.schema import default_schema
from core.train.adapt import read_frame_labels

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
TABLES = {"drivelm_front_labels.csv": "drivelm-sample/**/CAM_FRONT/{}",
          "udacity_labels.csv": "udacity-*/test_*/{}"}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_labels_table_is_well_formed_against_the_schema(name):
    schema = default_schema()
    table = read_frame_labels(DATA / name, schema)  # unknown values and duplicate files fail here
    with (DATA / name).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"file", *schema.names, "how_judged"}
    assert len(table) == len(rows) >= 9
    for row in rows:
        assert len(row["how_judged"].strip()) > 20, f"{row['file']}: say how the labels were judged"
    for file, labels in table.items():
        assert {"weather", "surface", "lighting"} <= set(labels), file  # what every real frame shows
        if set(labels) == set(schema.names):
            schema.check(labels)  # the combination is allowed (e.g. no place while 'approaching')


def test_labels_name_fixture_files():
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} is absent (a user's checkout has no shared/)")
    for name, pattern in TABLES.items():
        for file in read_frame_labels(DATA / name, default_schema()):
            assert list(FIXTURES.glob(pattern.format(file))), f"{name}: {file} not in the fixtures"
