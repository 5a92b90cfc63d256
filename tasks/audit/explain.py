"""Explain one reward: every step from a neuron's artifact to the rao it was paid in one epoch.

``explain(ledger, subnet=, hotkey=, epoch=)`` reads the committed epoch (``history.stored_epoch``:
its inputs rebuilt from the ledger, its record tables as stored, its rows) and lays out, for the
uid the hotkey held at that epoch:

1. the submission commit the epoch evaluated (transaction id, block, digest, uri), whether it was
   eligible (commit block + evaluation delay ≤ epoch block) and any rejection reason;
2. as a miner: each validator's score of it and the u16 weight it set, that weight normalised as
   consensus normalises it (row-normalised over the validator's permitted entries), the
   validator's stake and consensus stake share, the stake-weighted median (consensus) and the
   clipped weight ``min(weight, consensus)``; the rank ``Σ_i A_i · clipped_ij`` and incentive;
3. as a validator: the weights it set (normalised and clipped), its bonds, validator trust
   (``Σ_j clipped_ij``) and dividends;
4. how the epoch's emission was split (owner, miners' pool, validators' pool), this uid's share
   of each pool, and the ledger rows that paid it: which balance (the owner's cut) or which stake
   ``(coldkey, hotkey)`` (incentive, the validator's take, each delegator's part) each moved.

Invariants (``Explanation.checks``; each names what it compares, and ``ok`` is true only when
all hold):
- the per-uid emission, the sum of the ledger's payout rows for the uid, equals the ``uids``
  record's ``emission_rao`` and the ledger's own plan of the epoch's entries for the uid
  (``LedgerState.epoch_plan`` of the recorded shares on the state right before the epoch's
  batch: the plan the ledger checked the rows against, re-planned epochs included);
- incentive recomputed from the weights record (normalised as consensus does, clipped at the
  recorded consensus, weighted by consensus stake share) equals the recorded incentive, and a
  validator's recomputed trust equals its recorded trust, to ``FLOAT_REL_TOL``;
- every record table reads back as committed (``StoredEpoch.record_problems`` is empty).
Nothing here writes; names are shown only from the ``labels`` the caller passes
(``taoflow.names.account_labels``), so the function is pure in the ledger. Lists in the markdown
are bounded by ``MARKDOWN_ROWS_MAX``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from dataclasses import replace as dataclass_replace
from typing import Any, Final

import numpy as np
import pyarrow as pa

from taoflow.ledger.emission import SHARE_QUANTUM, split_subnet_emission
from taoflow.ledger.payouts import EpochPlan, EpochShares, tao_text
from taoflow.ledger.schema import Kind
from taoflow.ledger.state import LedgerState
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import SubmissionCommit, SubmissionPolicy, evaluated_commit
from taoflow.tasks.audit.history import HistoryError, StoredEpoch, stored_epoch
from taoflow.tasks.consensus.stage import previous_state

FLOAT_REL_TOL: Final = 1e-9
"""Recomputed consensus figures match the record to this relative tolerance (sums in another
order than DuckDB's differ by a few ulps)."""
FLOAT_ABS_TOL: Final = 1e-12
MARKDOWN_ROWS_MAX: Final = 64
"""Most rows of one table in the markdown (the JSON holds every row)."""
SHORT_ID_CHARS: Final = 10
STAKE_MOVES: Final = frozenset(
    {Kind.EMISSION_INCENTIVE, Kind.EMISSION_DIVIDEND, Kind.EMISSION_DELEGATOR}
)
"""Payout kinds that add stake on (coldkey, hotkey); the owner's cut is credited to a balance."""
PAYOUT_ROLES: Final[Mapping[str, str]] = {
    Kind.EMISSION_OWNER.value: "subnet owner's cut",
    Kind.EMISSION_INCENTIVE.value: "miner incentive",
    Kind.EMISSION_DIVIDEND.value: "validator take",
    Kind.EMISSION_DELEGATOR.value: "delegator share",
}


class ExplainError(HistoryError):
    """A hotkey or epoch that cannot be explained (one line, for the user)."""


@dataclass(frozen=True)
class Account:
    """An account id and the name a person knows it by (wallet, wallet/hotkey or a short id)."""

    id: str
    name: str


@dataclass(frozen=True)
class Submission:
    """The commit an epoch evaluated for the uid, and whether it could be evaluated."""

    digest: str
    """The digest the epoch evaluated (``uids.artifact_digest``; "" when none)."""
    commit_tx_id: str | None
    """The ledger transaction of the commit (None: no such commit in the hotkey's history)."""
    commit_block: int | None
    uri: str | None
    delay_blocks: int
    epoch_block: int
    eligible_from_block: int | None
    eligible: bool
    rejection: str
    """Why the evaluation rejected the artifact ("" when it did not)."""


@dataclass(frozen=True)
class Judgement:
    """One validator's view of the explained uid as a miner (or of one miner, for a validator)."""

    validator: int
    miner: int
    validator_hotkey: Account
    validator_stake_rao: int
    permitted: bool
    """It held a permit from the previous epoch (or owns the subnet): its weights count."""
    consensus_stake_share: float
    """A_i: the validator's share of the active, permitted stake."""
    score: float | None
    weight_u16: int | None
    weight: float
    """The weight normalised as consensus read it (0 when the entry is masked)."""
    masked: str
    """Why consensus ignored the entry ("" when it counted)."""
    consensus: float
    clipped_weight: float
    clipped_by: float
    rank_contribution: float
    bond_u16: int | None = None


@dataclass(frozen=True)
class MinerSide:
    mean_score: float | None
    judgements: tuple[Judgement, ...]
    consensus: float
    rank: float
    rank_total: float
    incentive: float
    incentive_recomputed: float
    server_emission_share: float


@dataclass(frozen=True)
class ValidatorSide:
    permit_next: bool
    stake_weight: float
    consensus_stake_share: float
    validator_trust: float
    validator_trust_recomputed: float
    dividends: float
    validator_emission_share: float
    take_ppm: int
    weights: tuple[Judgement, ...]
    bonds: tuple[tuple[int, int], ...]
    """(miner, bond_u16) this validator holds after the epoch (the ``bonds`` record row)."""


@dataclass(frozen=True)
class Payout:
    """One ledger row that paid the uid (or the owner's cut, when the hotkey owns the subnet)."""

    tx_id: str
    kind: str
    role: str
    amount_rao: int
    coldkey: Account
    hotkey: Account
    moves: str
    """``stake`` (added to stake on (coldkey, hotkey)) or ``balance`` (credited to coldkey)."""


@dataclass(frozen=True)
class Split:
    """How the epoch's emission was divided, and this uid's part of each pool (rao)."""

    scheduled_rao: int
    owner_rao: int
    miners_pool_rao: int
    validators_pool_rao: int
    unissued_rao: int
    fallback: bool
    """No eligible miner earned incentive: the miners' pool went to validators (spec §4.10)."""
    incentive_share_q: int
    dividend_share_q: int
    incentive_rao: int
    dividend_rao: int


@dataclass(frozen=True)
class Check:
    name: str
    holds: bool
    detail: str


@dataclass(frozen=True)
class Explanation:
    """Every step from one neuron's artifact to its reward in one committed epoch."""

    subnet: str
    epoch: int
    block: int
    batch_no: int
    batch_hash: str
    uid: int
    hotkey: Account
    coldkey: Account
    role: str
    stake_rao: int
    submission: Submission
    miner: MinerSide
    validator: ValidatorSide | None
    split: Split
    payouts: tuple[Payout, ...]
    emission_rao: int
    """Σ of the ledger's payout rows for this uid (the owner's cut has no uid)."""
    recorded_emission_rao: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.holds for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able content (floats as floats, amounts as integer rao)."""
        out = asdict(self)
        out["ok"] = self.ok
        out["emission_tao"] = tao_text(self.emission_rao)
        return _json_safe(out)

    def to_markdown(self) -> str:
        """The same content as markdown (a Prefect artifact); long tables are cut at
        ``MARKDOWN_ROWS_MAX`` rows with a line saying how many were left out."""
        return _markdown(self)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# ---- consensus recomputed from the records -------------------------------------------------


@dataclass(frozen=True)
class _Consensus:
    """The epoch's consensus recomputed from its records: per weight entry and per uid."""

    validator: np.ndarray
    miner: np.ndarray
    weight_u16: np.ndarray
    weight: np.ndarray
    masked: np.ndarray
    clipped: np.ndarray
    permitted: np.ndarray
    share: np.ndarray
    consensus: np.ndarray
    rank: np.ndarray
    trust: np.ndarray

    @property
    def incentive(self) -> np.ndarray:
        total = float(self.rank.sum())
        return self.rank / total if total > 0 else np.zeros_like(self.rank)


def _record(stored: StoredEpoch, name: str) -> pa.Table:
    table = stored.records.get(name)
    if table is None:
        why = stored.record_problems.get(name, "not recorded")
        raise ExplainError(
            f"epoch {stored.epoch} of {stored.subnet!r} has no readable {name!r} record ({why})"
        )
    return table


def _column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)


