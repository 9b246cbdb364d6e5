"""Which orders a canary routes: a stable hash of the order id against the share.

The hash is BLAKE2b of the id's UTF-8 bytes (not Python's ``hash()``, which changes with
every process), read as a number from 0 to 9,999: an order is the canary's when that number
is below the share in hundredths of a percent. The same order goes the same way in every
process, after every restart, whatever else is in the batch.
"""

from __future__ import annotations

import hashlib
import re

BUCKETS = 10_000  # shares are exact to a hundredth of a percent
_SHARE = re.compile(r"\s*(\d{1,3}(?:\.\d{1,2})?)\s*%?\s*")


def bucket(order_id: str) -> int:
    """The order's place among BUCKETS, from 0."""
    digest = hashlib.blake2b(order_id.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"routing-canary").digest()
    return int.from_bytes(digest, "big") % BUCKETS


def parse_share(text: str) -> float:
    """``10%`` (or ``10``, ``2.5%``) -> 10.0: a percent above 0 and at most 100, to a
    hundredth; ValueError saying what is expected."""
    match = _SHARE.fullmatch(text)
    value = float(match.group(1)) if match else None
    if value is None or not 0 < value <= 100:
        raise ValueError(f"{text[:40]!r} is not a share such as 10% (above 0, at most 100%, "
                         "to a hundredth)")
    return value


def in_share(order_id: str, share: float) -> bool:
    """Whether the canary at ``share`` percent routes this order."""
    return bucket(order_id) < round(share * BUCKETS / 100)
