"""Hosted validators: turn a validator's evaluation scores into u16 weights.

Pure. Invariants: weights are integers in [0, 65535]; the largest weight of a non-empty row is
65535 (max-upscaled, as the chain stores them); a uid with no score gets no entry; equal scores
get equal weights; a higher score never gets a lower weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

U16_MAX = 65535
TEMPERATURE_MIN = 1e-6


def scores_to_weights(scores: Mapping[int, float], *, temperature: float) -> dict[int, int]:
    """Softmax of ``score / temperature``, max-upscaled to u16, for every scored uid."""
    if temperature < TEMPERATURE_MIN:
        raise ValueError(f"temperature must be ≥ {TEMPERATURE_MIN}, got {temperature}")
    clean = {uid: (s if math.isfinite(s) else 0.0) for uid, s in scores.items()}
    if not clean:
        return {}
    top = max(clean.values())
    # exp((s − max)/T) ∈ (0, 1], so the best uid maps to exactly 65535.
    return {
        uid: math.floor(math.exp((s - top) / temperature) * U16_MAX)
        for uid, s in sorted(clean.items())
    }