def _last_update(stored: StoredEpoch, validators: np.ndarray) -> np.ndarray:
    """Per uid, the block consensus saw as its last weight update (``tasks.shells.consensus``)."""
    ctx = stored.ctx
    last = np.array([nv.registered_block for nv in ctx.neurons], dtype=np.int64)
    for v in np.unique(validators).tolist():  # bounded by the weights record's validators
        if 0 <= v < ctx.n:
            external = ctx.external_weights.get(v)
            hosted = ctx.is_hosted_validator(v)
            last[v] = external[1] if external is not None and not hosted else ctx.block
    return last


def _stake_shares(stored: StoredEpoch, permitted: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """A_i: each active permitted validator's share of their stake (above the threshold)."""
    uids = _record(stored, "uids")
    stake = _column(uids, "stake_rao", np.int64)
    active = _column(uids, "active", np.bool_)
    threshold = int(stored.ctx.config.yuma.get("stake_threshold_rao", 0))
    counted = np.where((stake < threshold) & ~owner, 0, stake)
    a = np.where(active & permitted, counted, 0)
    total = int(a.sum(dtype=object))  # exact: a sum of rao
    return a / total if total > 0 else np.zeros(len(a))


def _recompute(stored: StoredEpoch) -> _Consensus:
    """Weights normalised and clipped as consensus does (``tasks.consensus.sql``), from records."""
    ctx, n = stored.ctx, stored.ctx.n
    weights = _record(stored, "weights")
    validator = _column(weights, "validator", np.int64)
    miner = _column(weights, "miner", np.int64)
    u16 = _column(weights, "weight_u16", np.int64)
    owner = np.zeros(n, dtype=np.bool_)
    if ctx.owner_uid is not None:
        owner[ctx.owner_uid] = True
    permitted = np.asarray(previous_state(ctx).validator_permit, dtype=np.bool_) | owner
    share = _stake_shares(stored, permitted, owner)
    v = np.where((validator >= 0) & (validator < n), validator, 0)
    m = np.where((miner >= 0) & (miner < n), miner, 0)
    last_update = _last_update(stored, validator)
    registered = np.array([nv.registered_block for nv in ctx.neurons], dtype=np.int64)
    masked = np.select(
        [
            (validator != v) | (miner != m),
            ~permitted[v],
            (v == m) & ~owner[v],
            last_update[v] <= registered[m],
        ],
        [
            "uid outside the epoch's neurons",
            "validator held no permit this epoch",
            "a validator's weight on itself",
            "set before the miner registered",
        ],
        default="",
    )
    kept = masked == ""
    row_sum = np.bincount(v[kept], weights=u16[kept], minlength=n)
    weight = np.zeros(len(u16))
    np.divide(u16, row_sum[v], out=weight, where=kept & (row_sum[v] > 0))
    consensus = _column(_record(stored, "uids"), "consensus", np.float64)
    clipped = np.where(kept, np.minimum(weight, consensus[m]), 0.0)
    return _Consensus(
        validator=validator,
        miner=miner,
        weight_u16=u16,
        weight=weight,
        masked=masked,
        clipped=clipped,
        permitted=permitted,
        share=share,
        consensus=consensus,
        rank=np.bincount(m[kept], weights=share[v][kept] * clipped[kept], minlength=n),
        trust=np.bincount(v[kept], weights=clipped[kept], minlength=n),
    )


# ---- the parts of an explanation -----------------------------------------------------------


def _account(account: str, labels: Mapping[str, str]) -> Account:
    short = account if len(account) <= SHORT_ID_CHARS else f"{account[:SHORT_ID_CHARS]}…"
    return Account(id=account, name=labels.get(account, short))


def _scores_of(stored: StoredEpoch, *, uid: int, by: str) -> dict[int, float]:
    """The ``scores`` record's rows whose ``by`` column ("miner" or "validator") is ``uid``,
    keyed by the other uid."""
    scores = stored.records.get("scores")
    if scores is None:
        return {}
    other = "validator" if by == "miner" else "miner"
    rows = np.flatnonzero(_column(scores, by, np.int64) == uid)
    keys = _column(scores, other, np.int64)[rows]
    values = _column(scores, "score", np.float64)[rows]
    return dict(zip(keys.tolist(), values.tolist(), strict=True))


def _bonds_of(stored: StoredEpoch, *, validator: int) -> dict[int, int]:
    """Miner uid → the u16 bond ``validator`` holds after the epoch (the ``bonds`` record)."""
    bonds = stored.records.get("bonds")
    if bonds is None:
        return {}
    rows = np.flatnonzero(_column(bonds, "validator", np.int64) == validator)
    miners = _column(bonds, "miner", np.int64)[rows]
    values = _column(bonds, "bond_u16", np.int64)[rows]
    return dict(zip(miners.tolist(), values.tolist(), strict=True))


def _judgement(
    stored: StoredEpoch,
    cons: _Consensus,
    *,
    entry: int | None,
    pair: tuple[int, int],
    score: float | None,
    labels: Mapping[str, str],
) -> Judgement:
    """Validator ``pair[0]`` on miner ``pair[1]``: weight entry ``entry`` (None: it set none)."""
    validator, miner = pair
    neuron = stored.ctx.neurons[validator]
    consensus = float(cons.consensus[miner]) if 0 <= miner < len(cons.consensus) else 0.0
    weight = float(cons.weight[entry]) if entry is not None else 0.0
    clipped = float(cons.clipped[entry]) if entry is not None else 0.0
    return Judgement(
        validator=validator,
        miner=miner,
        validator_hotkey=_account(neuron.hotkey, labels),
        validator_stake_rao=neuron.stake_rao,
        permitted=bool(cons.permitted[validator]),
        consensus_stake_share=float(cons.share[validator]),
        score=score,
        weight_u16=int(cons.weight_u16[entry]) if entry is not None else None,
        weight=weight,
        masked=str(cons.masked[entry]) if entry is not None else "no weight set",
        consensus=consensus,
        clipped_weight=clipped,
        clipped_by=weight - clipped,
        rank_contribution=float(cons.share[validator]) * clipped,
    )


def _miner_side(
    stored: StoredEpoch, cons: _Consensus, *, uid: int, labels: Mapping[str, str]
) -> MinerSide:
    scores = _scores_of(stored, uid=uid, by="miner")
    entries = {int(cons.validator[i]): i for i in np.flatnonzero(cons.miner == uid).tolist()}
    judgements = tuple(
        _judgement(
            stored,
            cons,
            entry=entries.get(v),
            pair=(v, uid),
            score=scores.get(v),
            labels=labels,
        )
        for v in sorted(set(scores) | set(entries))
        if 0 <= v < stored.ctx.n
    )
    uids = _record(stored, "uids")
    mean = float(_column(uids, "score", np.float64)[uid])
    return MinerSide(
        mean_score=None if math.isnan(mean) else mean,
        judgements=judgements,
        consensus=float(cons.consensus[uid]),
        rank=float(cons.rank[uid]),
        rank_total=float(cons.rank.sum()),
        incentive=float(_column(uids, "incentive", np.float64)[uid]),
        incentive_recomputed=float(cons.incentive[uid]),
        server_emission_share=float(_column(uids, "server_emission_share", np.float64)[uid]),
    )


def _validator_side(
    stored: StoredEpoch, cons: _Consensus, *, uid: int, labels: Mapping[str, str]
) -> ValidatorSide | None:
    """The validator's part (None for a uid that is no validator and set no weights)."""
    rows = np.flatnonzero(cons.validator == uid).tolist()
    bonds = _bonds_of(stored, validator=uid)
    scores = _scores_of(stored, uid=uid, by="validator")
    if stored.ctx.neurons[uid].role != "validator" and not rows and not bonds:
        return None
    weights = tuple(
        dataclass_replace(
            _judgement(
                stored,
                cons,
                entry=i,
                pair=(uid, int(cons.miner[i])),
                score=scores.get(int(cons.miner[i])),
                labels=labels,
            ),
            bond_u16=bonds.get(int(cons.miner[i])),
        )
        for i in rows
    )
    uids = _record(stored, "uids")

    def value(name: str) -> float:
        return float(_column(uids, name, np.float64)[uid])

    return ValidatorSide(
        permit_next=bool(_column(uids, "permit", np.bool_)[uid]),
        stake_weight=value("stake_weight"),
        consensus_stake_share=float(cons.share[uid]),
        validator_trust=value("validator_trust"),
        validator_trust_recomputed=float(cons.trust[uid]),
        dividends=value("dividends"),
        validator_emission_share=value("validator_emission_share"),
        take_ppm=stored.ctx.neurons[uid].take_ppm,
        weights=weights,
        bonds=tuple(sorted(bonds.items())),
    )


def _payouts(stored: StoredEpoch, *, uid: int, labels: Mapping[str, str]) -> tuple[Payout, ...]:
    """The epoch's ledger rows paying ``uid``, and the owner's cut if its hotkey owns the subnet."""
    hotkey = stored.ctx.neurons[uid].hotkey
    out = []
    for row in stored.rows.select(
        ["tx_id", "kind", "uid", "coldkey", "hotkey", "amount_rao"]
    ).to_pylist():
        kind = str(row["kind"])
        ours = row["uid"] == uid and kind in STAKE_MOVES
        owners = kind == Kind.EMISSION_OWNER and row["hotkey"] == hotkey
        if not (ours or owners):
            continue
        out.append(
            Payout(
                tx_id=str(row["tx_id"]),
                kind=kind,
                role=PAYOUT_ROLES[kind],
                amount_rao=int(row["amount_rao"]),
                coldkey=_account(str(row["coldkey"]), labels),
                hotkey=_account(str(row["hotkey"]), labels),
                moves="stake" if kind in STAKE_MOVES else "balance",
            )
        )
    return tuple(out)


def _split(stored: StoredEpoch, plan: EpochPlan, shares: EpochShares, *, uid: int) -> Split:
    split_ppm = stored.ctx.config.split_ppm()
    pools = split_subnet_emission(
        plan.scheduled_rao,
        owner_ppm=split_ppm["owner"],
        miners_ppm=split_ppm["miners"],
        validators_ppm=split_ppm["validators"],
    )
    payouts = plan.payouts
    fallback = sum(payouts.incentive_rao) == 0
    dividend_q = shares.validator_share_q if fallback else shares.dividends_q
    return Split(
        scheduled_rao=plan.scheduled_rao,
        owner_rao=payouts.owner_rao,
        miners_pool_rao=pools.miners_rao,
        validators_pool_rao=pools.validators_rao,
        unissued_rao=payouts.unissued_rao,
        fallback=fallback,
        incentive_share_q=shares.incentive_q[uid] if uid < len(shares.incentive_q) else 0,
        dividend_share_q=dividend_q[uid] if uid < len(dividend_q) else 0,
        incentive_rao=payouts.incentive_rao[uid] if uid < len(payouts.incentive_rao) else 0,
        dividend_rao=payouts.dividends_rao[uid] if uid < len(payouts.dividends_rao) else 0,
    )


def _submission(
    stored: StoredEpoch, history: tuple[SubmissionCommit, ...], *, uid: int
) -> Submission:
    """The commit the epoch evaluated for ``uid`` (or the newest one it could not yet take)."""
    ctx = stored.ctx
    neuron = ctx.neurons[uid]
    uids = _record(stored, "uids")
    digest = str(uids.column("artifact_digest")[uid].as_py())
    rejection = str(uids.column("error")[uid].as_py())
    delay = SubmissionPolicy.from_config(ctx.config).evaluation_delay_blocks
    commit = (
        evaluated_commit(history, epoch_block=ctx.block, delay_blocks=delay, digest=digest)
        if digest
        else None
    )
    if commit is None and not digest:  # nothing evaluated: the newest commit made before it
        before = [c for c in history if c.block <= ctx.block]
        commit = before[-1] if before else None
    block = commit.block if commit is not None else neuron.artifact_block
    return Submission(
        digest=digest,
        commit_tx_id=commit.tx_id if commit is not None else None,
        commit_block=block,
        uri=commit.uri if commit is not None else neuron.artifact_uri,
        delay_blocks=delay,
        epoch_block=ctx.block,
        eligible_from_block=None if block is None else block + delay,
        eligible=block is not None and block + delay <= ctx.block,
        rejection=rejection,
    )


# ---- checks and the whole explanation ------------------------------------------------------


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)


