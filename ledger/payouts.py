"""The money rules of an epoch, as pure integer code: what a subnet is owed and who gets it.

The epoch pipeline proposes an epoch; the ledger decides whether it is a valid one by
recomputing the exact payouts here (``plan_epoch``) from what it holds and comparing entry by
entry. The pipeline builds its entries with the same function, so both always agree.

Invariants:
- Every amount is integer rao; no float touches money. Consensus shares enter only as integers
  in units of 1/``SHARE_QUANTUM`` (``quantise_shares``), recorded in the epoch entry's payload.
- Schedule: a subnet's epoch is owed its ``emission_share`` of the block rewards of ``tempo``
  blocks from the current issued total (``emission_for_blocks``: halvings and the supply cap),
  split exactly across subnets in name order (``subnet_emission_rao``).
- Split: the owner gets exactly ``owner_ppm`` of the epoch (largest remainder between owner,
  miners, validators); the miners' pool is split by incentive share and the validators' pool by
  dividend share, each exactly (``split_by_weights``). If no eligible miner earns incentive, the
  miners' pool goes to the validators by their emission share (spec §4.10 fallback). A pool that
  nobody can receive is not issued (``unissued_rao``). Hence
  ``owner + Σ incentive + Σ dividends + unissued == emission``.
- Eligibility: a uid earns only while it is registered with the hotkey the epoch recorded for it
  (``EpochShares.hotkeys``); a uid listed with an evaluation error earns no incentive.
- Delegation: a validator keeps ``floor(dividend · take_ppm / 1e6)`` (or all of it when nobody
  is staked); the rest goes to every coldkey staked on its hotkey pro rata to stake, exactly
  (largest remainder, ties to the lower coldkey), as stake on that hotkey. Stake is the ledger's
  stake at the point the epoch entry is applied.
- At most one incentive and one dividend per uid and one delegator entry per (uid, coldkey).
- ``parse_tao`` turns a τ string into rao exactly (``Decimal``, never rounded), or raises
  ``InvalidAmount`` (a one-line ``ValueError``) naming the problem; ``tao_text`` is its inverse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from taoflow.ledger.emission import (
    PPM,
    SHARE_QUANTUM,
    emission_for_blocks,
    quantise_shares,
    split_by_weights,
    split_subnet_emission,
)
from taoflow.ledger.errors import InvalidAmount
from taoflow.ledger.schema import RAO_PER_TAO, Kind

SHARE_UIDS_MAX: Final = 65_536
"""Upper bound on the per-uid lists an epoch payload may carry."""
TAO_DECIMALS: Final = 9
TAO_TEXT_CHARS_MAX: Final = 64
AMOUNT_RAO_MAX: Final = 2**63 - 1


# ---- amounts ---------------------------------------------------------------------------------

TAO_SYNTAX: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A τ amount as a person types it: ASCII digits, at most one '.', an optional exponent."""
TAO_NON_FINITE: Final = frozenset({"inf", "infinity", "nan", "snan"})
TAO_SYNTAX_HINT: Final = (
    "write τ as a decimal number such as 1.5 (digits and one '.', no spaces, commas or hex)"
)


def parse_tao(text: str, *, allow_zero: bool = False) -> int:
    """``text`` τ as exact rao, or ``InvalidAmount`` (a one-line ``ValueError``) saying why.

    Accepted: a decimal number (``1.5``, ``0.000000001``, ``2e3``) with at most 9 decimal places,
    > 0 (≥ 0 with ``allow_zero``), at most ``AMOUNT_RAO_MAX`` rao. Nothing is rounded: an amount
    with more decimal places than rao can hold is refused, never cut. Refused as well: empty text,
    spaces, thousands separators, hex, ``inf``, ``nan``, negative amounts. No arithmetic goes
    through a ``Decimal`` context, so no precision limit can round an amount on the way.
    """
    reason = _tao_syntax_problem(text)
    if reason is not None:
        raise InvalidAmount(text, reason)
    value = Decimal(text)
    if value < 0:
        raise InvalidAmount(text, "τ amounts cannot be negative")
    if value == 0:
        if allow_zero:
            return 0
        raise InvalidAmount(text, "must be more than 0 τ")
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # unreachable: finite was checked
        raise InvalidAmount(text, TAO_SYNTAX_HINT)
    coefficient = "".join(map(str, digits))
    significant = coefficient.rstrip("0")
    scale = exponent + len(coefficient) - len(significant) + TAO_DECIMALS
    if scale < 0:
        raise InvalidAmount(
            text, f"τ has at most {TAO_DECIMALS} decimal places (1 rao = 0.000000001 τ)"
        )
    too_large = f"above the largest amount the ledger holds, {tao_text(AMOUNT_RAO_MAX)} τ"
    if len(significant) + scale > len(str(AMOUNT_RAO_MAX)):  # before computing 10**scale
        raise InvalidAmount(text, too_large)
    rao = int(significant) * 10**scale
    if rao > AMOUNT_RAO_MAX:
        raise InvalidAmount(text, too_large)
    return rao


