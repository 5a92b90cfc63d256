"""Who may do what: validator permits, who sets weights on whom, whose take is a setting.

Pure functions on plain data; ``ledger.state`` applies them to every weights commit, weights
reveal and take, and the CLI asks the same questions before it signs anything.

The chain's rules (subtensor ``subnets/weights.rs``, ``epoch/run_epoch.rs``), as kept here:
- **Validator permit** (``validator_permits``): the chain's ``is_topk_nonzero`` on stake: a uid
  whose stake (after the subnet's ``stake_threshold_rao``; the owner is exempt) is non-zero and
  among the subnet's ``max_validators`` largest holds a permit; if the subnet has fewer uids than
  that, every uid with non-zero stake does. On equal stake the lower uid loses (stable ascending
  sort, the first ``n − k`` dropped). The subnet owner's uid always holds one. Both settings are
  read from the subnet's ``yuma`` config with the chain's defaults (the consensus stage reads the
  same keys). The chain checks the permit its last epoch stored; the ledger applies the same rule
  to the stake at the time of the transaction (stake added now counts now), while consensus
  still masks a row by the previous epoch's permits, so such weights count from the next epoch.
- **Weights** (``check_validator_permit`` / ``is_self_weight``): a hotkey may set weights on
  other uids only if it is registered with the ``validator`` role and holds a permit; anyone
  registered may set a self-weight (exactly one entry, its own uid).
- **Take** is a validator setting: only a hotkey registered as a validator on at least one
  subnet has one (the chain keeps one take per hotkey across subnets; a permit is not needed,
  so that a take can be set before the first epoch and lowered at any time).

Invariants: ``validator_permits`` depends only on the stakes, the two settings and the owner's
uid (never on iteration order); every ``*_problem`` function returns one line or None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from taoflow.ledger.config import SubnetConfig

VALIDATOR_ROLE: Final = "validator"
MAX_VALIDATORS_DEFAULT: Final = 128
"""The chain's ``max_allowed_validators`` default (``YumaParams.max_validators``)."""
STAKE_THRESHOLD_DEFAULT_RAO: Final = 0
"""The chain's ``StakeThreshold`` default (``YumaParams.stake_threshold_rao``)."""
U16_MAX: Final = 65_535
SELF_WEIGHT_KEY: Final = "self_weight"
"""A weights commit payload's flag: the committed vector is the signer's self-weight."""


def permit_settings(config: SubnetConfig) -> tuple[int, int]:
    """``(max_validators, stake_threshold_rao)`` of a subnet (chain defaults when unset)."""
    return (
        _yuma_int(config.yuma, "max_validators", default=MAX_VALIDATORS_DEFAULT, low=1),
        _yuma_int(config.yuma, "stake_threshold_rao", default=STAKE_THRESHOLD_DEFAULT_RAO, low=0),
    )


def _yuma_int(yuma: Mapping[str, Any], name: str, *, default: int, low: int) -> int:
    value = yuma.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        return default  # such a subnet's consensus refuses the setting; the ledger keeps defaults
    return value


def validator_permits(
    stake_rao: Mapping[int, int],
    *,
    max_validators: int,
    stake_threshold_rao: int,
    owner_uid: int | None,
) -> frozenset[int]:
    """The uids holding a validator permit, given each uid's stake (see the module docstring)."""
    uids = sorted(stake_rao)
    counted = {
        uid: 0 if stake_rao[uid] < stake_threshold_rao and uid != owner_uid else stake_rao[uid]
        for uid in uids
    }
    permitted = {uid for uid in uids if counted[uid] > 0}
    if len(uids) >= max_validators:
        ascending = sorted(uids, key=lambda uid: counted[uid])  # stable: lower uid first on ties
        permitted -= set(ascending[: len(uids) - max_validators])
    if owner_uid is not None and owner_uid in stake_rao:
        permitted.add(owner_uid)
    return frozenset(permitted)


def is_self_weight(uid: int, uids: Sequence[object]) -> bool:
    """The chain's ``is_self_weight``: exactly one entry, on the setter's own uid."""
    return len(uids) == 1 and uids[0] == uid


def weight_vector_problem(uids: object, weights: object, *, n_uids: int, subnet: str) -> str | None:
    """Why ``uids``/``weights`` is not a weight vector of a subnet of ``n_uids`` uids, or None."""
    if not (isinstance(uids, list) and isinstance(weights, list)):
        return "weights need a list of uids and a list of weights"
    if len(uids) != len(weights) or len(set(map(repr, uids))) != len(uids):
        return "uids and weights must have the same length and distinct uids"
    for uid, weight in zip(uids, weights, strict=True):
        if not _int_in(uid, low=0, high=n_uids - 1):
            return f"uid {uid!r} is not a uid of {subnet!r}, which has {n_uids} uids"
        if not _int_in(weight, low=0, high=U16_MAX):
            return f"weight {weight!r} is not a u16 (an integer in [0, {U16_MAX}])"
    return None


def _int_in(value: object, *, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def weight_setter_problem(*, role: str, has_permit: bool, hotkey: str, subnet: str) -> str | None:
    """Why a hotkey may not set weights on other uids of ``subnet``, or None if it may."""
    if role != VALIDATOR_ROLE:
        return (
            f"hotkey {hotkey!r} is registered on {subnet!r} as a {role}: only validators with a "
            "permit set weights on other uids (a self-weight is allowed)"
        )
    if not has_permit:
        return (
            f"hotkey {hotkey!r} holds no validator permit on {subnet!r}: permits go to the "
            "validators with the most stake (non-zero); stake to it first"
        )
    return None


def take_problem(*, hotkey: str, is_validator: bool) -> str | None:
    """Why ``hotkey`` has no take to set, or None."""
    if not is_validator:
        return (
            f"hotkey {hotkey!r} is not registered as a validator on any subnet: take is a "
            "validator setting"
        )
    return None