def _checks(
    stored: StoredEpoch,
    plan: EpochPlan,
    *,
    uid: int,
    parts: tuple[MinerSide, ValidatorSide | None, tuple[Payout, ...], int],
) -> tuple[Check, ...]:
    miner, validator, payouts, recorded_rao = parts
    paid_rao = sum(p.amount_rao for p in payouts if p.kind in STAKE_MOVES)
    planned_rao = sum(e.amount_rao for e in plan.entries if e.uid == uid and e.kind in STAKE_MOVES)
    checks = [
        Check(
            "emission rows = uids.emission_rao",
            paid_rao == recorded_rao,
            f"ledger rows {paid_rao} rao, uids record {recorded_rao} rao",
        ),
        Check(
            "emission rows = the ledger's plan",
            paid_rao == planned_rao,
            f"ledger rows {paid_rao} rao, plan {planned_rao} rao",
        ),
        Check(
            "incentive = recomputed from weights",
            _close(miner.incentive, miner.incentive_recomputed),
            f"recorded {miner.incentive!r}, recomputed {miner.incentive_recomputed!r}",
        ),
        Check(
            "records as committed",
            not stored.record_problems,
            "; ".join(f"{k}: {v}" for k, v in sorted(stored.record_problems.items())) or "all",
        ),
    ]
    if validator is not None:
        checks.append(
            Check(
                "validator trust = Σ clipped weights",
                _close(validator.validator_trust, validator.validator_trust_recomputed),
                f"recorded {validator.validator_trust!r}, "
                f"recomputed {validator.validator_trust_recomputed!r}",
            )
        )
    return tuple(checks)