def _tao_syntax_problem(text: str) -> str | None:
    if not text:
        return "give a number of τ such as 1.5"
    if len(text) > TAO_TEXT_CHARS_MAX:
        return f"longer than {TAO_TEXT_CHARS_MAX} characters"
    if text.lower().lstrip("+-") in TAO_NON_FINITE:
        return "τ amounts are finite numbers"
    if TAO_SYNTAX.fullmatch(text) is None:
        return TAO_SYNTAX_HINT
    return None


def tao_text(amount_rao: int) -> str:
    """``amount_rao`` as exact τ text with all 9 decimals: ``1,234.500000000`` (no float)."""
    sign = "-" if amount_rao < 0 else ""
    whole, frac = divmod(abs(amount_rao), RAO_PER_TAO)
    return f"{sign}{whole:,}.{frac:0{TAO_DECIMALS}d}"


# ---- schedule --------------------------------------------------------------------------------


def subnet_emission_rao(
    *, issued_rao: int, blocks: int, emission_shares: Mapping[str, int], subnet: str
) -> int:
    """``subnet``'s exact share of the block rewards of ``blocks`` blocks from ``issued_rao``.

    Subnets share every block's reward by their ``emission_share`` (``emission_shares``), split
    exactly with ``split_by_weights`` in subnet-name order.
    """
    total = emission_for_blocks(issued_rao=issued_rao, blocks=blocks)
    names = sorted(emission_shares)
    parts = split_by_weights(total, [emission_shares[name] for name in names])
    return parts[names.index(subnet)]


# ---- split -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payouts:
    """Per-uid amounts of one epoch, in rao."""

    owner_rao: int
    incentive_rao: tuple[int, ...]
    dividends_rao: tuple[int, ...]
    unissued_rao: int

    @property
    def total_rao(self) -> int:
        return self.owner_rao + sum(self.incentive_rao) + sum(self.dividends_rao)


def payouts_from_shares(
    *,
    emission_rao: int,
    incentive_q: Sequence[int],
    dividends_q: Sequence[int],
    validator_share_q: Sequence[int],
    split_ppm: Mapping[str, int],
) -> Payouts:
    """Exact split of ``emission_rao`` by integer shares (units of 1/``SHARE_QUANTUM``)."""
    split = split_subnet_emission(
        emission_rao,
        owner_ppm=split_ppm["owner"],
        miners_ppm=split_ppm["miners"],
        validators_ppm=split_ppm["validators"],
    )
    n = len(incentive_q)
    unissued = 0
    dividend_weights = list(dividends_q)
    if sum(incentive_q) > 0:
        to_miners = split_by_weights(split.miners_rao, incentive_q)
        validator_pool = split.validators_rao
    else:
        to_miners = [0] * n
        validator_pool = split.miners_rao + split.validators_rao
        dividend_weights = list(validator_share_q)
    if sum(dividend_weights) > 0:
        to_validators = split_by_weights(validator_pool, dividend_weights)
    else:
        to_validators = [0] * n
        unissued += validator_pool
    return Payouts(
        owner_rao=split.owner_rao,
        incentive_rao=tuple(to_miners),
        dividends_rao=tuple(to_validators),
        unissued_rao=unissued,
    )


