"""Registration economics and pruning, as pure functions on plain data.

Invariants:
- The registration cost is an integer in [min, max] rao: it rises by ``increase_ppm`` after every
  registration and decays by ``decay_ppm`` at every epoch of the subnet (integer floor math).
- When a subnet is full, a registration replaces the non-immune UID with the lowest emission in
  the last epoch; ties go to the older registration, then the lower UID. A UID is immune while
  ``current_block − registered_block < immunity_period_blocks``. If every UID is immune the
  registration is refused (nothing is replaced).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from taoflow.ledger.config import SubnetConfig

PPM = 1_000_000
RAO_PER_TAO = 1_000_000_000


class InvalidRegistrationPolicy(ValueError):
    """A subnet's registration settings are out of range."""


@dataclass(frozen=True)
class RegistrationPolicy:
    """A subnet's registration settings (from its create entry's payload)."""

    initial_cost_rao: int = RAO_PER_TAO
    min_cost_rao: int = RAO_PER_TAO // 10
    max_cost_rao: int = 100 * RAO_PER_TAO
    increase_ppm: int = 100_000
    decay_ppm: int = 50_000
    immunity_period_blocks: int = 4_096

    def __post_init__(self) -> None:
        if not 0 <= self.min_cost_rao <= self.initial_cost_rao <= self.max_cost_rao:
            raise InvalidRegistrationPolicy("need 0 ≤ min cost ≤ initial cost ≤ max cost")
        if not 0 <= self.increase_ppm <= 10 * PPM:
            raise InvalidRegistrationPolicy("increase_ppm must be in [0, 10,000,000]")
        if not 0 <= self.decay_ppm < PPM:
            raise InvalidRegistrationPolicy("decay_ppm must be in [0, 1,000,000)")
        if self.immunity_period_blocks < 0:
            raise InvalidRegistrationPolicy("immunity_period_blocks must be ≥ 0")

    @classmethod
    def from_config(cls, config: SubnetConfig) -> RegistrationPolicy:
        """The policy of a subnet's validated config."""
        initial = config.registration_cost_rao
        return cls(
            initial_cost_rao=initial,
            min_cost_rao=_or(config.registration_cost_min_rao, min(initial, RAO_PER_TAO // 10)),
            max_cost_rao=_or(config.registration_cost_max_rao, max(initial, 100 * RAO_PER_TAO)),
            increase_ppm=config.registration_cost_increase_ppm,
            decay_ppm=config.registration_cost_decay_ppm,
            immunity_period_blocks=config.immunity_period_blocks,
        )

    def after_registration(self, cost_rao: int) -> int:
        return min(self.max_cost_rao, cost_rao * (PPM + self.increase_ppm) // PPM)

    def after_epoch(self, cost_rao: int) -> int:
        return max(self.min_cost_rao, cost_rao * (PPM - self.decay_ppm) // PPM)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


@dataclass(frozen=True)
class Candidate:
    """What pruning needs to know about a UID."""

    uid: int
    registered_block: int
    emission_rao: int


def uid_to_prune(
    candidates: Iterable[Candidate],
    *,
    current_block: int,
    immunity_period_blocks: int,
    protected: frozenset[int] = frozenset(),
) -> int | None:
    """The UID a new registration replaces, or None if every UID is immune or protected."""
    eligible = [
        c
        for c in candidates
        if c.uid not in protected and current_block - c.registered_block >= immunity_period_blocks
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c.emission_rao, c.registered_block, c.uid)).uid
