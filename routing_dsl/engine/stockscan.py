"""A compiled reader of flat stock rows: the bytes of the inventory array straight into
columns, with no Python object per row; and `split`, which finds a snapshot document's
members by their shape, stopping at the inventory for `scan` to read.

`scan` reads rows such as ``{"facility":"F1","product":"P9","atp":3}`` one after another
and writes each into the output columns, numbering the facility and product ids in hash
tables of its own (in order of first appearance). It accepts only what it is sure msgspec
reads the same way, and stops, saying where, at the first row it is not sure of: a string
with an escape, a control or non-ASCII byte; a number with an exponent, more than 15
digits or a negative zero; a repeated, unknown or missing key; anything else JSON or the
row's types would refuse. The caller (`columnar._read_inventory`) decodes that part with
msgspec, which accepts it or refuses it, and comes back here after it: so both readers
accept the same inputs, and a refusal is always msgspec's.

Numbers are exact: a decimal of at most 15 digits is an integer below 2**53 divided by a
power of ten at most 1e15, both exactly representable, and IEEE division rounds their
quotient correctly (Clinger's fast path), as msgspec's parser does.

The helpers are inlined into `scan` (numba's ``inline="always"``): called for every key and
value, a call each cost more than the work it did. Nothing here allocates (the caller hands
in every array), so it is compiled without numba's reference counting (``_nrt=False``):
each inlined helper's array arguments otherwise counted a reference up and down, an atomic
operation, several times a row. A key is told by its first two bytes, then compared whole.
The ids of a block of rows are numbered together after the rows are read (`_number_ids`):
the id tables' slots lie mostly outside the processor's caches, and looked up one per row,
between the reading of two rows, each waited for memory alone.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from . import numbastart  # noqa: F401 - before numba starts: see numbastart
from numba import njit

# what `scan` returns, with where it stopped
DONE, UNSURE, ROWS_FULL, IDS_FULL = 0, 1, 2, 3
AT_VALUE = 4  # what `split` returns at the value it was asked to stop at
# the fields of a row, in the order of the keys given to `scan` (columnar._Row's)
FIELDS = ("facility", "product", "atp", "minimum_stock", "allow_brokering", "sales_velocity")
REQUIRED = 0b111  # facility, product, atp
MAX_DIGITS = 15
POWERS = np.array([10.0 ** k for k in range(MAX_DIGITS + 1)])
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_MIX0, _MIX1 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)  # odd, mixing


# room for 32,768 ids before the table grows: a catalogue's products fit, and a process
# that never grows a table never loads `rehash` from numba's cache (about 0.5 s when busy)
SLOTS = 1 << 16
BLOCK = 1024  # rows read before their ids are numbered (see `scan`)
PENDING = 10  # what `scan` keeps of each such row (`pending`): the ids' bounds and hashes

# What `scan` reads and writes, grouped (numba passes a namedtuple of arrays as one
# argument): the keys a row may have (the field each key's first two bytes name, -1 for
# none; the keys' bytes and lengths) and the powers of ten numbers are read with; the
# columns rows are read into; an id table (`id_table`).
Keys = namedtuple("Keys", "pairs keys key_lengths powers")
Columns = namedtuple("Columns", "facility product atp minimum allow velocity")
Table = namedtuple("Table", "slots entries")


def id_table(slots: int = SLOTS) -> tuple[np.ndarray, np.ndarray]:
    """An empty id table: open-addressed slots, each (code or -1 when free, hash, length,
    the id's first 16 bytes as two words: comparing an id touches its slot only, when it is
    not longer), and one entry per id (start and length of its first occurrence in the
    bytes, its hash); its count is kept by the caller."""
    table = np.zeros((slots, 5), np.int64)
    table[:, 0] = -1
    return table, np.zeros((slots // 2, 3), np.int64)


@njit(cache=True, error_model="numpy", inline="always")
def _hash(buf, start, stop):
    """(hash, first 8 bytes, next 8 bytes) of ``buf[start:stop]``: the words and the length
    mixed by multiplying (independent steps, where a hash of every byte waits on the last
    one), the bytes beyond 16 by FNV-1a."""
    word0 = word1 = np.uint64(0)
    for k in range(start, min(stop, start + 8)):
        word0 |= np.uint64(buf[k]) << np.uint64(8 * (k - start))
    for k in range(start + 8, min(stop, start + 16)):
        word1 |= np.uint64(buf[k]) << np.uint64(8 * (k - start - 8))
    h = _FNV_OFFSET ^ np.uint64(stop - start)
    for k in range(start + 16, stop):
        h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
    h ^= word0 * _MIX0 + word1 * _MIX1
    h ^= h >> np.uint64(32)
    h *= _MIX0
    h ^= h >> np.uint64(29)
    return np.int64(h), np.int64(word0), np.int64(word1)


@njit(cache=True, _nrt=False)
def rehash(buf, slots, entries, count):
    """``entries[:count]`` (ids in ``buf``) into the free table ``slots``."""
    mask = len(slots) - 1
    for code in range(count):
        start, length = entries[code, 0], entries[code, 1]
        h, word0, word1 = _hash(buf, start, start + length)
        at = h & mask
        while slots[at, 0] >= 0:
            at = (at + 1) & mask
        slots[at, 0] = code
        slots[at, 1] = h
        slots[at, 2] = length
        slots[at, 3] = word0
        slots[at, 4] = word1


@njit(cache=True, error_model="numpy", inline="always")
def _string_end(buf, k, end):
    """The position of the closing quote of the string whose text starts at ``k``, or -1
    when it holds anything but plain printable ASCII (or does not close)."""
    while k < end:
        c = buf[k]
        if c == 34:  # "
            return k
        if c == 92 or c < 32 or c >= 128:  # an escape, a control or a non-ASCII byte
            return -1
        k += 1
    return -1


@njit(cache=True, error_model="numpy", inline="always")
def _code(buf, start, stop, h, word0, word1, slots, entries, count):
    """The code of the id ``buf[start:stop]`` (its `_hash` ``h, word0, word1``), numbering it
    ``count`` when new."""
    mask = len(slots) - 1
    at = h & mask
    length = stop - start
    while True:
        code = slots[at, 0]
        if code < 0:
            slots[at, 0] = count
            slots[at, 1] = h
            slots[at, 2] = length
            slots[at, 3] = word0
            slots[at, 4] = word1
            entries[count, 0] = start
            entries[count, 1] = length
            entries[count, 2] = h
            return count
        if slots[at, 1] == h and slots[at, 2] == length and slots[at, 3] == word0 \
                and slots[at, 4] == word1:
            if length <= 16:  # (tested first: the entry is read only for a longer id)
                return code
            same = True
            first = entries[code, 0]
            for k in range(16, length):  # beyond the words: the first occurrence's bytes
                if buf[first + k] != buf[start + k]:
                    same = False
                    break
            if same:
                return code
        at = (at + 1) & mask


@njit(cache=True, error_model="numpy", inline="always")
def _skip(buf, k, end):
    while k < end:
        c = buf[k]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        k += 1
    return k


@njit(cache=True, error_model="numpy", inline="always")
def _number(buf, k, end, powers):
    """(value, position after it), or position -1 when not a number read exactly here."""
    negative = False
    if k < end and buf[k] == 45:  # -
        negative = True
        k += 1
    if k >= end or buf[k] < 48 or buf[k] > 57:
        return 0.0, -1
    mantissa = 0
    digits = 0
    if buf[k] == 48:  # a leading zero stands alone
        k += 1
        digits = 1
    else:
        while k < end and 48 <= buf[k] <= 57:
            mantissa = mantissa * 10 + (buf[k] - 48)
            digits += 1
            k += 1
            if digits > MAX_DIGITS:
                return 0.0, -1
    decimals = 0
    if k < end and buf[k] == 46:  # .
        k += 1
        if k >= end or buf[k] < 48 or buf[k] > 57:
            return 0.0, -1
        while k < end and 48 <= buf[k] <= 57:
            mantissa = mantissa * 10 + (buf[k] - 48)
            digits += 1
            decimals += 1
            k += 1
            if digits > MAX_DIGITS:
                return 0.0, -1
    if negative and mantissa == 0:  # -0 and -0.0: msgspec's sign of zero, not ours
        return 0.0, -1
    value = np.float64(mantissa) / powers[decimals]
    return (-value if negative else value), k


@njit(cache=True, error_model="numpy", inline="always")
def _row(buf, k, end, pairs, keys, key_lengths, powers):
    """The row whose ``{`` is at ``k``: (the position after its ``}``, or -1 when not sure
    of it; its facility's and product's start and stop; atp, minimum stock, allow
    brokering, sales velocity). A key is known by its first two bytes (``pairs``: the
    field whose key starts with them, or -1), then compared whole."""
    f_start = f_stop = p_start = p_stop = 0
    row_atp = 0.0
    row_min = 0.0
    row_allow = True
    row_velocity = np.nan
    unsure = (-1, 0, 0, 0, 0, 0.0, 0.0, True, 0.0)
    seen = 0
    k = _skip(buf, k + 1, end)
    while True:
        # a key: its quote, two bytes naming the field, the rest of it and its quote
        if k + 3 >= end or buf[k] != 34:
            return unsure
        field = pairs[buf[k + 1], buf[k + 2]]
        if field < 0 or seen & (1 << field):  # unknown or repeated
            return unsure
        length = key_lengths[field]
        stop = k + 1 + length
        if stop >= end or buf[stop] != 34:
            return unsure
        for j in range(2, length):
            if keys[field, j] != buf[k + 1 + j]:
                return unsure
        seen |= 1 << field
        k = _skip(buf, stop + 1, end)
        if k >= end or buf[k] != 58:  # :
            return unsure
        k = _skip(buf, k + 1, end)
        if k >= end:
            return unsure
        c = buf[k]
        if field <= 1:  # an id
            if c != 34:
                return unsure
            stop = _string_end(buf, k + 1, end)
            if stop < 0:
                return unsure
            if field == 0:
                f_start, f_stop = k + 1, stop
            else:
                p_start, p_stop = k + 1, stop
            k = stop + 1
        elif field == 4:  # allow_brokering
            if c == 116 and k + 4 <= end and buf[k + 1] == 114 and buf[k + 2] == 117 \
                    and buf[k + 3] == 101:
                row_allow = True
                k += 4
            elif c == 102 and k + 5 <= end and buf[k + 1] == 97 and buf[k + 2] == 108 \
                    and buf[k + 3] == 115 and buf[k + 4] == 101:
                row_allow = False
                k += 5
            else:
                return unsure
        elif field == 5 and c == 110:  # sales_velocity: null
            if k + 4 <= end and buf[k + 1] == 117 and buf[k + 2] == 108 \
                    and buf[k + 3] == 108:
                row_velocity = np.nan
                k += 4
            else:
                return unsure
        else:  # a number
            value, k = _number(buf, k, end, powers)
            if k < 0:
                return unsure
            if field == 2:
                row_atp = value
            elif field == 3:
                row_min = value
            else:
                row_velocity = value
        k = _skip(buf, k, end)
        if k >= end:
            return unsure
        if buf[k] == 44:  # , another key
            k = _skip(buf, k + 1, end)
            continue
        if buf[k] == 125 and seen & REQUIRED == REQUIRED:  # } the row's end
            return (k + 1, f_start, f_stop, p_start, p_stop, row_atp, row_min, row_allow,
                    row_velocity)
        return unsure


@njit(cache=True, error_model="numpy", _nrt=False)
def _number_ids(buf, pending, rows, columns, first, f_ids, f_count, p_ids, p_count):
    """The ids of ``rows`` rows read (their bounds in ``pending``), written as codes into
    the columns from row ``first`` on. The slots are scattered over megabytes, mostly out
    of the cache: hashed first, the ids are looked up in a loop short enough for the
    processor to wait for many slots at once (between two rows' lookups, reading a row kept
    it from starting the next one early)."""
    for row in range(rows):
        for column in range(2):
            start, stop = pending[row, 2 * column], pending[row, 2 * column + 1]
            h, word0, word1 = _hash(buf, start, stop)
            pending[row, 4 + 3 * column] = h
            pending[row, 5 + 3 * column] = word0
            pending[row, 6 + 3 * column] = word1
    for row in range(rows):
        code = _code(buf, pending[row, 0], pending[row, 1], pending[row, 4], pending[row, 5],
                     pending[row, 6], f_ids.slots, f_ids.entries, f_count)
        if code == f_count:
            f_count += 1
        columns.facility[first + row] = code
        code = _code(buf, pending[row, 2], pending[row, 3], pending[row, 7], pending[row, 8],
                     pending[row, 9], p_ids.slots, p_ids.entries, p_count)
        if code == p_count:
            p_count += 1
        columns.product[first + row] = code
    return f_count, p_count


@njit(cache=True, error_model="numpy", _nrt=False)
def scan(buf, position, end, keys, columns, n, f_ids, f_count, p_ids, p_count, pending,
         closing):
    """Rows from ``buf[position:end]`` (the inside of the inventory array, from the start of
    a row) into the columns from index ``n`` on. Returns (status, position, n, f_count,
    p_count): DONE at the end of the array; UNSURE with ``position`` at the start of the row
    it is not sure of (see the module); ROWS_FULL or IDS_FULL, at the start of the next
    row, when the columns or an id table need room. A row counts only once the comma after
    it (or the array's end) is read; its ids are numbered a block of rows later (in order,
    before returning), so that a row left to msgspec numbers nothing here. With
    ``closing``, ``end`` is the end of the bytes rather than of the array's inside: the
    rows end at the array's ``]``, where DONE leaves ``position``."""
    first = n  # the first row whose ids are pending
    f_room, p_room = len(f_ids.slots) // 2, len(p_ids.slots) // 2
    while True:
        status = -1
        last = False
        k = _skip(buf, position, end)
        if k >= end:  # after a comma (the caller reads an empty array itself)
            status = UNSURE
        elif n >= len(columns.atp):
            status = ROWS_FULL
        elif n - first == BLOCK or f_count + n - first + 1 >= f_room \
                or p_count + n - first + 1 >= p_room:  # each pending row may add an id
            f_count, p_count = _number_ids(buf, pending, n - first, columns, first, f_ids,
                                           f_count, p_ids, p_count)
            first = n
            if f_count + 1 >= f_room or p_count + 1 >= p_room:
                status = IDS_FULL
        if status < 0:
            if buf[k] != 123:  # {
                status = UNSURE
            else:
                k, f_start, f_stop, p_start, p_stop, row_atp, row_min, row_allow, \
                    row_velocity = _row(buf, k, end, keys.pairs, keys.keys, keys.key_lengths,
                                        keys.powers)
                if k < 0:
                    status = UNSURE
                else:
                    k = _skip(buf, k, end)
                    if k >= end:
                        last = not closing  # (closing: the bytes end inside the array)
                        if closing:
                            status = UNSURE
                    elif buf[k] == 44:  # ,
                        last = False
                    elif closing and buf[k] == 93:  # ] the array's end
                        last = True
                    else:  # msgspec says what
                        status = UNSURE
        if status < 0:
            at = n - first
            pending[at, 0] = f_start
            pending[at, 1] = f_stop
            pending[at, 2] = p_start
            pending[at, 3] = p_stop
            columns.atp[n] = row_atp
            columns.minimum[n] = row_min
            columns.allow[n] = row_allow
            columns.velocity[n] = row_velocity
            n += 1
            if last:
                status = DONE
                position = k
            else:
                position = k + 1
                continue
        f_count, p_count = _number_ids(buf, pending, n - first, columns, first, f_ids,
                                       f_count, p_ids, p_count)
        return status, position, n, f_count, p_count


