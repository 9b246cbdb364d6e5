"""Rows of JSON objects written by a compiled loop from columns (engine.resultcolumns).

A block of result rows is a template: text every row has (the keys, quotes, commas) between
fields, each field one of
- ``RUN``: an entry of the run's table of encoded ids (the column holds its number), or
  ``BYTES`` where the entries of that id table are all one width (the column holds where
  the entry starts: one read of memory per id rather than two);
- ``LOCAL``: an entry of a small table made for these rows (rule names, actions, new ship
  group ids, and any column Python rendered because it holds a value this loop does not
  write, such as a fraction where quantities are whole);
- ``INT``: a whole number, written in decimal;
- ``CENTS``: a number of hundredths ``k``, written as the decimal ``k / 100`` with its
  trailing zeros dropped but one (``12.3``, ``12.05``, ``7.0``): what orjson writes for the
  double nearest ``k / 100``, which is `round(d, 2)` of a distance (the shortest text that
  reads back as that double is that decimal: another within one unit in the last place
  would need more digits; resultcolumns sends only values below 10^7 this way).

`write_rows` copies the pieces into one byte buffer, rows separated by commas: the bytes
orjson writes for the rows' dictionaries (tests/test_result_columns.py). What it saves:
docs/performance.md, "Reading, start-up and scale-out (issue 27)"; `routing warm` compiles
it with the kernel.
"""

from __future__ import annotations

import numpy as np
from . import numbastart  # noqa: F401 - before numba starts: see numbastart
from numba import njit

RUN, LOCAL, INT, CENTS, BYTES = 0, 1, 2, 3, 4

_DIGITS = 24  # an int64 has at most 19 digits, a sign, and here a point and two decimals


class EntryTable:
    """Texts as one byte buffer and where each starts (``ptr``, one more than the texts)."""

    def __init__(self, texts: list[str]) -> None:
        data = "".join(texts).encode()
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        if len(data) != int(lengths.sum()):  # not all ASCII: lengths in bytes
            lengths = np.fromiter((len(t.encode()) for t in texts), np.int64, len(texts))
        # writable (a copy), as every array the loop is given: one compiled version
        self.data = np.frombuffer(data + b"\0", np.uint8).copy()
        self.ptr = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=self.ptr[1:])
        # texts all of one length (ids such as ORD-0000001): entry k starts at k * width,
        # which spares the loop a read of ptr, at another place in memory, per row
        self.widths = [int(lengths[0]) if len(texts) and (lengths == lengths[0]).all()
                       else -1]
        self.starts, self.bases = [0], [0]

    @classmethod
    def joined(cls, tables: list[EntryTable]) -> tuple[EntryTable, list[int]]:
        """One table of ``tables``' entries, one after the other, and each one's number
        (for `field`)."""
        joined = cls([])
        joined.data = np.concatenate([t.data[:t.ptr[-1]] for t in tables] + [np.zeros(1,
                                                                                   np.uint8)])
        bases, ptrs, offset, count = [], [np.zeros(1, np.int64)], 0, 0
        joined.widths, joined.starts = [], []
        for table in tables:
            bases.append(count)
            ptrs.append(table.ptr[1:] + offset)
            joined.widths.append(table.widths[0])
            joined.starts.append(offset)
            offset += int(table.ptr[-1])
            count += len(table.ptr) - 1
        joined.ptr = np.concatenate(ptrs)
        joined.bases = bases
        return joined, list(range(len(tables)))

    def field(self, table: int, indexes: np.ndarray) -> tuple[int, np.ndarray, int]:
        """How the loop reads entries ``indexes`` of joined table number ``table``: (kind,
        column, width)."""
        width = self.widths[table]
        if width < 0:
            return RUN, indexes + self.bases[table], 0
        return BYTES, indexes * width + self.starts[table], width

    def lengths(self, entries: np.ndarray) -> int:
        """The bytes ``entries`` take."""
        return int((self.ptr[entries + 1] - self.ptr[entries]).sum())


def rows_json(literals: list[bytes], kinds: list[int], widths: list[int], columns: np.ndarray,
              run: EntryTable, chunk: EntryTable) -> bytes:
    """The rows (``columns``: a row of values per field, a column per row) written through
    the template: ``literals[j]`` before field j, the last literal after the last field."""
    m, n = columns.shape
    if not n:
        return b""
    text = b"".join(literals)
    lit_ptr = np.zeros(len(literals) + 1, np.int64)
    np.cumsum([len(piece) for piece in literals], out=lit_ptr[1:])
    kind = np.array(kinds, np.int64)
    size = n * (len(text) + 1)
    for j in range(m):
        if kinds[j] == RUN:
            size += run.lengths(columns[j])
        elif kinds[j] == LOCAL:
            size += chunk.lengths(columns[j])
        elif kinds[j] == BYTES:
            size += widths[j] * n
        else:
            size += _DIGITS * n + 2
    out = np.empty(size, np.uint8)
    written = write_rows(np.frombuffer(text, np.uint8).copy(), lit_ptr, kind,
                         np.array(widths, np.int64), columns, run.data, run.ptr, chunk.data,
                         chunk.ptr, out)
    return out[:written].tobytes()


@njit(cache=True)
def _copy(out, at, source, start, stop):
    for k in range(start, stop):
        out[at] = source[k]
        at += 1
    return at


@njit(cache=True)
def _decimal(out, at, value):
    if value < 0:
        out[at] = 45  # -
        at += 1
        value = -value
    digits = 1
    rest = value // 10
    while rest:
        digits += 1
        rest //= 10
    end = at + digits
    for k in range(digits):
        out[end - 1 - k] = 48 + value % 10
        value //= 10
    return end


@njit(cache=True, boundscheck=False)
def write_rows(text, lit_ptr, kind, width, columns, run_data, run_ptr, chunk_data, chunk_ptr,
               out):
    """Write the rows into ``out`` (large enough); returns the bytes written."""
    m, n = columns.shape
    at = 0
    for r in range(n):
        if r:
            out[at] = 44  # ,
            at += 1
        for j in range(m + 1):
            for p in range(lit_ptr[j], lit_ptr[j + 1]):
                out[at] = text[p]
                at += 1
            if j == m:
                break
            value = columns[j, r]
            k = kind[j]
            if k == BYTES:
                for p in range(value, value + width[j]):
                    out[at] = run_data[p]
                    at += 1
            elif k == RUN:
                for p in range(run_ptr[value], run_ptr[value + 1]):
                    out[at] = run_data[p]
                    at += 1
            elif k == LOCAL:
                for p in range(chunk_ptr[value], chunk_ptr[value + 1]):
                    out[at] = chunk_data[p]
                    at += 1
            elif k == INT:
                at = _decimal(out, at, value)
            else:  # CENTS
                if value < 0:
                    out[at] = 45  # -
                    at += 1
                    value = -value
                at = _decimal(out, at, value // 100)
                out[at] = 46  # .
                at += 1
                cents = value % 100
                out[at] = 48 + cents // 10
                at += 1
                if cents % 10:
                    out[at] = 48 + cents % 10
                    at += 1
    return at