def uid_of(stored: StoredEpoch, hotkey: str) -> int:
    """The uid ``hotkey`` held in the epoch (a one-line ``ExplainError`` if none)."""
    for neuron in stored.ctx.neurons:
        if neuron.hotkey == hotkey:
            return neuron.uid
    raise ExplainError(
        f"hotkey {hotkey[:16]}… held no uid on {stored.subnet!r} in epoch {stored.epoch}"
    )


def hotkeys_named(value: str, labels: Mapping[str, str]) -> tuple[str, ...]:
    """The hotkey ids ``value`` may name: an id, ``wallet/hotkey``, or every hotkey of a wallet
    (``labels``: ``taoflow.names.account_labels``); a one-line ``ExplainError`` if none."""
    from taoflow.ledger.keys import is_account_id

    if is_account_id(value):
        return (value,)
    by_label = {name: account for account, name in labels.items()}
    if "/" in value and value in by_label:
        return (by_label[value],)
    hotkeys = sorted(account for account, name in labels.items() if name.startswith(f"{value}/"))
    if not hotkeys:
        raise ExplainError(
            f"{value!r} is neither a hotkey id nor a local wallet (or wallet/hotkey)"
        )
    return tuple(hotkeys)


def choose_hotkey(
    state: LedgerState, candidates: Sequence[str], *, subnet: str | None, given: str
) -> tuple[str, str]:
    """(subnet, hotkey) to explain: the candidates registered now narrow both down; ``subnet``
    None means the one subnet they are registered on (a one-line ``ExplainError`` otherwise)."""
    registered = [
        (name, hotkey)
        for name in sorted(state.subnets)
        for hotkey in candidates
        if (subnet is None or name == subnet)
        and state.uid_of(subnet=name, hotkey=hotkey) is not None
    ]
    if subnet is None:
        subnets = sorted({name for name, _ in registered})
        if len(subnets) != 1:
            where = f"on subnets {', '.join(subnets)}" if subnets else "on no subnet now"
            raise ExplainError(f"{given!r} is registered {where}: pass --subnet")
        subnet = subnets[0]
    hotkeys = sorted({hotkey for _, hotkey in registered}) or list(candidates)
    if len(hotkeys) != 1:
        raise ExplainError(
            f"wallet {given!r} has {len(hotkeys)} hotkeys on {subnet!r}: name one as wallet/hotkey"
        )
    return subnet, hotkeys[0]


