"""Datasets: manifests, importers, clip-grouped splits and the leakage check."""

from core.data.importers import import_bdd100k, import_hsd, import_table
from core.data.leakage import find_leakage
from core.data.manifest import (
    BASE_COLUMNS,
    SPLITS,
    Dataset,
    ManifestError,
    read_manifest,
    resolve_inside,
    validate_rows,
    write_manifest,
)
from core.data.splits import SplitError, assign_splits, check_grouped

__all__ = [
    "BASE_COLUMNS", "SPLITS", "Dataset", "ManifestError", "SplitError", "assign_splits",
    "check_grouped", "find_leakage", "import_bdd100k", "import_hsd", "import_table", "read_manifest",
    "resolve_inside", "validate_rows", "write_manifest",
]
