"""The result's rows (`allocations`, `unfillable`) as one sequence, whichever engine made them.

A run's records are a `ResultRows`: the reference allocator appends a dictionary per row; the
fast engine adds a block of columns per routing run (numpy arrays of ids and quantities,
engine.resultcolumns), never a dictionary per row. Readers see one sequence of row
dictionaries either way (`len`, indexing, slices as lists, iteration, equality with a list):
a column block makes its dictionaries when asked, a few thousand at a time, and forgets
them. Two readers go faster on columns: `field` (one field of every row, as a list) and
`json_chunks` (the rows as compact JSON, the same bytes orjson writes for their
dictionaries), which `result.result_chunks` writes the result document with.

A column block is any object with ``len``, ``rows(start, stop)`` (its rows as a list of
dictionaries), ``field(name)`` (one field of each row) and ``json_chunks()`` (its rows as
compact JSON objects, comma-separated, in pieces).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence

import orjson

CHUNK = 8192
"""Rows made or written at a time: their dictionaries live only while their chunk does."""


class ResultRows(Sequence):
    """The rows of a result's section, in order: dictionaries appended one at a time, and
    blocks of columns (`add_columns`)."""

    def __init__(self, rows=()) -> None:
        self.blocks: list = []  # lists of dictionaries, and column blocks
        self.ends: list[int] = []  # where each block ends, counted in rows
        self.extend(rows)

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def append(self, row: dict) -> None:
        if not self.blocks or type(self.blocks[-1]) is not list:
            self.blocks.append([])
            self.ends.append(len(self))
        self.blocks[-1].append(row)
        self.ends[-1] += 1

    def extend(self, rows) -> None:
        for row in rows:
            self.append(row)

    def __iadd__(self, rows) -> ResultRows:
        self.extend(rows)
        return self

    def add_columns(self, block) -> None:
        """Add a column block's rows after the others (nothing when it has none)."""
        if len(block):
            self.blocks.append(block)
            self.ends.append(len(self) + len(block))

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.rows(0, len(self))[index]
            return self.rows(start, stop)
        size = len(self)
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("result row index out of range")
        b = bisect_right(self.ends, position)
        block, offset = self.blocks[b], position - (self.ends[b - 1] if b else 0)
        return block[offset] if type(block) is list else block.rows(offset, offset + 1)[0]

    def rows(self, start: int, stop: int) -> list[dict]:
        """Rows ``start`` to ``stop`` as a list of dictionaries."""
        found: list[dict] = []
        begin = 0
        for block, end in zip(self.blocks, self.ends, strict=True):
            if end > start and begin < stop:
                low, high = max(start, begin) - begin, min(stop, end) - begin
                found.extend(block[low:high] if type(block) is list else block.rows(low, high))
            begin = end
        return found

    def __iter__(self) -> Iterator[dict]:
        for block in self.blocks:
            if type(block) is list:
                yield from block
                continue
            for start in range(0, len(block), CHUNK):
                yield from block.rows(start, min(start + CHUNK, len(block)))

    def __delitem__(self, index) -> None:
        if isinstance(index, slice) and index.step in (None, 1) and \
                index.indices(len(self))[1] == len(self):
            self.truncate(index.indices(len(self))[0])
            return
        rows = self.rows(0, len(self))
        del rows[index]
        self.blocks, self.ends = [], []
        self.extend(rows)

    def truncate(self, size: int) -> None:
        """Keep the first ``size`` rows (a run putting back what it saved)."""
        while self.blocks and (self.ends[-2] if len(self.ends) > 1 else 0) >= size:
            self.blocks.pop()
            self.ends.pop()
        if self.blocks and self.ends[-1] > size:
            begin = self.ends[-2] if len(self.ends) > 1 else 0
            block = self.blocks[-1]
            kept = block[:size - begin] if type(block) is list else block.rows(0, size - begin)
            self.blocks[-1], self.ends[-1] = kept, size

    def field(self, name: str) -> list:
        """The value of ``name`` in every row, in order (from the columns where there are)."""
        values: list = []
        for block in self.blocks:
            values.extend([row[name] for row in block] if type(block) is list
                          else block.field(name))
        return values

    def json_chunks(self) -> Iterator[bytes]:
        """The rows as compact JSON objects (orjson's bytes for their dictionaries), comma
        separated, in pieces: join them with commas and bracket them for the JSON array."""
        for block in self.blocks:
            if type(block) is list:
                for start in range(0, len(block), CHUNK):
                    yield orjson.dumps(block[start:start + CHUNK])[1:-1]
            else:
                yield from block.json_chunks()

    def __eq__(self, other) -> bool:
        if not isinstance(other, (list, tuple, ResultRows)):
            return NotImplemented
        return len(self) == len(other) and all(
            mine == theirs for mine, theirs in zip(self, other, strict=True))

    __hash__ = None  # mutable, like a list

    def __repr__(self) -> str:
        return f"ResultRows({self.rows(0, len(self))!r})"


def field_values(rows: Sequence[dict], name: str) -> list:
    """The value of ``name`` in each of ``rows`` (a run's ResultRows, or rows read from a
    file)."""
    if isinstance(rows, ResultRows):
        return rows.field(name)
    return [row[name] for row in rows]


def plain(value):
    """`default` for orjson and json: a ResultRows as the list of its rows."""
    if isinstance(value, ResultRows):
        return value.rows(0, len(value))
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
