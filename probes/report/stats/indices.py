"""A reproducible stream of exactly uniform indices in [0, n), about twice as fast as Generator.integers.

Why our own: drawing the resample indices is most of the bootstrap's cost (one index per image per
resample: ~200 million for Table 14). Lemire's multiply-shift on 32 random bits is a multiply and a
shift per index on whole arrays, and 64-bit raw words give two indices each; numpy's bounded
``integers`` does the same work per element behind a call per value (measured 2.5 vs ~1.4 ns/index).

Exactness: ``(u * n) >> 32`` for a uniform 32-bit ``u`` is uniform on [0, n) once the draws whose low
32 bits fall below ``2**32 mod n`` are rejected (Lemire 2019). A rejected position (about n / 2**32
of them: ~600 of 50 million at n = 50,000) gets an exactly uniform replacement from a second stream,
consumed one position at a time in stream order, so the result is the same however the draws are split
into ``take`` calls.
"""
from __future__ import annotations

import numpy as np


class UniformIndices:
    """Indices uniform on [0, n), n <= 2**32, from a seed sequence; ``take(k)`` continues the stream."""

    def __init__(self, seed: np.random.SeedSequence, n: int) -> None:
        if not 1 <= n <= 1 << 32:
            raise ValueError(f"n must be in [1, 2**32], got {n}")
        primary, fallback = seed.spawn(2)
        self.bits = np.random.PCG64(primary)
        self.fallback = np.random.Generator(np.random.PCG64(fallback))
        self.n = n
        self.threshold = (1 << 32) % n  # low words below it are rejected (Lemire)
        self.spare = np.empty(0, dtype=np.uint32)  # the unused half of the last 64-bit word

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` indices of the stream (int64)."""
        need = count - len(self.spare)
        words = self.bits.random_raw(max(0, (need + 1) // 2)).astype("<u8", copy=False)
        halves = np.concatenate([self.spare, words.view("<u4")])  # low half first on every platform
        halves, self.spare = halves[:count], halves[count:]
        product = halves.astype(np.uint64) * np.uint64(self.n)
        out = (product >> np.uint64(32)).view(np.int64)
        if self.threshold:
            for position in np.flatnonzero(product.astype(np.uint32) < self.threshold).tolist():
                out[position] = self.fallback.integers(self.n)
        return out
