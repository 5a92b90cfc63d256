"""Yuma consensus hyper-parameters (shared/yuma-spec.md §3), with the chain's defaults.

Invariants
----------
* Every field holds the integer (or bool) exactly as subtensor stores it: u16 proportions are raw
  0..65535 integers (read back as x/65535), the bond moving average is in parts per million.
* A constructed :class:`YumaParams` is always valid; invalid values raise
  :class:`InvalidHyperparameter` (a ``ValueError``) naming the field and the reason. The accepted
  ranges are what a subnet owner may set on chain (spec §3): kappa ≥ 1, bonds moving average
  ≤ 975 000 ppm, alpha_low ≥ 1638 and ≤ alpha_high, steepness ≥ 0 (negative values are
  root-only on chain and rejected here).
* Derived real-valued quantities (κ, β, α) are exposed as properties so every implementation reads
  the same definition of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

U16_MAX = 65_535
"""Largest u16 value; a u16 proportion u means u / U16_MAX."""

PPM_ONE = 1_000_000
"""One, in parts per million (the unit of ``bonds_moving_average_ppm``)."""

ALPHA_LOW_MIN_U16 = 1_638
"""Smallest ``alpha_low`` the chain's setter accepts (≈ 0.025)."""

BONDS_MOVING_AVERAGE_OWNER_MAX_PPM = 975_000
"""Largest bonds moving average a subnet owner may set (α ≥ 0.025)."""

_I16_MAX = 32_767


class InvalidHyperparameter(ValueError):
    """A Yuma hyper-parameter is outside the range the chain accepts."""


def _require_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidHyperparameter(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return value


def _require_range(name: str, value: object, *, low: int, high: int | None) -> None:
    number = _require_int(name, value)
    if number < low or (high is not None and number > high):
        upper = "∞" if high is None else str(high)
        raise InvalidHyperparameter(f"{name} must be in [{low}, {upper}], got {number}")


@dataclass(frozen=True)
class YumaParams:
    """Per-subnet hyper-parameters that the Yuma epoch reads (defaults = subtensor defaults).

    ``commit_reveal`` is the one deliberate exception: the chain enables commit-reveal by default
    (``CommitRevealWeightsEnabled``), but this project's hosted validators set weights directly,
    so the mask of spec §4.5.5 is off unless a subnet turns it on. ``immunity_period_blocks`` is
    carried here for pruning (spec §7); the epoch itself never reads it.
    """

    kappa_u16: int = 32_767
    bonds_moving_average_ppm: int = 900_000
    bonds_penalty_u16: int = 65_535
    max_validators: int = 128
    activity_cutoff_blocks: int = 5_000
    stake_threshold_rao: int = 0
    yuma3: bool = False
    liquid_alpha: bool = False
    alpha_low_u16: int = 45_875
    alpha_high_u16: int = 58_982
    alpha_sigmoid_steepness: int = 1_000
    commit_reveal: bool = False
    immunity_period_blocks: int = 4_096

    def __post_init__(self) -> None:
        if _require_int("kappa_u16", self.kappa_u16) == 0:
            raise InvalidHyperparameter(
                "kappa_u16 must be in [1, 65535], got 0: κ = 0 would make the largest weight of "
                "any single staked validator the consensus"
            )
        _require_range("kappa_u16", self.kappa_u16, low=1, high=U16_MAX)
        _require_range("bonds_moving_average_ppm", self.bonds_moving_average_ppm, low=0, high=None)
        if self.bonds_moving_average_ppm > BONDS_MOVING_AVERAGE_OWNER_MAX_PPM:
            raise InvalidHyperparameter(
                f"bonds_moving_average_ppm must be <= {BONDS_MOVING_AVERAGE_OWNER_MAX_PPM} "
                f"(the subnet owner's maximum on chain, α >= 0.025), "
                f"got {self.bonds_moving_average_ppm}"
            )
        _require_range("bonds_penalty_u16", self.bonds_penalty_u16, low=0, high=U16_MAX)
        _require_range("max_validators", self.max_validators, low=1, high=None)
        _require_range("activity_cutoff_blocks", self.activity_cutoff_blocks, low=1, high=None)
        _require_range("stake_threshold_rao", self.stake_threshold_rao, low=0, high=None)
        for flag_name in ("yuma3", "liquid_alpha", "commit_reveal"):
            flag = getattr(self, flag_name)
            if not isinstance(flag, bool):
                raise InvalidHyperparameter(
                    f"{flag_name} must be a bool, got {type(flag).__name__} {flag!r}"
                )
        _require_range("alpha_low_u16", self.alpha_low_u16, low=ALPHA_LOW_MIN_U16, high=U16_MAX)
        _require_range("alpha_high_u16", self.alpha_high_u16, low=0, high=U16_MAX)
        if self.alpha_low_u16 > self.alpha_high_u16:
            raise InvalidHyperparameter(
                f"alpha_low_u16 ({self.alpha_low_u16}) must be <= alpha_high_u16 "
                f"({self.alpha_high_u16})"
            )
        if _require_int("alpha_sigmoid_steepness", self.alpha_sigmoid_steepness) < 0:
            raise InvalidHyperparameter(
                f"alpha_sigmoid_steepness must be >= 0, got {self.alpha_sigmoid_steepness}: "
                "on chain only root may set a negative steepness"
            )
        _require_range(
            "alpha_sigmoid_steepness", self.alpha_sigmoid_steepness, low=0, high=_I16_MAX
        )
        # The chain stores ImmunityPeriod as a u16.
        _require_range("immunity_period_blocks", self.immunity_period_blocks, low=0, high=U16_MAX)

    @property
    def kappa(self) -> float:
        """κ = kappa_u16 / 65535 (default 0.4999924, not 0.5)."""
        return self.kappa_u16 / U16_MAX

    @property
    def bonds_penalty(self) -> float:
        """β = bonds_penalty_u16 / 65535."""
        return self.bonds_penalty_u16 / U16_MAX

    @property
    def alpha_low(self) -> float:
        """Liquid-alpha lower bound, alpha_low_u16 / 65535."""
        return self.alpha_low_u16 / U16_MAX

    @property
    def alpha_high(self) -> float:
        """Liquid-alpha upper bound, alpha_high_u16 / 65535."""
        return self.alpha_high_u16 / U16_MAX

    @property
    def sigmoid_steepness(self) -> float:
        """Liquid-alpha sigmoid steepness as the epoch uses it: alpha_sigmoid_steepness / 100."""
        return self.alpha_sigmoid_steepness / 100

    @property
    def bonds_alpha(self) -> float:
        """EMA weight of the new bond delta, α = 1 − bonds_moving_average_ppm / 10^6."""
        return 1.0 - self.bonds_moving_average_ppm / PPM_ONE

    def to_dict(self) -> dict[str, int | bool]:
        """Plain dict of the stored hyper-parameters (for logging / MLflow params)."""
        return asdict(self)