def compute_payouts(
    *,
    emission_rao: int,
    incentive: Sequence[float],
    dividends: Sequence[float],
    validator_share: Sequence[float],
    split_ppm: Mapping[str, int],
) -> Payouts:
    """``payouts_from_shares`` of consensus outputs (float shares quantised first)."""
    return payouts_from_shares(
        emission_rao=emission_rao,
        incentive_q=quantise_shares(incentive),
        dividends_q=quantise_shares(dividends),
        validator_share_q=quantise_shares(validator_share),
        split_ppm=split_ppm,
    )


@dataclass(frozen=True)
class DelegationSplit:
    """How one validator's dividend is shared: its take and each staker's part, in rao."""

    take_rao: int
    stakers_rao: tuple[tuple[str, int], ...]


def split_dividend(
    dividend_rao: int, *, take_ppm: int, stakers: Sequence[tuple[str, int]]
) -> DelegationSplit:
    """Validator take first, the rest pro rata to stake; exact to the rao."""
    if not 0 <= take_ppm <= PPM:
        raise ValueError(f"take_ppm must be in [0, {PPM}]")
    staked = [(coldkey, stake) for coldkey, stake in stakers if stake > 0]
    if not staked:
        return DelegationSplit(take_rao=dividend_rao, stakers_rao=())
    take = dividend_rao * take_ppm // PPM
    parts = split_by_weights(dividend_rao - take, [stake for _, stake in staked])
    return DelegationSplit(
        take_rao=take,
        stakers_rao=tuple((c, part) for (c, _), part in zip(staked, parts, strict=True)),
    )


# ---- the epoch as the ledger checks it -------------------------------------------------------


@dataclass(frozen=True)
class EpochShares:
    """What an epoch entry's payload records for the split (see ``to_payload``)."""

    hotkeys: tuple[str, ...]
    incentive_q: tuple[int, ...]
    dividends_q: tuple[int, ...]
    validator_share_q: tuple[int, ...]
    rejected_uids: frozenset[int] = frozenset()

    @classmethod
    def from_consensus(
        cls,
        *,
        hotkeys: Sequence[str],
        incentive: Sequence[float],
        dividends: Sequence[float],
        validator_share: Sequence[float],
        rejected_uids: frozenset[int] = frozenset(),
    ) -> EpochShares:
        return cls(
            hotkeys=tuple(hotkeys),
            incentive_q=tuple(quantise_shares(incentive)),
            dividends_q=tuple(quantise_shares(dividends)),
            validator_share_q=tuple(quantise_shares(validator_share)),
            rejected_uids=rejected_uids,
        )

    def to_payload(self) -> dict[str, Any]:
        """The ``shares`` object of the epoch payload (rejected uids live in ``evaluation``)."""
        return {
            "hotkeys": list(self.hotkeys),
            "incentive": list(self.incentive_q),
            "dividends": list(self.dividends_q),
            "validator_share": list(self.validator_share_q),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EpochShares:
        """Strict parse of an epoch payload's ``shares`` and ``evaluation.errors``."""
        shares = payload.get("shares")
        if not isinstance(shares, Mapping):
            raise ValueError("epoch payload has no shares object")
        hotkeys = shares.get("hotkeys")
        if not isinstance(hotkeys, list) or len(hotkeys) > SHARE_UIDS_MAX:
            raise ValueError(f"shares.hotkeys must be a list of at most {SHARE_UIDS_MAX}")
        if not all(isinstance(h, str) for h in hotkeys):
            raise ValueError("shares.hotkeys must be strings")
        lists = [_share_list(shares, name, len(hotkeys)) for name in _SHARE_LISTS]
        errors = payload.get("evaluation", {}).get("errors", {})
        if not isinstance(errors, Mapping) or not all(
            isinstance(k, str) and k.isdecimal() and len(k) <= len(str(SHARE_UIDS_MAX))
            for k in errors
        ):
            raise ValueError("evaluation.errors must map decimal uids to reasons")
        return cls(
            hotkeys=tuple(hotkeys),
            incentive_q=lists[0],
            dividends_q=lists[1],
            validator_share_q=lists[2],
            rejected_uids=frozenset(int(k) for k in errors),
        )


_SHARE_LISTS: Final = ("incentive", "dividends", "validator_share")


def _share_list(shares: Mapping[str, Any], name: str, n: int) -> tuple[int, ...]:
    values = shares.get(name)
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"shares.{name} must be a list with one entry per uid ({n})")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= SHARE_QUANTUM:
            raise ValueError(f"shares.{name} entries must be integers in [0, {SHARE_QUANTUM}]")
    return tuple(values)


