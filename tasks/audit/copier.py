"""Copier economics: what a validator that copies last epoch's consensus earns, by bond setting.

The scenario (``CopierScenario``), run through the production DuckDB epoch
(``tasks.consensus.sql.run_epoch``, the epoch ``taoflow consensus run`` uses) and fed each
epoch's state exactly as the scenario runner does:

- ``validators`` validators with equal stake, all holding a permit from the start; the last one
  is the copier, the others are honest;
- miners with qualities ``qualities``, rotated by one position every epoch, so the best miner
  moves every epoch;
- an honest validator weights this epoch's qualities, max-upscaled to u16;
- the copier weights LAST epoch's consensus vector, max-upscaled to u16 (in epoch 0 there is no
  consensus yet and it weights like the honest validators);
- every validator sets its weights in the epoch's block (``last_update = current block``).

``CopierEconomics.ratio`` is the copier's total dividends over the run divided by one honest
validator's (all honest validators are indistinguishable). Under the legacy bonds (``yuma3``
off, α = 0.1 EMA of clipped weights) the copier keeps earning bonds on the miners it weighted
last epoch; under Yuma3 with liquid alpha the bonds follow the new best miner within an epoch,
which the copier reaches one epoch late, so it earns markedly less. ``copier_economics`` runs
both settings (and Yuma3 with a fixed α); ``python -m taoflow.tasks.audit.copier`` prints them.

Invariants: pure and deterministic (integer stakes, u16 weights, float64 consensus; no
randomness), so the ratios are exact functions of the scenario; epochs are bounded by
``SCENARIO_EPOCHS_MAX``.

A subnet's own history (``copier_in_history``): every stored epoch ``first..last``
(``history.stored_epochs``) is rerun with ONE hypothetical validator appended as uid n (n = the
epoch's uid count):

- stake = the median stake of the validators the epoch stored with a permit (the lower middle
  value for an even count; ``COPIER_STAKE_RULE``), registered at block 0, permitted by the
  epoch's own top-k stake rule like any validator;
- weights = the PREVIOUS epoch's consensus vector of this same hypothetical run over uids
  0..n−1, max-upscaled to u16; in epoch ``first`` the consensus stored by epoch ``first − 1``
  (no weights when ``first`` is 0); last update = the epoch's block;
- every other input is what the stored epoch's consensus read (``whatif.consensus_inputs``),
  under the subnet's recorded parameters with the what-if ``overrides`` applied;
- bonds are carried forward from the bonds and permits stored by epoch ``first − 1`` (the
  copier's row starts empty) through the run's own bonds; when the uid count grows the copier's
  bond row moves to the new last uid.

The engine is what-if's (NumPy, with DuckDB deciding near a rounding step; what-if's tests hold
it equal to the production DuckDB epoch). ``CopierEpoch.ratio`` is the copier's dividends per
rao of stake over the stake-weighted mean of the honest permitted validators' (Σ dividends /
Σ stake); ``HistoryCopier.ratio`` weights each epoch's rates by its validators' pool (τ earned
per staked τ over the range). ``copier_rao`` is informational: the copier's dividend share of
the validators' pool, floored to the rao; no payout plan is made. The ledger is only read;
ranges are bounded by ``history.EPOCHS_PER_WALK_MAX`` (one forward walk per parameter set).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.emission import split_subnet_emission
from taoflow.ledger.payouts import tao_text
from taoflow.ledger.store import Ledger
from taoflow.tasks.audit.history import StoredEpoch, read_records, stored_epochs
from taoflow.tasks.audit.whatif import WhatIfError, WhatIfParams, _Engine, consensus_inputs
from taoflow.tasks.consensus.params import U16_MAX, YumaParams
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.stage import previous_state, yuma_params
from taoflow.tasks.consensus.types import (
    NO_COMMIT_BLOCK,
    WEIGHTS_SCHEMA,
    EpochInputs,
    EpochOutputs,
    EpochState,
)

SCENARIO_EPOCHS_MAX: Final = 10_000
"""Most epochs one copier scenario may run."""
VALIDATORS_DEFAULT: Final = 7
EPOCHS_DEFAULT: Final = 20
QUALITIES_DEFAULT: Final = (1.0, 0.5, 0.1)
"""Miner qualities of epoch 0; epoch e uses them rotated right by e (the best moves each epoch)."""
TEMPO_BLOCKS: Final = 10
FIRST_BLOCK: Final = 100
STAKE_RAO: Final = 1_000_000_000
"""Each validator's stake (equal stakes: only the weights tell the validators apart)."""

