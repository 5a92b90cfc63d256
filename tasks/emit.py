"""Stage 4 — emit: the epoch's exact integer payouts as one batch of ledger entries.

Pure: ``epoch_transactions`` depends only on the epoch context and the consensus outputs.

Invariants:
- The batch starts with one ``epoch`` entry whose amount equals the sum of the batch's emission
  entries (the ledger rejects the batch otherwise), and every split is exact (``split_by_weights``).
- Owner cut → the owner's coldkey balance; miner incentive → stake on the miner's hotkey;
  validator dividends: the validator's take (``take_ppm`` of the dividend, floored) → stake of
  the validator's coldkey on its hotkey; the rest → every coldkey staked on the hotkey (the
  validator's own stake included) pro rata to stake, exactly (largest remainder, ties by
  coldkey), as stake on that hotkey (compounding). Stake is the snapshot the epoch gathered.
- If no miner earns incentive, the miner pool goes to validators by their emission share (spec
  §4.10 fallback). A pool that nobody can receive is not minted at all (recorded as unissued).
- Transaction ids are derived from (subnet, epoch, kind, uid): a retried epoch is idempotent and
  a second, different payout of the same epoch is rejected by the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.emission import PPM, quantise_shares, split_by_weights, split_subnet_emission
from ledger.schema import Kind, Tx, canonical_json
from tasks.gather import EpochContext


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


def compute_payouts(
    *,
    emission_rao: int,
    incentive: Sequence[float],
    dividends: Sequence[float],
    validator_share: Sequence[float],
    split_ppm: dict[str, int],
) -> Payouts:
    """Exact split of ``emission_rao`` by the consensus outputs."""
    split = split_subnet_emission(
        emission_rao,
        owner_ppm=split_ppm["owner"],
        miners_ppm=split_ppm["miners"],
        validators_ppm=split_ppm["validators"],
    )
    n = len(incentive)
    incentive_q = quantise_shares(incentive)
    dividends_q = quantise_shares(dividends)
    unissued = 0
    if sum(incentive_q) > 0:
        to_miners = split_by_weights(split.miners_rao, incentive_q)
        validator_pool = split.validators_rao
    else:
        to_miners = [0] * n
        validator_pool = split.miners_rao + split.validators_rao
        dividends_q = quantise_shares(validator_share)
    if sum(dividends_q) > 0:
        to_validators = split_by_weights(validator_pool, dividends_q)
    else:
        to_validators = [0] * n
        unissued += validator_pool
    return Payouts(
        owner_rao=split.owner_rao,
        incentive_rao=tuple(to_miners),
        dividends_rao=tuple(to_validators),
        unissued_rao=unissued,
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


def epoch_transactions(
    ctx: EpochContext, payouts: Payouts, *, consensus_state: dict[str, Any]
) -> list[Tx]:
    """The epoch's ledger batch: the ``epoch`` entry, then every non-zero payout."""
    prefix = f"epoch/{ctx.subnet}/{ctx.epoch}"
    payload = {
        "block": ctx.block,
        "seed": ctx.seed_hex,
        "parent_hash": ctx.parent_hash,
        "scheduled_rao": ctx.emission_rao,
        "unissued_rao": payouts.unissued_rao,
        **consensus_state,
    }
    txs = [
        _entry(
            ctx, prefix, Kind.EPOCH, amount_rao=payouts.total_rao, payload=canonical_json(payload)
        )
    ]
    if payouts.owner_rao:
        txs.append(
            _entry(
                ctx,
                f"{prefix}/owner",
                Kind.EMISSION_OWNER,
                coldkey=ctx.owner_coldkey,
                hotkey=ctx.owner_hotkey,
                amount_rao=payouts.owner_rao,
            )
        )
    for neuron in ctx.neurons:
        incentive = payouts.incentive_rao[neuron.uid]
        if incentive:
            txs.append(
                _entry(
                    ctx,
                    f"{prefix}/{Kind.EMISSION_INCENTIVE.value}/{neuron.uid}",
                    Kind.EMISSION_INCENTIVE,
                    coldkey=neuron.coldkey,
                    hotkey=neuron.hotkey,
                    uid=neuron.uid,
                    amount_rao=incentive,
                )
            )
        dividend = payouts.dividends_rao[neuron.uid]
        if not dividend:
            continue
        split = split_dividend(dividend, take_ppm=neuron.take_ppm, stakers=neuron.stakers)
        if split.take_rao:
            txs.append(
                _entry(
                    ctx,
                    f"{prefix}/{Kind.EMISSION_DIVIDEND.value}/{neuron.uid}",
                    Kind.EMISSION_DIVIDEND,
                    coldkey=neuron.coldkey,
                    hotkey=neuron.hotkey,
                    uid=neuron.uid,
                    amount_rao=split.take_rao,
                )
            )
        for coldkey, amount in split.stakers_rao:
            if amount:
                txs.append(
                    _entry(
                        ctx,
                        f"{prefix}/{Kind.EMISSION_DELEGATOR.value}/{neuron.uid}/{coldkey}",
                        Kind.EMISSION_DELEGATOR,
                        coldkey=coldkey,
                        hotkey=neuron.hotkey,
                        uid=neuron.uid,
                        amount_rao=amount,
                    )
                )
    return txs


def _entry(
    ctx: EpochContext,
    tx_id: str,
    kind: Kind,
    *,
    amount_rao: int,
    coldkey: str = "",
    hotkey: str = "",
    uid: int = -1,
    payload: str = "{}",
) -> Tx:
    return Tx(
        tx_id,
        kind,
        subnet=ctx.subnet,
        epoch=ctx.epoch,
        block=ctx.block,
        coldkey=coldkey,
        hotkey=hotkey,
        uid=uid,
        amount_rao=amount_rao,
        payload=payload,
    )