@njit(cache=True, error_model="numpy", inline="always")
def _string_after(buf, k, end):
    """The position after the string whose opening quote is at ``k`` (escapes skipped, the
    text not checked), or -1 when it does not close."""
    k += 1
    while k < end:
        c = buf[k]
        if c == 92:  # a backslash and the byte it escapes
            k += 2
        elif c == 34:
            return k + 1
        else:
            k += 1
    return -1


@njit(cache=True, error_model="numpy", inline="always")
def _value_after(buf, k, end):
    """The position after the JSON value starting at ``k``, found by its shape alone (its
    strings and brackets), or -1 when none ends. What it holds is not checked here: the
    value's own reader does that."""
    c = buf[k]
    if c == 34:
        return _string_after(buf, k, end)
    if c == 91 or c == 123:  # [ {
        depth = 0
        while k < end:
            c = buf[k]
            if c == 34:
                k = _string_after(buf, k, end)
                if k < 0:
                    return -1
                continue
            if c == 91 or c == 123:
                depth += 1
            elif c == 93 or c == 125:  # ] }
                depth -= 1
                if depth == 0:
                    return k + 1
            k += 1
        return -1
    start = k  # a number, true, false or null: up to what follows it
    while k < end:
        c = buf[k]
        if c == 44 or c == 125 or c == 93 or c == 32 or c == 10 or c == 13 or c == 9:
            break
        k += 1
    return k if k > start else -1