SETTINGS: Final[Mapping[str, YumaParams]] = {
    "legacy bonds (chain default)": YumaParams(),
    "yuma3, fixed alpha": YumaParams(yuma3=True),
    "yuma3 + liquid alpha": YumaParams(yuma3=True, liquid_alpha=True),
}
"""The bond settings ``copier_economics`` compares, by name."""


@dataclass(frozen=True)
class CopierScenario:
    """One copier scenario; checked on construction (``ValueError`` in one line)."""

    params: YumaParams = field(default_factory=YumaParams)
    validators: int = VALIDATORS_DEFAULT
    epochs: int = EPOCHS_DEFAULT
    qualities: tuple[float, ...] = QUALITIES_DEFAULT

    def __post_init__(self) -> None:
        if self.validators < 2:
            raise ValueError("a copier scenario needs at least one honest validator and the copier")
        if not 1 <= self.epochs <= SCENARIO_EPOCHS_MAX:
            raise ValueError(f"epochs must be between 1 and {SCENARIO_EPOCHS_MAX}")
        if len(self.qualities) < 2 or min(self.qualities) < 0 or max(self.qualities) <= 0:
            raise ValueError("qualities need at least two non-negative values, one positive")

    @property
    def copier_uid(self) -> int:
        return self.validators - 1

    @property
    def miner_uids(self) -> range:
        return range(self.validators, self.validators + len(self.qualities))


@dataclass(frozen=True)
class CopierEconomics:
    """Per-epoch dividends of the copier and of one honest validator, and their ratio."""

    scenario: CopierScenario
    copier_dividends: tuple[float, ...]
    honest_dividends: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """Σ copier dividends / Σ honest dividends over the run (0 when the honest earn 0)."""
        honest = math.fsum(self.honest_dividends)
        return math.fsum(self.copier_dividends) / honest if honest > 0 else 0.0


def max_upscaled_u16(values: Sequence[float]) -> list[int]:
    """``values`` scaled so that the largest is 65535, floored to integers (all 0 if none > 0)."""
    top = max(values, default=0.0)
    if top <= 0:
        return [0] * len(values)
    return [math.floor(U16_MAX * value / top) for value in values]


def rotated_qualities(qualities: Sequence[float], *, epoch: int) -> list[float]:
    """Epoch ``epoch``'s miner qualities: ``qualities`` rotated right by ``epoch`` positions."""
    shift = epoch % len(qualities)
    return list(qualities[-shift:]) + list(qualities[:-shift]) if shift else list(qualities)


def _weights_table(rows: Mapping[int, Sequence[int]], miners: range) -> pa.Table:
    entries = [(v, m, w) for v, row in rows.items() for m, w in zip(miners, row, strict=True)]
    return pa.Table.from_pylist(
        [{"validator": v, "miner": m, "weight_u16": w} for v, m, w in entries],
        schema=WEIGHTS_SCHEMA,
    )


def run_copier_scenario(scenario: CopierScenario) -> CopierEconomics:
    """Run ``scenario`` epoch by epoch; the copier reads the previous epoch's consensus."""
    validators, miners = scenario.validators, scenario.miner_uids
    n_uids = validators + len(miners)
    state = EpochState(
        bonds=EpochState.empty(n_uids).bonds,
        validator_permit=np.array([True] * validators + [False] * len(miners)),
    )
    stake = np.array([STAKE_RAO] * validators + [0] * len(miners), dtype=np.int64)
    last_consensus: list[float] | None = None
    copier: list[float] = []
    honest: list[float] = []
    connection = duckdb.connect()
    try:
        for epoch in range(scenario.epochs):  # bounded: CopierScenario checks epochs
            block = FIRST_BLOCK + TEMPO_BLOCKS * epoch
            honest_row = max_upscaled_u16(rotated_qualities(scenario.qualities, epoch=epoch))
            copied_row = honest_row if last_consensus is None else max_upscaled_u16(last_consensus)
            rows = {v: honest_row for v in range(validators - 1)}
            rows[scenario.copier_uid] = copied_row
            inputs = EpochInputs(
                stake_rao=stake,
                weights=_weights_table(rows, miners),
                last_update_block=np.array([block] * validators + [0] * len(miners)),
                registered_block=np.zeros(n_uids, dtype=np.int64),
                current_block=block,
                owner_uid=None,
                last_step_block=block - TEMPO_BLOCKS if epoch else 0,
                tempo_blocks=TEMPO_BLOCKS,
            )
            outputs, state = run_epoch(inputs, scenario.params, state, connection=connection)
            last_consensus = [float(outputs.consensus[m]) for m in miners]
            copier.append(float(outputs.dividends[scenario.copier_uid]))
            honest.append(float(outputs.dividends[0]))
    finally:
        connection.close()
    return CopierEconomics(
        scenario=scenario, copier_dividends=tuple(copier), honest_dividends=tuple(honest)
    )


