"""A large index's frame table, read by row id from its Parquet row groups instead of whole.

At 1M frames the whole table in pandas costs ~160 MiB (Python strings) and seconds to read, while
a query needs only its k neighbours' rows. ``FrameTable`` opens ``meta.parquet`` memory-mapped
and reads just the row groups (and columns) that hold the asked-for rows, keeping a few decoded
groups (a vote's neighbours often share groups). Whole columns (the small integer label codes
are built from them) and the whole table stay available for callers that need them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.index.errors import IndexStoreError

# Rows per row group when the index writes its table: a vote's k rows fall in up to k groups, each
# read and decompressed whole the first time, so groups are small (8k paths: ~0.3 MB decoded).
ROW_GROUP_ROWS = 8192
LAZY_FRAMES_ROWS = 200_000  # from this many rows IndexStore.load reads the table by row id, not whole
# Up to this many rows a column read by value (a vote's paths) is kept whole in Arrow's compact
# form (~40 MB for 1M paths, against ~160 MB as Python strings), so a lookup reads no row group:
# a cold group costs milliseconds, over a 1M-vote's 2 ms budget. Larger tables read row groups.
PIN_ROWS = 20_000_000
_CACHED_GROUPS = 64  # per column set: ~20 MB of decoded paths at most


class FrameTable:
    """Rows of a Parquet frame table by position, without reading the table whole."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = pq.ParquetFile(self.path, memory_map=True)  # the footer only
        except Exception as e:  # noqa: BLE001 - pyarrow raises several unrelated types for a torn file
            raise IndexStoreError(f"{self.path}: cannot read ({e}); rebuild it") from None
        meta = self._file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._pinned: dict[str, pa.Array] = {}
        self._cache: OrderedDict[tuple[int, tuple[str, ...]], pa.Table] = OrderedDict()

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def columns(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def take(self, ids: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows ``ids`` (in that order, repeats allowed) of ``columns`` (default all)."""
        return self.take_arrow(ids, columns).to_pandas()

    def values(self, ids: Sequence[int] | np.ndarray, column: str) -> list:
        """One column's values at rows ``ids`` as Python objects (a vote's paths: no pandas on the way,
        whose conversion costs ~10 ms even for 10 rows)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexStoreError(f"{self.path}: row ids outside 0..{len(self) - 1}")
        if len(self) <= PIN_ROWS:  # the column whole, as one compact Arrow array: microseconds a row
            if column not in self._pinned:
                self._pinned[column] = self._file.read(columns=[column]).column(0).combine_chunks()
            col = self._pinned[column]
            return [col[i].as_py() for i in ids.tolist()]
        groups = np.searchsorted(self._starts, ids, side="right") - 1
        # scalar reads from the cached Arrow column: ~microseconds a row, no table is rebuilt
        return [self._group(int(g), (column,)).column(0)[int(i - self._starts[g])].as_py()
                for i, g in zip(ids.tolist(), groups.tolist(), strict=True)]

    def take_arrow(self, ids: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """As :meth:`take`, as an Arrow table."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        cols = tuple(columns) if columns is not None else tuple(self.columns)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexStoreError(f"{self.path}: row ids outside 0..{len(self) - 1}")
        groups = np.searchsorted(self._starts, ids, side="right") - 1
        parts, where = [], np.empty(len(ids), np.int64)
        offset = 0
        for g in np.unique(groups).tolist():
            sel = np.flatnonzero(groups == g)
            parts.append(self._group(g, cols).take(pa.array(ids[sel] - self._starts[g])))
            where[sel] = np.arange(offset, offset + len(sel))
            offset += len(sel)
        if not parts:
            return self._file.schema_arrow.empty_table().select(list(cols))
        return pa.concat_tables(parts).take(pa.array(where))  # back to the order asked for

    def column(self, name: str) -> pd.Series:
        """One whole column (e.g. an attribute, to build its integer codes)."""
        return self._file.read(columns=[name]).column(name).to_pandas()

    def to_pandas(self) -> pd.DataFrame:
        """The whole table (what ``IndexStore.meta`` holds for small indexes)."""
        return self._file.read().to_pandas()

    def _group(self, g: int, cols: tuple[str, ...]) -> pa.Table:
        key = (g, cols)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        table = self._file.read_row_group(g, columns=list(cols)).combine_chunks()
        self._cache[key] = table
        while len(self._cache) > _CACHED_GROUPS:
            self._cache.popitem(last=False)
        return table


__all__ = ["LAZY_FRAMES_ROWS", "PIN_ROWS", "ROW_GROUP_ROWS", "FrameTable"]
