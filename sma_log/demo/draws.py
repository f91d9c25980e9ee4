"""Seeded randomness: one stream for values, one for the random bits of ULIDs.

The generator holds two of these (patients, procedures and events; follow-ups and
contact attempts), so the follow-ups, added later, left the rest of a seed as it was.
Every value of a demo depends on the order of the draws: keep it when changing code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from ulid.base32 import ENCODE as CROCKFORD

from .units import HOUR, SEC

# Crockford base32 (the ULID alphabet), two digits at a time: 26 digits = 13 pairs.
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


class Draws:
    """Values from ``rng`` (seeded with ``values_seed``), ULIDs from their own stream."""

    def __init__(self, values_seed: str, ids_seed: str) -> None:
        self.rng = random.Random(values_seed)
        self._id_rng = random.Random(ids_seed)

    def id(self, us: int) -> str:
        """A ULID for the instant ``us``: 48-bit milliseconds + 80 seeded random bits."""
        value = (us // 1000) << 80 | self._id_rng.getrandbits(80)
        return "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])

    def sec(self, lo: float, hi: float) -> int:
        """A duration of ``lo``…``hi`` seconds, in microseconds."""
        return int(self.rng.uniform(lo, hi) * SEC)

    def hours(self, lo: float, hi: float) -> int:
        """A duration of ``lo``…``hi`` hours, in microseconds."""
        return int(self.rng.uniform(lo, hi) * HOUR)

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def pick(self, weighted: Mapping[Any, float]) -> Any:
        """One key of ``weighted``, chosen by its weight."""
        return self.rng.choices(tuple(weighted), tuple(weighted.values()))[0]

    def poisson(self, mean: float, cap: int) -> int:
        """A Poisson count (Knuth's method), at most ``cap``."""
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit and k < cap:
            k += 1
            p *= self.rng.random()
        return k