def copier_economics(
    *, epochs: int = EPOCHS_DEFAULT, validators: int = VALIDATORS_DEFAULT
) -> dict[str, CopierEconomics]:
    """The default scenario under each of ``SETTINGS``, by setting name."""
    return {
        name: run_copier_scenario(
            CopierScenario(params=params, epochs=epochs, validators=validators)
        )
        for name, params in SETTINGS.items()
    }


def economics_lines(results: Mapping[str, CopierEconomics]) -> list[str]:
    """One line per setting: the copier's dividends as a multiple of an honest validator's."""
    return [
        f"{name}: copier earns {result.ratio:.2f}× an honest validator's dividends "
        f"({result.scenario.validators} equal validators, {result.scenario.epochs} epochs)"
        for name, result in results.items()
    ]


# ---- a subnet's own history ------------------------------------------------------------------

COPIER_STAKE_RULE: Final = "the median stake of the epoch's permitted validators"
"""How the hypothetical copier's stake is chosen (said in every report)."""
COPIER_REGISTERED_BLOCK: Final = 0
"""The hypothetical copier registered long ago (no immunity, no registration masking)."""


@dataclass(frozen=True)
class CopierEpoch:
    """One epoch of the hypothetical copier beside the honest permitted validators."""

    epoch: int
    copier_uid: int
    copier_stake_rao: int
    copier_permit: bool
    copier_dividends: float
    """The copier's share of the epoch's dividends."""
    honest_stake_rao: int
    """Σ stake of the other validators with a permit in this run."""
    honest_dividends: float
    """Σ their dividend shares."""
    validators_pool_rao: int
    """The epoch's validators' pool (its schedule split by the run's split)."""

    @property
    def copier_rate(self) -> float:
        """The copier's dividend share per rao of its stake."""
        return self.copier_dividends / self.copier_stake_rao if self.copier_stake_rao else 0.0

    @property
    def honest_rate(self) -> float:
        """Stake-weighted mean dividend share per rao of the honest permitted validators."""
        return self.honest_dividends / self.honest_stake_rao if self.honest_stake_rao else 0.0

    @property
    def ratio(self) -> float | None:
        """copier_rate / honest_rate (None when the honest validators earn nothing)."""
        return self.copier_rate / self.honest_rate if self.honest_rate > 0 else None

    @property
    def copier_rao(self) -> int:
        """The copier's dividend share of the validators' pool, floored (informational)."""
        return math.floor(self.copier_dividends * self.validators_pool_rao)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "copier_rao": self.copier_rao}


@dataclass(frozen=True)
class HistoryCopier:
    """The hypothetical copier over epochs ``first..last`` of ``subnet`` under ``overrides``."""

    subnet: str
    first: int
    last: int
    overrides: WhatIfParams
    epochs: tuple[CopierEpoch, ...]

    @property
    def ratio(self) -> float | None:
        """τ per staked τ of the copier over the honest validators' over the range: each
        epoch's rates weighted by its validators' pool (equally when every pool is 0); None
        when the honest validators earn nothing."""
        pooled = any(e.validators_pool_rao > 0 for e in self.epochs)
        weights = [e.validators_pool_rao if pooled else 1 for e in self.epochs]
        honest = math.fsum(w * e.honest_rate for w, e in zip(weights, self.epochs, strict=True))
        copier = math.fsum(w * e.copier_rate for w, e in zip(weights, self.epochs, strict=True))
        return copier / honest if honest > 0 else None

    @property
    def copier_rao(self) -> int:
        return sum(e.copier_rao for e in self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "first": self.first,
            "last": self.last,
            "overrides": self.overrides.as_params(),
            "stake_rule": COPIER_STAKE_RULE,
            "ratio": self.ratio,
            "copier_rao": self.copier_rao,
            "per_epoch": [e.to_dict() for e in self.epochs],
        }