def explain(
    ledger: Ledger,
    *,
    subnet: str,
    hotkey: str,
    epoch: int,
    labels: Mapping[str, str] | None = None,
) -> Explanation:
    """Every step from ``hotkey``'s artifact to its reward in ``subnet``'s committed ``epoch``."""
    names = labels or {}
    batch_no = ledger.batch_of_epoch(subnet, epoch)
    # the state the epoch entry was applied to, shared with the stored epoch's walk
    state = ledger.state_as_of(batch_no - 1) if batch_no else None
    stored = stored_epoch(ledger, subnet=subnet, epoch=epoch, state_before=state)
    if state is None:
        state = ledger.state_as_of(stored.batch_no - 1)
    if _record(stored, "uids").num_rows != stored.ctx.n:
        raise ExplainError(
            f"epoch {epoch} of {subnet!r}: its uids record does not hold one row per neuron"
        )
    uid = uid_of(stored, hotkey)
    neuron = stored.ctx.neurons[uid]
    try:
        shares = EpochShares.from_payload(stored.payload)
    except ValueError as exc:
        raise ExplainError(f"epoch {epoch} of {subnet!r}: {exc}") from None
    plan = state.epoch_plan(subnet, shares)
    cons = _recompute(stored)
    miner = _miner_side(stored, cons, uid=uid, labels=names)
    validator = _validator_side(stored, cons, uid=uid, labels=names)
    payouts = _payouts(stored, uid=uid, labels=names)
    recorded = int(_column(_record(stored, "uids"), "emission_rao", np.int64)[uid])
    history = state.submission_commits(subnet=subnet, hotkey=hotkey)
    return Explanation(
        subnet=subnet,
        epoch=epoch,
        block=stored.ctx.block,
        batch_no=stored.batch_no,
        batch_hash=stored.batch_hash,
        uid=uid,
        hotkey=_account(hotkey, names),
        coldkey=_account(neuron.coldkey, names),
        role=neuron.role,
        stake_rao=neuron.stake_rao,
        submission=_submission(stored, history, uid=uid),
        miner=miner,
        validator=validator,
        split=_split(stored, plan, shares, uid=uid),
        payouts=payouts,
        emission_rao=sum(p.amount_rao for p in payouts if p.kind in STAKE_MOVES),
        recorded_emission_rao=recorded,
        checks=_checks(stored, plan, uid=uid, parts=(miner, validator, payouts, recorded)),
    )


