"""A hosted validator's policy: how it turns scores into weights (typed, validated once).

The ledger owns these rules: a subnet's ``validator_policy`` (``SubnetConfig``) and every
validator's own ``validator_settings`` (its registration) are checked against
:class:`ValidatorPolicy` when they enter the ledger, so one participant's settings can never make
an epoch fail later. ``tasks.weights`` applies the policy.

Invariants: a constructed :class:`ValidatorPolicy` is always valid (numbers are numbers, not
bools; ranges below); :meth:`ValidatorPolicy.from_settings` refuses unknown keys in one line;
``NON_POLICY_KEYS`` (``hosted``) are registration settings that are not part of the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

NON_POLICY_KEYS: Final = frozenset({"hosted"})
"""Validator settings that say how the validator runs, not how it weighs (skipped here)."""

TEMPERATURE_MIN = 1e-6
EPSILON_MAX = 0.5
WIN_POLICIES: Final = ("epsilon", "bootstrap")
BOOTSTRAP_CONFIDENCE_MIN: Final = 0.5
BOOTSTRAP_CONFIDENCE_MAX: Final = 0.999
BOOTSTRAP_RESAMPLES_MIN: Final = 100
BOOTSTRAP_RESAMPLES_MAX: Final = 10_000


class InvalidValidatorPolicy(ValueError):
    """A hosted validator's settings are out of range."""


@dataclass(frozen=True)
class ValidatorPolicy:
    """How a hosted validator turns scores into weights."""

    temperature: float = 0.05
    epsilon: float = 0.005
    epsilon_decay_blocks: int = 7_200
    win_policy: str = "epsilon"
    bootstrap_confidence: float = 0.95
    bootstrap_resamples: int = 1_000

    def __post_init__(self) -> None:
        for name in ("temperature", "epsilon", "bootstrap_confidence"):
            if not _is_number(getattr(self, name)):
                raise InvalidValidatorPolicy(f"{name} must be a number")
        for name in ("epsilon_decay_blocks", "bootstrap_resamples"):
            if not _is_int(getattr(self, name)):
                raise InvalidValidatorPolicy(f"{name} must be an integer")
        if not self.temperature >= TEMPERATURE_MIN:
            raise InvalidValidatorPolicy(f"temperature must be ≥ {TEMPERATURE_MIN}")
        if not 0.0 <= self.epsilon <= EPSILON_MAX:
            raise InvalidValidatorPolicy(f"epsilon must be in [0, {EPSILON_MAX}]")
        if self.epsilon_decay_blocks < 1:
            raise InvalidValidatorPolicy("epsilon_decay_blocks must be ≥ 1")
        if self.win_policy not in WIN_POLICIES:
            shown = repr(self.win_policy)[:40]
            raise InvalidValidatorPolicy(
                f"win_policy must be one of {', '.join(WIN_POLICIES)}, got {shown}"
            )
        if not BOOTSTRAP_CONFIDENCE_MIN <= self.bootstrap_confidence <= BOOTSTRAP_CONFIDENCE_MAX:
            raise InvalidValidatorPolicy(
                f"bootstrap_confidence must be in [{BOOTSTRAP_CONFIDENCE_MIN}, "
                f"{BOOTSTRAP_CONFIDENCE_MAX}]"
            )
        if not BOOTSTRAP_RESAMPLES_MIN <= self.bootstrap_resamples <= BOOTSTRAP_RESAMPLES_MAX:
            raise InvalidValidatorPolicy(
                f"bootstrap_resamples must be an integer in [{BOOTSTRAP_RESAMPLES_MIN}, "
                f"{BOOTSTRAP_RESAMPLES_MAX:,}]"
            )

    @classmethod
    def from_settings(cls, *layers: Mapping[str, Any]) -> ValidatorPolicy:
        """Later layers override earlier ones (subnet default, then the validator's own)."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update((k, v) for k, v in layer.items() if k not in NON_POLICY_KEYS)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(merged) - known)
        if unknown:
            raise InvalidValidatorPolicy(f"unknown validator setting(s) {unknown[:8]}")
        return cls(**merged)

    @property
    def needs_rows(self) -> bool:
        """Whether this policy decides wins from per-row correctness (:class:`ValidatorRows`)."""
        return self.win_policy == "bootstrap"


def policy_problem(*layers: Mapping[str, Any]) -> str | None:
    """Why ``layers`` (subnet default, then a validator's own settings) are not a valid policy."""
    for layer in layers:
        hosted = layer.get("hosted", True)
        if not isinstance(hosted, bool):
            return "validator setting hosted must be true or false"
    try:
        ValidatorPolicy.from_settings(*layers)
    except InvalidValidatorPolicy as exc:
        return f"validator policy: {exc}"
    except TypeError:
        return "validator policy: settings must be an object"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