def median_stake_rao(stored: StoredEpoch) -> int:
    """``COPIER_STAKE_RULE``: the lower middle stake of the uids the epoch stored with a permit
    (of every validator with stake when none has one; one-line ``WhatIfError`` if none)."""
    ctx = stored.ctx
    stake = np.array([n.stake_rao for n in ctx.neurons], dtype=np.int64)
    uids = stored.records.get("uids")
    permit = np.zeros(ctx.n, dtype=np.bool_)
    if uids is not None and uids.num_rows == ctx.n:
        permit = np.asarray(uids.column("permit").to_numpy(zero_copy_only=False), dtype=np.bool_)
    chosen = np.sort(stake[permit] if permit.any() else stake[stake > 0])
    if chosen.size == 0:
        raise WhatIfError(f"epoch {stored.epoch} of {stored.subnet!r} has no staked validator")
    return int(chosen[(chosen.size - 1) // 2])


def _copied_weights(consensus: np.ndarray | None, *, n_uids: int) -> pa.Table:
    """The copier's (uid ``n_uids``) weights: ``consensus`` over uids 0..n−1, max-upscaled to
    u16, zeros left out (no row at all without a consensus)."""
    if consensus is None:
        return WEIGHTS_SCHEMA.empty_table()
    values = np.zeros(n_uids, dtype=np.float64)
    shared = min(n_uids, consensus.shape[0])
    values[:shared] = consensus[:shared]
    row = max_upscaled_u16(values.tolist())
    miners = [uid for uid, weight in enumerate(row) if weight > 0]
    return pa.Table.from_pydict(
        {
            "validator": [n_uids] * len(miners),
            "miner": miners,
            "weight_u16": [row[uid] for uid in miners],
        },
        schema=WEIGHTS_SCHEMA,
    )


def _with_copier(inputs: EpochInputs, *, stake_rao: int, weights: pa.Table) -> EpochInputs:
    """``inputs`` with the copier appended as uid n (updated at the epoch's block)."""

    def append(vector: np.ndarray, value: int) -> np.ndarray:
        return np.append(vector, np.int64(value))

    commit = inputs.commit_block
    return dataclasses.replace(
        inputs,
        stake_rao=append(inputs.stake_rao, stake_rao),
        weights=pa.concat_tables([inputs.weights.cast(WEIGHTS_SCHEMA), weights]),
        last_update_block=append(inputs.last_update_block, inputs.current_block),
        registered_block=append(inputs.registered_block, COPIER_REGISTERED_BLOCK),
        commit_block=None if commit is None else append(commit, NO_COMMIT_BLOCK),
    )


def _state_for(state: EpochState, *, copier_from: int, copier_to: int) -> EpochState:
    """``state`` (copier at uid ``copier_from``) for an epoch whose copier is ``copier_to``:
    the copier's bond row and permit move; bonds held on the old copier uid are dropped."""
    if copier_to == copier_from:
        return state
    if copier_to < copier_from:
        raise WhatIfError(f"the uid count shrank from {copier_from} to {copier_to}")
    bonds = state.bonds.filter(pc.not_equal(state.bonds.column("miner"), copier_from))
    validator = bonds.column("validator").to_numpy()
    moved = np.where(validator == copier_from, copier_to, validator).astype(np.int32)
    bonds = bonds.set_column(0, "validator", pa.array(moved, pa.int32()))
    permit = np.zeros(copier_to + 1, dtype=np.bool_)
    permit[:copier_from] = state.validator_permit[:copier_from]
    permit[copier_to] = state.validator_permit[copier_from]
    order = pc.sort_indices(bonds, sort_keys=[("validator", "ascending"), ("miner", "ascending")])
    return EpochState(bonds=bonds.take(order), validator_permit=permit)


def _copier_epoch(
    stored: StoredEpoch, outputs: EpochOutputs, inputs: EpochInputs, *, pool_rao: int
) -> CopierEpoch:
    copier = inputs.n_uids - 1
    permit = np.asarray(outputs.validator_permit, dtype=np.bool_).copy()
    permit[copier] = False
    dividends = np.asarray(outputs.dividends, dtype=np.float64)
    return CopierEpoch(
        epoch=stored.epoch,
        copier_uid=copier,
        copier_stake_rao=int(inputs.stake_rao[copier]),
        copier_permit=bool(outputs.validator_permit[copier]),
        copier_dividends=float(dividends[copier]),
        honest_stake_rao=int(inputs.stake_rao[permit].sum()),
        honest_dividends=math.fsum(dividends[permit].tolist()),
        validators_pool_rao=pool_rao,
    )


def _stored_consensus(ledger: Ledger, *, subnet: str, epoch: int) -> np.ndarray | None:
    """The consensus vector epoch ``epoch`` stored (None before the first or without one)."""
    if epoch < 0:
        return None
    records, problems = read_records(ledger, subnet=subnet, epoch=epoch)
    uids = records.get("uids")
    if uids is None or "uids" in problems:
        return None
    return np.asarray(uids.column("consensus").to_numpy(), dtype=np.float64)


def copier_in_history(
    ledger: Ledger, *, subnet: str, first: int, last: int, overrides: WhatIfParams
) -> HistoryCopier:
    """Epochs ``first..last`` of ``subnet`` rerun with a hypothetical validator that weights
    the previous epoch's consensus (see the module docstring); read-only. One-line
    ``HistoryError``/``WhatIfError`` for a range or parameters that cannot be used."""
    runner = _Engine(name="numpy", connection=duckdb.connect())
    consensus = _stored_consensus(ledger, subnet=subnet, epoch=first - 1)
    state: EpochState | None = None
    epochs: list[CopierEpoch] = []
    try:
        for stored in stored_epochs(ledger, subnet=subnet, first=first, last=last):
            ctx = stored.ctx
            if state is None:  # what epoch first − 1 stored; the copier's row starts empty
                state = previous_state(ctx).for_uids(ctx.n + 1)
            state = _state_for(
                state, copier_from=state.validator_permit.shape[0] - 1, copier_to=ctx.n
            )
            inputs = _with_copier(
                consensus_inputs(stored),
                stake_rao=median_stake_rao(stored),
                weights=_copied_weights(consensus, n_uids=ctx.n),
            )
            params = overrides.yuma_params(yuma_params(ctx.config))
            outputs, state = runner.run(inputs, params, state)
            split = overrides.split_of(ctx.config)
            pool_rao = split_subnet_emission(
                int(stored.payload.get("scheduled_rao", 0)),
                owner_ppm=split["owner"],
                miners_ppm=split["miners"],
                validators_ppm=split["validators"],
            ).validators_rao
            epochs.append(_copier_epoch(stored, outputs, inputs, pool_rao=pool_rao))
            consensus = np.asarray(outputs.consensus, dtype=np.float64)[: ctx.n]
    finally:
        runner.connection.close()
    return HistoryCopier(
        subnet=subnet, first=first, last=last, overrides=overrides, epochs=tuple(epochs)
    )


@dataclass(frozen=True)
class CopierComparison:
    """The copier under the subnet's stored parameters and, when overrides are given, under
    the what-if's."""

    stored: HistoryCopier
    whatif: HistoryCopier | None = None

    def line(self) -> str:
        """One sentence for people (ratios to two decimals)."""
        stored, first, last = self.stored, self.stored.first, self.stored.last
        head = "a validator copying last epoch's consensus would have earned"
        tail = f"an honest validator's dividends per staked τ over epochs {first}..{last}"
        if self.whatif is None:
            return f"{head} {_times(stored.ratio)} {tail} (the subnet's stored parameters)"
        return (
            f"{head} {_times(self.whatif.ratio)} {tail} (under these parameters; "
            f"{_times(stored.ratio)} with the subnet's stored parameters)"
        )

    def detail(self) -> str:
        """How the copier was set up, and its τ at the validators' pool share."""
        run = self.whatif if self.whatif is not None else self.stored
        return (
            f"(the copier: {COPIER_STAKE_RULE}, bonds starting empty at epoch {run.first}; "
            f"its dividends at the validators' pool share: {tao_text(run.copier_rao)} τ)"
        )

    def metrics(self) -> dict[str, float]:
        """``copier/ratio_stored`` and ``copier/ratio_whatif`` (the stored one again without
        overrides); a ratio that is None is left out."""
        whatif = self.whatif if self.whatif is not None else self.stored
        named = {"copier/ratio_stored": self.stored.ratio, "copier/ratio_whatif": whatif.ratio}
        return {name: value for name, value in named.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line(),
            "detail": self.detail(),
            "stake_rule": COPIER_STAKE_RULE,
            "ratio_stored": self.stored.ratio,
            "ratio_whatif": None if self.whatif is None else self.whatif.ratio,
            "stored": self.stored.to_dict(),
            "whatif": None if self.whatif is None else self.whatif.to_dict(),
        }


def _times(ratio: float | None) -> str:
    return "—× (the honest validators earned no dividends)" if ratio is None else f"{ratio:.2f}×"


def copier_comparison(
    ledger: Ledger, *, subnet: str, first: int, last: int, overrides: WhatIfParams
) -> CopierComparison:
    """``copier_in_history`` with the stored parameters, and with ``overrides`` if any."""
    stored = copier_in_history(
        ledger, subnet=subnet, first=first, last=last, overrides=WhatIfParams()
    )
    if overrides.is_empty:
        return CopierComparison(stored=stored)
    changed = copier_in_history(ledger, subnet=subnet, first=first, last=last, overrides=overrides)
    return CopierComparison(stored=stored, whatif=changed)


if __name__ == "__main__":  # pragma: no cover - a script line for people
    for line in economics_lines(copier_economics()):
        print(line)