# ---- markdown (the Prefect artifact) -------------------------------------------------------


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.6f}"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[:MARKDOWN_ROWS_MAX]]
    if len(rows) > MARKDOWN_ROWS_MAX:
        lines.append(f"\n… {len(rows) - MARKDOWN_ROWS_MAX} more rows in the JSON output")
    return [*lines, ""]


def _markdown_submission(x: Explanation) -> list[str]:
    s = x.submission
    if s.commit_block is None:
        state = "no submission committed before the epoch"
    elif s.eligible:
        state = f"eligible (block {s.commit_block} + delay {s.delay_blocks} ≤ {s.epoch_block})"
    else:
        state = (
            f"not yet eligible: from block {s.eligible_from_block} (epoch block {s.epoch_block})"
        )
    return [
        "## Submission",
        "",
        f"- commit: `{s.commit_tx_id or '–'}` at block "
        f"{'–' if s.commit_block is None else s.commit_block}",
        f"- evaluated digest: `{s.digest or '–'}`, uri: `{s.uri or '–'}`",
        f"- eligibility: {state}",
        f"- rejection: {s.rejection or 'none'}",
        "",
    ]


def _markdown_miner(x: Explanation) -> list[str]:
    m = x.miner
    rows = [
        (
            f"{j.validator} {j.validator_hotkey.name}",
            tao_text(j.validator_stake_rao),
            "yes" if j.permitted else "no",
            _f(j.consensus_stake_share),
            _f(j.score),
            "–" if j.weight_u16 is None else str(j.weight_u16),
            _f(j.weight),
            _f(j.clipped_weight),
            _f(j.clipped_by),
            j.masked or "counted",
        )
        for j in m.judgements
    ]
    header = ("validator", "stake τ", "permit", "stake share A", "score", "weight u16")
    return [
        "## Scores, weights and consensus (as a miner)",
        "",
        f"Mean score {_f(m.mean_score)}; consensus (κ stake-weighted median) {_f(m.consensus)}; "
        f"rank Σ A·clipped = {_f(m.rank)} of {_f(m.rank_total)} → incentive {_f(m.incentive)} "
        f"(recomputed {_f(m.incentive_recomputed)}); server emission share "
        f"{_f(m.server_emission_share)}.",
        "",
        *(
            _table((*header, "weight", "clipped", "clipped by", "entry"), rows)
            if rows
            else ["No validator scored it or set a weight on it.", ""]
        ),
    ]


