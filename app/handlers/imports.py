"""Import a dataset from the workbench: the CLI's importers (``scenescope import``), with their
row-level errors returned as one sentence instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

IMPORT_FORMATS: dict[str, str] = {
    "table": "Folder + table (CSV, TSV, JSONL or Parquet: path and one column per attribute)",
    "hsd": "Honda Scenes style (path and a sentence per frame)",
    "bdd100k": "BDD100K labels JSON",
    "drivelm": "DriveLM-nuScenes QA JSON (images copied into a new dataset folder)",
}
Progress = Callable[[float, str], None]


def import_dataset(fmt: str, root: str, labels: str, out: str = "",
                   progress: Progress | None = None) -> tuple[bool, str]:
    """Run the ``fmt`` importer on the dataset folder ``root`` and its labels file ``labels``
    (DriveLM: into the new folder ``out``); (done, the manifest written or the error)."""
    from core.data import importers
    from core.data.manifest import ManifestError

    step = progress or (lambda _f, _m: None)
    if fmt not in IMPORT_FORMATS:
        return False, f"unknown format {fmt!r}; one of {list(IMPORT_FORMATS)}"
    if not root.strip() or not labels.strip():
        return False, "give the dataset folder and the labels file"
    step(0.1, f"Reading and checking every row of {Path(labels).name}…")
    try:
        if fmt == "drivelm":
            if not out.strip():
                return False, "DriveLM needs a folder for the new dataset"
            from core.vqa.drivelm import import_drivelm

            written = import_drivelm(Path(root), Path(labels), Path(out))
        else:
            fn = {"table": importers.import_table, "hsd": importers.import_hsd,
                  "bdd100k": importers.import_bdd100k}[fmt]
            written = fn(Path(root), Path(labels))
    except (ManifestError, ValueError, OSError) as e:  # each names the file and row
        step(1.0, "Nothing was written.")
        return False, str(e)
    step(1.0, "Done.")
    folder = Path(written) if Path(written).is_dir() else Path(written).parent
    return True, (f"Wrote {written}. Index it with `scenescope index --data {folder} --out indexes/NAME "
                  f"--split all`, or fine-tune on it from the Train page.")


__all__ = ["IMPORT_FORMATS", "import_dataset"]