@dataclass(frozen=True)
class Recipient:
    """A uid as the ledger holds it when the epoch entry is applied."""

    uid: int
    hotkey: str
    coldkey: str
    take_ppm: int
    stakers: tuple[tuple[str, int], ...]
    """(coldkey, stake rao) of everyone staked on the hotkey, by coldkey."""


@dataclass(frozen=True)
class PayoutEntry:
    """One emission entry an epoch owes: ``kind`` to ``coldkey`` (on ``hotkey``) at ``uid``."""

    kind: Kind
    uid: int
    coldkey: str
    hotkey: str
    amount_rao: int

    @property
    def key(self) -> tuple[Kind, int, str]:
        """What may be paid at most once per epoch."""
        return (self.kind, self.uid, self.coldkey)


@dataclass(frozen=True)
class EpochPlan:
    """Exactly what one epoch pays: its payouts and the emission entries, in batch order."""

    scheduled_rao: int
    payouts: Payouts
    entries: tuple[PayoutEntry, ...]
    rejected_uids: frozenset[int]

    @property
    def total_rao(self) -> int:
        return self.payouts.total_rao


def plan_epoch(
    *,
    scheduled_rao: int,
    shares: EpochShares,
    split_ppm: Mapping[str, int],
    recipients: Mapping[int, Recipient],
    owner_coldkey: str,
    owner_hotkey: str,
) -> EpochPlan:
    """The exact entries of an epoch owed ``scheduled_rao`` with consensus ``shares``.

    A uid whose current registration (``recipients``) is not the hotkey the epoch recorded
    earns nothing; a rejected uid earns no incentive.
    """
    eligible = [
        uid in recipients and recipients[uid].hotkey == hotkey
        for uid, hotkey in enumerate(shares.hotkeys)
    ]

    def only_eligible(values: Sequence[int], *, drop: frozenset[int] = frozenset()) -> list[int]:
        return [v if eligible[u] and u not in drop else 0 for u, v in enumerate(values)]

    payouts = payouts_from_shares(
        emission_rao=scheduled_rao,
        incentive_q=only_eligible(shares.incentive_q, drop=shares.rejected_uids),
        dividends_q=only_eligible(shares.dividends_q),
        validator_share_q=only_eligible(shares.validator_share_q),
        split_ppm=split_ppm,
    )
    entries: list[PayoutEntry] = []
    if payouts.owner_rao:
        entries.append(
            PayoutEntry(Kind.EMISSION_OWNER, -1, owner_coldkey, owner_hotkey, payouts.owner_rao)
        )
    for uid in range(len(shares.hotkeys)):
        if not eligible[uid]:
            continue
        entries.extend(_uid_entries(recipients[uid], payouts))
    return EpochPlan(
        scheduled_rao=scheduled_rao,
        payouts=payouts,
        entries=tuple(entries),
        rejected_uids=shares.rejected_uids,
    )


def _uid_entries(who: Recipient, payouts: Payouts) -> list[PayoutEntry]:
    out = []
    incentive = payouts.incentive_rao[who.uid]
    if incentive:
        out.append(
            PayoutEntry(Kind.EMISSION_INCENTIVE, who.uid, who.coldkey, who.hotkey, incentive)
        )
    dividend = payouts.dividends_rao[who.uid]
    if not dividend:
        return out
    split = split_dividend(dividend, take_ppm=who.take_ppm, stakers=who.stakers)
    if split.take_rao:
        out.append(
            PayoutEntry(Kind.EMISSION_DIVIDEND, who.uid, who.coldkey, who.hotkey, split.take_rao)
        )
    for coldkey, amount in split.stakers_rao:
        if amount:
            out.append(PayoutEntry(Kind.EMISSION_DELEGATOR, who.uid, coldkey, who.hotkey, amount))
    return out