def _markdown_validator(x: Explanation) -> list[str]:
    v = x.validator
    if v is None:
        return []
    rows = [
        (
            str(j.miner),
            _f(j.score),
            "–" if j.weight_u16 is None else str(j.weight_u16),
            _f(j.weight),
            _f(j.consensus),
            _f(j.clipped_weight),
            _f(j.clipped_by),
            "–" if j.bond_u16 is None else str(j.bond_u16),
        )
        for j in v.weights
    ]
    header = ("miner", "score", "weight u16", "weight", "consensus", "clipped", "clipped by")
    return [
        "## As a validator",
        "",
        f"Stake weight {_f(v.stake_weight)}, consensus stake share {_f(v.consensus_stake_share)}; "
        f"validator trust Σ clipped = {_f(v.validator_trust)} (recomputed "
        f"{_f(v.validator_trust_recomputed)}); dividends {_f(v.dividends)}, validator emission "
        f"share {_f(v.validator_emission_share)}; take {v.take_ppm / 10_000:g} %; permit for the "
        f"next epoch: {'yes' if v.permit_next else 'no'}; bonds held: {len(v.bonds)}.",
        "",
        *_table((*header, "bond u16"), rows),
    ]


def _markdown_emission(x: Explanation) -> list[str]:
    s = x.split
    pool = (
        "validators' pool (+ the miners' pool: no miner earned incentive)"
        if s.fallback
        else ("validators' pool")
    )
    rows = [
        (
            f"`{p.tx_id}`",
            p.role,
            tao_text(p.amount_rao),
            str(p.amount_rao),
            f"stake of {p.coldkey.name} on {p.hotkey.name}"
            if p.moves == "stake"
            else f"balance of {p.coldkey.name}",
        )
        for p in x.payouts
    ]
    return [
        "## Emission",
        "",
        f"- epoch emission {tao_text(s.scheduled_rao)} τ: owner {tao_text(s.owner_rao)} τ, "
        f"miners' pool {tao_text(s.miners_pool_rao)} τ, validators' pool "
        f"{tao_text(s.validators_pool_rao)} τ, unissued {tao_text(s.unissued_rao)} τ",
        f"- incentive share {s.incentive_share_q}/{SHARE_QUANTUM} of the miners' pool → "
        f"{tao_text(s.incentive_rao)} τ",
        f"- dividend share {s.dividend_share_q}/{SHARE_QUANTUM} of the {pool} → "
        f"{tao_text(s.dividend_rao)} τ",
        f"- paid to uid {x.uid}: **{tao_text(x.emission_rao)} τ** ({x.emission_rao} rao; "
        f"uids record {x.recorded_emission_rao} rao)",
        "",
        *(
            _table(("ledger row", "role", "τ", "rao", "moved to"), rows)
            if rows
            else ["No ledger row paid it in this epoch.", ""]
        ),
    ]


def _markdown(x: Explanation) -> str:
    head = [
        f"# {x.hotkey.name} (uid {x.uid}) · {x.subnet} · epoch {x.epoch}",
        "",
        f"Block {x.block}, ledger batch {x.batch_no} (`{x.batch_hash[:16]}…`); role {x.role}; "
        f"coldkey {x.coldkey.name}; stake {tao_text(x.stake_rao)} τ at the epoch's start.",
        "",
    ]
    checks = ["## Checks", ""] + [
        f"- {'**holds**' if c.holds else '**FAILS**'} · {c.name}: {c.detail}" for c in x.checks
    ]
    body = [
        *head,
        *_markdown_submission(x),
        *_markdown_miner(x),
        *_markdown_validator(x),
        *_markdown_emission(x),
        *checks,
    ]
    return "\n".join(body) + "\n"
