"""Row sets: the affected rows of an issue, held in memory proportional to the table's
height / 8 at most, whatever their number.

A PII column of a 27-million-row table flags every row; as a Python list that is about a
gigabyte, as int64 indices 216 MB, as a bitmap 3.4 MB. A ``RowSet`` keeps whichever of
sorted int64 indices or a packed bitmap is smaller and behaves as a read-only sequence of
ints (``len``, iteration, indexing, slicing, ``in``, equality with lists), so code written
for lists of row indices works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int64]
CHUNK_ROWS = 1 << 23  # rows of a block when a row set is walked


class RowSet(Sequence[int]):
    """Sorted, distinct 0-based row indices of a table of ``size`` rows."""

    __slots__ = ("_bits", "_count", "_indices", "size")

    def __init__(self, size: int, indices: Indices | None, bits: npt.NDArray[np.uint8] | None):
        self.size = size
        self._indices = indices
        self._bits = bits
        if indices is not None:
            self._count = int(indices.size)
        else:
            assert bits is not None
            self._count = int(np.unpackbits(bits).sum(dtype=np.int64)) if bits.size else 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, size: int = 0) -> RowSet:
        return cls(size, np.empty(0, dtype=np.int64), None)

    @classmethod
    def from_mask(cls, mask: npt.NDArray[np.bool_]) -> RowSet:
        """The rows where ``mask`` is true."""
        size = int(mask.size)
        count = int(np.count_nonzero(mask))
        if _dense(count, size):
            return cls(size, None, np.packbits(mask))
        return cls(size, np.flatnonzero(mask).astype(np.int64), None)

    @classmethod
    def from_indices(cls, indices: Iterable[int] | npt.ArrayLike, size: int) -> RowSet:
        """The given rows (any order, repeats allowed) of a table of ``size`` rows."""
        arr = np.unique(
            np.asarray(
                indices if not isinstance(indices, RowSet) else indices.indices(), dtype=np.int64
            )
        )
        if arr.size and (arr[0] < 0 or arr[-1] >= size):
            raise ValueError(f"row index out of range for a table of {size} rows")
        if _dense(int(arr.size), size):
            mask = np.zeros(size, dtype=bool)
            mask[arr] = True
            return cls(size, None, np.packbits(mask))
        return cls(size, arr, None)

    @classmethod
    def concat_masks(cls, masks: Iterable[npt.NDArray[np.bool_]]) -> RowSet:
        """The rows where the concatenation of ``masks`` (consecutive row chunks) is true."""
        parts = list(masks)
        if not parts:
            return cls.empty()
        return cls.from_mask(np.concatenate(parts) if len(parts) > 1 else parts[0])

    # ------------------------------------------------------------------ access
    def indices(self) -> Indices:
        """All rows as a sorted int64 array (materialised: ``count`` x 8 bytes)."""
        if self._indices is not None:
            return self._indices
        assert self._bits is not None
        return np.concatenate(list(self.chunks())) if self._count else np.empty(0, np.int64)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Indices]:
        """The rows in ascending order, at most ``rows`` indices a block (a bitmap is
        unpacked ``rows`` bits at a time)."""
        step = max(8, rows)
        if self._indices is not None:
            for start in range(0, self._indices.size, step):
                yield self._indices[start : start + step]
            return
        assert self._bits is not None
        byte_step = step // 8
        for start in range(0, self._bits.size, byte_step):
            block = np.unpackbits(self._bits[start : start + byte_step])
            found = np.flatnonzero(block).astype(np.int64) + start * 8
            found = found[found < self.size]
            if found.size:
                yield found

    def mask(self) -> npt.NDArray[np.bool_]:
        if self._bits is not None:
            return np.unpackbits(self._bits, count=self.size).astype(bool)
        out = np.zeros(self.size, dtype=bool)
        assert self._indices is not None
        out[self._indices] = True
        return out

    def first(self, n: int) -> list[int]:
        out: list[int] = []
        for block in self.chunks():
            out.extend(int(i) for i in block[: n - len(out)])
            if len(out) >= n:
                break
        return out

    def tolist(self) -> list[int]:
        return [int(i) for i in self.indices()]

    @property
    def nbytes(self) -> int:
        held = self._indices if self._indices is not None else self._bits
        return int(held.nbytes) if held is not None else 0

    # ------------------------------------------------------------------ Sequence
    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[int]:
        for block in self.chunks():
            yield from (int(i) for i in block)

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> list[int]: ...

    def __getitem__(self, key: int | slice) -> int | list[int]:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._count)
            if step == 1 and start == 0:
                return self.first(stop)
            return [int(i) for i in self.indices()[key]]
        return int(self.indices()[key])

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | np.integer) or not 0 <= int(value) < self.size:
            return False
        if self._bits is not None:
            i = int(value)
            return bool((self._bits[i >> 3] >> (7 - (i & 7))) & 1)
        assert self._indices is not None
        pos = int(np.searchsorted(self._indices, int(value)))
        return pos < self._indices.size and int(self._indices[pos]) == int(value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowSet):
            return self._count == other._count and bool(
                np.array_equal(self.indices(), other.indices())
            )
        if isinstance(other, Sequence | np.ndarray) and not isinstance(other, str | bytes):
            return self._count == len(other) and bool(
                np.array_equal(self.indices(), np.asarray(other, dtype=np.int64))
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowSet({self._count:,} of {self.size:,} rows)"


def as_indices(rows: Sequence[int] | Any) -> Indices:
    """Sorted int64 row indices of a ``RowSet`` or a list of ints (already sorted)."""
    if isinstance(rows, RowSet):
        return rows.indices()
    return np.asarray(rows, dtype=np.int64)


def _dense(count: int, size: int) -> bool:
    """A bitmap (size / 8 bytes) is smaller than the indices (count x 8 bytes)."""
    return size > 0 and count * 64 > size
