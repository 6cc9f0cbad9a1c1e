"""Time-ordered UUIDs (RFC 9562 version 7) for primary keys.

Version 7 ids sort by creation time, so B-tree inserts stay on the right-hand edge of the
index (like a sequence) while ids stay unguessable across tenants.
"""

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7: 48-bit Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b: 62 bits
    return uuid.UUID(int=value)