@njit(cache=True, error_model="numpy", _nrt=False)
def split(buf, position, keys, key_lengths, spans, stop_at):
    """The members of the object ``buf`` holds, from its start (``position`` 0) or from
    just after a member's value: ``spans[field]`` set to where the value of the
    ``field``-th key starts and ends (left as it is for a key not there). Returns (status,
    position): DONE at the object's end; AT_VALUE at the start of the value of key
    ``stop_at`` (its start noted, its end left to the caller, which reads it and calls
    again from there); UNSURE for anything it is not sure of (msgspec then splits the
    document, and says what is wrong): a key not among ``keys``, given twice or with an
    escape, anything but JSON's spaces between the members. A value is found by its shape
    alone: its bytes are checked by its own reader."""
    end = len(buf)
    k = position
    after_value = position > 0
    if not after_value:
        k = _skip(buf, 0, end)
        if k >= end or buf[k] != 123:  # {
            return UNSURE, k
        k = _skip(buf, k + 1, end)
    while True:
        if after_value:
            k = _skip(buf, k, end)
            if k >= end:
                return UNSURE, k
            if buf[k] == 125:  # } and nothing after it but spaces
                if _skip(buf, k + 1, end) == end:
                    return DONE, end
                return UNSURE, k
            if buf[k] != 44:  # ,
                return UNSURE, k
            k = _skip(buf, k + 1, end)
        after_value = True
        if k >= end or buf[k] != 34:
            return UNSURE, k
        stop = _string_end(buf, k + 1, end)
        if stop < 0:
            return UNSURE, k
        field = -1
        for index in range(len(key_lengths)):
            length = key_lengths[index]
            if length == stop - k - 1:
                same = True
                for j in range(length):
                    if keys[index, j] != buf[k + 1 + j]:
                        same = False
                        break
                if same:
                    field = index
                    break
        if field < 0 or spans[field, 0] >= 0:  # unknown or repeated
            return UNSURE, k
        k = _skip(buf, stop + 1, end)
        if k >= end or buf[k] != 58:  # :
            return UNSURE, k
        k = _skip(buf, k + 1, end)
        if k >= end:
            return UNSURE, k
        spans[field, 0] = k
        if field == stop_at:
            return AT_VALUE, k
        stop = _value_after(buf, k, end)
        if stop < 0:
            return UNSURE, k
        spans[field, 1] = stop
        k = stop
