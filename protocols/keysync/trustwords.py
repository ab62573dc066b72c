"""Trustwords: the words both devices show in a handshake (draft-pep-keysync 1.5).

The words are derived from both devices' fingerprints, independent of which device
computes them: the fingerprints are XORed (as pEp combines them), hashed with SHA-256,
and each of the first `count` bytes picks one word of a 256-word list shipped with the
runtime. Equal words on both screens mean both devices hold each other's keys.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

__all__ = ["trustwords"]


@functools.cache
def _words() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("trustwords.txt").read_text(encoding="utf-8")
    words = tuple(text.split())
    assert len(words) == 256 and len(set(words)) == 256
    return words


def trustwords(fpr_a: str, fpr_b: str, count: int = 5) -> tuple[str, ...]:
    """`count` words for the pair of hex fingerprints, the same for (a, b) and (b, a)."""
    a, b = bytes.fromhex(fpr_a), bytes.fromhex(fpr_b)
    width = max(len(a), len(b))
    mixed = bytes(x ^ y for x, y in zip(a.rjust(width, b"\0"), b.rjust(width, b"\0"), strict=True))
    digest = hashlib.sha256(mixed).digest()
    words = _words()
    return tuple(words[digest[i]] for i in range(count))
