"""What-if: a range of stored epochs recomputed under other consensus parameters or split.

``whatif`` walks the committed epochs ``first..last`` of a subnet (``history.stored_epochs``, one
forward pass) and, for each, reruns Yuma consensus on exactly what the epoch's consensus read —
the stored ``weights`` record, the stake and registration blocks of the epoch's context, the
same last-update blocks (``tasks.consensus.stage.epoch_inputs``: a hosted validator updated at
the epoch's block, an external one at its commit block) — under the changed parameters, then
quantises the shares and plans the payouts as the emit stage does (``plan_from_context``, or the
newer state's plan for a re-planned epoch). The baseline is what the ledger stored (the ``uids``
record and the payout rows), never a recomputation.

Invariants:
- Stake is what each epoch had: the what-if's other payouts are not compounded into later
  epochs' stake (a what-if of the rules on the same history of stake and weights).
- Bonds are carried forward: epoch ``first`` starts from the bonds and permits stored by epoch
  ``first − 1``; every later epoch starts from the what-if's own bonds and permits.
- With no overrides, every epoch's per-uid emission and owner cut equal the stored ones
  (``WhatIfReport.reproduces_ledger``); tests hold this on simulated networks.
- Money is conserved in integer rao on both sides of every epoch: paid + unissued = the
  epoch's schedule, and the schedule is the stored one (checked; a violation is an
  ``AssertionError``, a bug). With only consensus parameters changed, the total paid is equal
  both ways unless no validator can take the validators' pool (then the ledger's rule leaves it
  unissued, and the report says so); a changed split moves rao between the owner and the rest.
- Engine ``numpy`` (default) runs ``tasks.consensus.vectorised.numpy_epoch``, whose outputs equal
  DuckDB's to float rounding (≈1e-17), then any epoch with a share within
  ``SHARE_GUARD_QUANTA`` of a rounding half-step, or a bond within ``BOND_GUARD_LSB`` of a u16
  step, is recomputed in DuckDB (``tasks.consensus.sql.run_epoch``), so quantised shares and
  stored bonds are the production engine's. Engine ``duckdb`` runs DuckDB for every epoch (one
  connection per walk).
- ``parse_overrides`` refuses an unknown key, a repeated field, a malformed or out-of-range value
  in one line (``WhatIfError``); the ranges are ``YumaParams``'s and the ledger's split rules.
- Read-only; ranges are bounded by ``history.EPOCHS_PER_WALK_MAX``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.ledger.config import PPM, SPLIT_NAMES, SubnetConfig
from taoflow.ledger.emission import SHARE_QUANTUM
from taoflow.ledger.payouts import EpochPlan, EpochShares, plan_epoch
from taoflow.ledger.schema import Kind
from taoflow.ledger.store import Ledger
from taoflow.tasks.audit.history import HistoryError, StoredEpoch, stored_epochs_ahead
from taoflow.tasks.audit.stats import gini, spread
from taoflow.tasks.consensus.fixed import fixed_step_margin
from taoflow.tasks.consensus.params import (
    PPM_ONE,
    U16_MAX,
    InvalidHyperparameter,
    YumaParams,
)
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.stage import epoch_inputs, previous_state, yuma_params
from taoflow.tasks.consensus.types import EpochInputs, EpochOutputs, EpochState
from taoflow.tasks.consensus.vectorised import numpy_epoch
from taoflow.tasks.emit import plan_from_context
from taoflow.tasks.gather import EpochContext
from taoflow.tasks.records import emission_by_uid

Engine = Literal["numpy", "duckdb"]
ENGINES: Final = ("numpy", "duckdb")
WHATIF_RECORDS: Final = ("weights", "uids")
"""The records a what-if reads (what consensus read, and the stored outputs it compares with)."""
SET_CHARS_MAX: Final = 1_000
"""Longest ``--set`` text accepted."""
SET_ITEMS_MAX: Final = 24
"""Most ``key=value`` items in one ``--set``."""
SHARE_GUARD_QUANTA: Final = 1e-5
"""A share x with |frac(x·SHARE_QUANTUM) − ½| below this many quanta is recomputed in DuckDB
(the engines differ by ≈1e-7 quanta on 256 × 64 subnets)."""
BOND_GUARD_QUANTA: Final = 1e-4
"""A bond whose x·2^32 (plus the slack of ``fixed.py``) is within this many 2^-32 quanta of an
integer is recomputed in DuckDB: the engines differ by ~1e-6 quanta, which could move the stored
u16 only there. (A bond of exactly k/65535 sits min(k, 65535 − k)/65535 quanta away, so only
k < 7 or k > 65528 is recomputed: time, never correctness.)"""
FRACTION_FIELDS: Final[Mapping[str, tuple[str, int]]] = {
    "kappa": ("kappa_u16", U16_MAX),
    "bonds_moving_average": ("bonds_moving_average_ppm", PPM_ONE),
    "bonds_penalty": ("bonds_penalty_u16", U16_MAX),
    "alpha_low": ("alpha_low_u16", U16_MAX),
    "alpha_high": ("alpha_high_u16", U16_MAX),
}
"""Friendly names given as a fraction in [0, 1] → (YumaParams field, its scale)."""
YUMA_FIELDS: Final[Mapping[str, type]] = {
    f.name: bool if f.type in ("bool", bool) else int
    for f in dataclasses.fields(YumaParams)
    if f.name != "immunity_period_blocks"  # pruning only: the epoch never reads it
}
_BOOL_TEXT: Final = {"true": True, "1": True, "yes": True, "on": True}
_BOOL_TEXT_FALSE: Final = {"false": False, "0": False, "no": False, "off": False}
_ITEM = re.compile(r"^\s*([a-z][a-z0-9_]{0,39})\s*=\s*([^=,]{1,64}?)\s*$")
_INT = re.compile(r"^[+-]?\d{1,19}$")


class WhatIfError(ValueError):
    """A what-if request that cannot be run (one line, for the user)."""


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIfParams:
    """The changes a what-if applies: Yuma fields (raw chain units) and the emission split."""

    yuma: tuple[tuple[str, int | bool], ...] = ()
    """(YumaParams field, value), sorted by field."""
    split_ppm: tuple[tuple[str, int], ...] | None = None
    """(owner|miners|validators, ppm) in ``SPLIT_NAMES`` order, or None to keep the subnet's."""

    @property
    def is_empty(self) -> bool:
        return not self.yuma and self.split_ppm is None

    def yuma_params(self, recorded: YumaParams) -> YumaParams:
        """``recorded`` with this what-if's fields replaced (one-line ``WhatIfError`` if the
        combination is invalid, e.g. alpha_low above the subnet's alpha_high)."""
        if not self.yuma:
            return recorded
        try:
            changes: dict[str, Any] = dict(self.yuma)
            return dataclasses.replace(recorded, **changes)
        except InvalidHyperparameter as exc:
            raise WhatIfError(f"--set: {exc}") from None

    def split_of(self, config: SubnetConfig) -> dict[str, int]:
        return dict(self.split_ppm) if self.split_ppm is not None else config.split_ppm()

    def as_params(self) -> dict[str, int | bool | str]:
        """Field → value (the split as ``owner/miners/validators`` ppm), e.g. for MLflow."""
        params: dict[str, int | bool | str] = dict(self.yuma)
        if self.split_ppm is not None:
            params["split_ppm"] = "/".join(str(ppm) for _, ppm in self.split_ppm)
        return params

    def label(self) -> str:
        """``kappa_u16=39321,yuma3=true`` (or ``recorded parameters``)."""
        if self.is_empty:
            return "recorded parameters"
        return ",".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in self.as_params().items()
        )


def _fraction(key: str, text: str, *, scale: int) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise WhatIfError(f"--set {key}: {text!r} is not a number") from None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
        raise WhatIfError(f"--set {key} must be a fraction in [0, 1], got {text}")
    return int((value * scale).to_integral_value())


def _raw(key: str, text: str, kind: type) -> int | bool:
    lowered = text.lower()
    if kind is bool:
        if lowered in _BOOL_TEXT or lowered in _BOOL_TEXT_FALSE:
            return _BOOL_TEXT.get(lowered, False)
        raise WhatIfError(f"--set {key} must be true or false, got {text!r}")
    if not _INT.match(text):
        raise WhatIfError(f"--set {key} must be an integer, got {text!r}")
    return int(text)


def parse_split(text: str) -> tuple[tuple[str, int], ...]:
    """``18/41/41`` (percent) or ``180000/410000/410000`` (ppm) → (name, ppm), checked by the
    ledger's own split rules."""
    parts = text.split("/")
    if len(parts) != len(SPLIT_NAMES):
        raise WhatIfError(f"--set split must be owner/miners/validators, got {text!r}")
    try:
        values = [Decimal(p.strip()) for p in parts]
    except InvalidOperation:
        raise WhatIfError(f"--set split must be three numbers a/b/c, got {text!r}") from None
    if not all(v.is_finite() for v in values):
        raise WhatIfError(f"--set split must be three numbers a/b/c, got {text!r}")
    scale = PPM // 100 if sum(values) == 100 else 1
    ppm = [v * scale for v in values]
    if any(p != p.to_integral_value() for p in ppm):
        raise WhatIfError(f"--set split must be whole ppm (at most 4 decimals of a %): {text!r}")
    payload = {name: int(p) for name, p in zip(SPLIT_NAMES, ppm, strict=True)}
    try:
        config = SubnetConfig.from_payload({"tempo_blocks": 1, "emission_split_ppm": payload})
    except ValueError as exc:
        raise WhatIfError(f"--set split {text!r}: {exc} (percent adding to 100 or ppm)") from None
    return config.emission_split_ppm


def parse_overrides(text: str) -> WhatIfParams:
    """``kappa=0.6,bonds_moving_average=0.8,yuma3=true,liquid_alpha=true,split=18/41/41``."""
    if len(text) > SET_CHARS_MAX:
        raise WhatIfError(f"--set is longer than {SET_CHARS_MAX} characters")
    items = [item for item in text.split(",") if item.strip()]
    if len(items) > SET_ITEMS_MAX:
        raise WhatIfError(f"--set has more than {SET_ITEMS_MAX} items")
    yuma: dict[str, int | bool] = {}
    split: tuple[tuple[str, int], ...] | None = None
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise WhatIfError(f"--set items must be key=value, got {item.strip()[:40]!r}")
        key, value = match.group(1), match.group(2)
        if key == "split":
            if split is not None:
                raise WhatIfError("--set names split twice")
            split = parse_split(value)
            continue
        if key in FRACTION_FIELDS:
            field, scale = FRACTION_FIELDS[key]
            number: int | bool = _fraction(key, value, scale=scale)
        elif key in YUMA_FIELDS:
            field, number = key, _raw(key, value, YUMA_FIELDS[key])
        else:
            known = ", ".join(["split", *FRACTION_FIELDS, *YUMA_FIELDS])
            raise WhatIfError(f"--set: unknown key {key!r} (known: {known})")
        if field in yuma:
            raise WhatIfError(f"--set sets {field} twice")
        yuma[field] = number
    params = WhatIfParams(yuma=tuple(sorted(yuma.items())), split_ppm=split)
    try:  # each field within its own bounds now; combinations are checked per subnet
        alone: dict[str, Any] = {k: v for k, v in yuma.items() if not k.startswith("alpha_")}
        YumaParams(**alone)
    except InvalidHyperparameter as exc:
        raise WhatIfError(f"--set: {exc}") from None
    return params


def overrides_from(
    *,
    kappa: float | None = None,
    bonds_moving_average: float | None = None,
    yuma3: bool | None = None,
    liquid_alpha: bool | None = None,
    split: str | None = None,
) -> WhatIfParams:
    """The overrides given as separate optional values (the flow's parameters)."""
    items = [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in (
            ("kappa", kappa),
            ("bonds_moving_average", bonds_moving_average),
            ("yuma3", yuma3),
            ("liquid_alpha", liquid_alpha),
            ("split", split),
        )
        if value is not None and value != ""
    ]
    return parse_overrides(",".join(items))


# ---- report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochComparison:
    """One epoch, stored (baseline) and recomputed (what-if)."""

    epoch: int
    scheduled_rao: int
    baseline_rao: int
    """Rao the epoch paid (all payout rows, the owner's cut included)."""
    whatif_rao: int
    baseline_owner_rao: int
    whatif_owner_rao: int
    baseline_gini: float
    """Gini of the incentive over the epoch's miners."""
    whatif_gini: float
    baseline_vt_spread: float
    """max − min of validator trust over the validators with a permit."""
    whatif_vt_spread: float
    reproduced: bool
    """The what-if paid every uid and the owner exactly what the ledger stored."""


@dataclass(frozen=True)
class HotkeyDelta:
    """One hotkey's emission over the range, both ways (rao)."""

    hotkey: str
    uid: int
    role: str
    baseline_rao: int
    whatif_rao: int

    @property
    def delta_rao(self) -> int:
        return self.whatif_rao - self.baseline_rao

    @property
    def delta_pct(self) -> float | None:
        """Change in percent of the baseline (None when the baseline is 0)."""
        return 100.0 * self.delta_rao / self.baseline_rao if self.baseline_rao else None


@dataclass(frozen=True)
class WhatIfReport:
    """A what-if over epochs ``first..last`` of ``subnet``."""

    subnet: str
    first: int
    last: int
    overrides: WhatIfParams
    engine: str
    epochs: tuple[EpochComparison, ...]
    hotkeys: tuple[HotkeyDelta, ...]
    """Every hotkey paid on either side, largest |delta| first (then by hotkey)."""
    duckdb_epochs: int
    """Epochs whose consensus ran in DuckDB (all for engine ``duckdb``; the guarded ones else)."""

    def _sum(self, name: str) -> int:
        return sum(int(getattr(e, name)) for e in self.epochs)

    def _mean(self, name: str) -> float:
        return sum(float(getattr(e, name)) for e in self.epochs) / max(1, len(self.epochs))

    @property
    def scheduled_rao(self) -> int:
        return self._sum("scheduled_rao")

    @property
    def baseline_rao(self) -> int:
        return self._sum("baseline_rao")

    @property
    def whatif_rao(self) -> int:
        return self._sum("whatif_rao")

    @property
    def baseline_owner_rao(self) -> int:
        return self._sum("baseline_owner_rao")

    @property
    def whatif_owner_rao(self) -> int:
        return self._sum("whatif_owner_rao")

    @property
    def conserved(self) -> bool:
        """The what-if pays exactly the rao the ledger paid, in total."""
        return self.baseline_rao == self.whatif_rao

    @property
    def reproduces_ledger(self) -> bool:
        return all(e.reproduced for e in self.epochs)

    def summary(self) -> dict[str, Any]:
        """Totals and means (ints in rao), for JSON, MLflow metrics and tables."""
        return {
            "epochs": len(self.epochs),
            "scheduled_rao": self.scheduled_rao,
            "baseline_rao": self.baseline_rao,
            "whatif_rao": self.whatif_rao,
            "baseline_owner_rao": self.baseline_owner_rao,
            "whatif_owner_rao": self.whatif_owner_rao,
            "conserved": self.conserved,
            "reproduces_ledger": self.reproduces_ledger,
            "baseline_gini_mean": self._mean("baseline_gini"),
            "whatif_gini_mean": self._mean("whatif_gini"),
            "baseline_vt_spread_mean": self._mean("baseline_vt_spread"),
            "whatif_vt_spread_mean": self._mean("whatif_vt_spread"),
            "duckdb_epochs": self.duckdb_epochs,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "first": self.first,
            "last": self.last,
            "overrides": self.overrides.as_params(),
            "engine": self.engine,
            **self.summary(),
            "hotkeys": [
                {**dataclasses.asdict(h), "delta_rao": h.delta_rao, "delta_pct": h.delta_pct}
                for h in self.hotkeys
            ],
            "per_epoch": [dataclasses.asdict(e) for e in self.epochs],
        }


# ---- one epoch -------------------------------------------------------------------------------


def _near_rounding(outputs: EpochOutputs, *, yuma3: bool) -> bool:
    """Whether a share or a stored bond lies so near a quantisation step that float rounding
    could move it (then DuckDB decides)."""
    for shares in (outputs.incentive, outputs.dividends, outputs.validator_emission_share):
        scaled = np.minimum(np.asarray(shares, dtype=np.float64), 1.0) * SHARE_QUANTUM
        if np.any(np.abs(scaled - np.floor(scaled) - 0.5) < SHARE_GUARD_QUANTA):
            return True
    bonds = outputs.bonds
    if bonds.num_rows == 0:
        return False
    value = bonds.column("bond").to_numpy()
    if not yuma3:  # legacy bonds are stored max-normalised per miner
        miner = bonds.column("miner").to_numpy()
        column_max = np.zeros(int(miner.max()) + 1)
        np.maximum.at(column_max, miner, value)
        value = value / np.where(column_max[miner] > 0, column_max[miner], 1.0)
    return bool(np.any(fixed_step_margin(value) < BOND_GUARD_QUANTA))


@dataclass
class _Engine:
    """Runs the what-if consensus; counts the epochs DuckDB computed."""

    name: Engine
    connection: duckdb.DuckDBPyConnection
    duckdb_epochs: int = 0

    def run(
        self, inputs: EpochInputs, params: YumaParams, state: EpochState
    ) -> tuple[EpochOutputs, EpochState]:
        if self.name == "numpy":
            outputs, next_state = numpy_epoch(inputs, params, state)
            if not _near_rounding(outputs, yuma3=params.yuma3):
                return outputs, next_state
        self.duckdb_epochs += 1
        return run_epoch(inputs, params, state, connection=self.connection)


def consensus_inputs(stored: StoredEpoch) -> EpochInputs:
    """What the epoch's consensus read: its stored weights, with the epoch's last-update rule
    (hosted validators at the epoch's block, external ones at their commit block)."""
    weights = stored.records.get("weights")
    problem = stored.record_problems.get("weights")
    if weights is None or problem is not None:
        why = problem or "it has no weights record"
        raise WhatIfError(f"epoch {stored.epoch} of {stored.subnet!r}: {why}")
    ctx = stored.ctx
    hosted = {n.uid for n in ctx.neurons if ctx.is_hosted_validator(n.uid)}
    external = {uid: block for uid, (_, block) in ctx.external_weights.items() if uid not in hosted}
    setters: dict[int, dict[int, int]] = {uid: {} for uid in sorted(hosted | set(external))}
    inputs = epoch_inputs(ctx, setters, last_update_block=external)
    return dataclasses.replace(inputs, weights=weights)


def _payout_plan(
    ledger: Ledger, stored: StoredEpoch, shares: EpochShares, split_ppm: Mapping[str, int]
) -> EpochPlan:
    """The plan the emit stage would commit for ``shares`` (with ``split_ppm``)."""
    ctx = stored.ctx
    if not stored.replanned:
        config = dataclasses.replace(ctx.config, emission_split_ppm=tuple(split_ppm.items()))
        return plan_from_context(dataclasses.replace(ctx, config=config), shares)
    state = ledger.state_as_of(stored.batch_no - 1)  # the emit stage re-planned on this state
    info = state.subnets[stored.subnet]
    return plan_epoch(
        scheduled_rao=state.scheduled_emission_rao(stored.subnet),
        shares=shares,
        split_ppm=split_ppm,
        recipients=state.recipients(stored.subnet),
        owner_coldkey=info.owner_coldkey,
        owner_hotkey=info.owner_hotkey,
    )


@dataclass(frozen=True)
class _Side:
    """One side of an epoch: rao per uid, the owner's cut, the total paid and the metrics."""

    uid_rao: np.ndarray
    owner_rao: int
    paid_rao: int
    unissued_rao: int
    gini: float
    vt_spread: float


def _metrics(
    ctx: EpochContext, *, incentive: np.ndarray, trust: np.ndarray, permit: np.ndarray
) -> tuple[float, float]:
    miners = np.fromiter((n.role == "miner" for n in ctx.neurons), dtype=np.bool_, count=ctx.n)
    return gini(incentive[miners]), spread(trust[permit]).max_minus_min


def _baseline(stored: StoredEpoch) -> _Side:
    """The epoch as the ledger stored it (``uids`` record and payout rows)."""
    uids = stored.records.get("uids")
    problem = stored.record_problems.get("uids")
    if uids is None or problem is not None:
        why = problem or "it has no uids record"
        raise WhatIfError(f"epoch {stored.epoch} of {stored.subnet!r}: {why}")
    rows = stored.rows
    kinds = rows.column("kind")
    payouts = rows.filter(pc.not_equal(kinds, Kind.EPOCH.value))
    owner = payouts.filter(pc.equal(payouts.column("kind"), Kind.EMISSION_OWNER.value))
    incentive, trust = (uids.column(c).to_numpy() for c in ("incentive", "validator_trust"))
    permit = np.asarray(uids.column("permit").to_numpy(zero_copy_only=False), dtype=np.bool_)
    gini_value, vt_spread = _metrics(stored.ctx, incentive=incentive, trust=trust, permit=permit)
    return _Side(
        uid_rao=uids.column("emission_rao").to_numpy(),
        owner_rao=int(pc.sum(owner.column("amount_rao")).as_py() or 0),
        paid_rao=int(pc.sum(payouts.column("amount_rao")).as_py() or 0),
        unissued_rao=int(stored.payload.get("unissued_rao", 0)),
        gini=gini_value,
        vt_spread=vt_spread,
    )


def _whatif_side(ctx: EpochContext, outputs: EpochOutputs, plan: EpochPlan) -> _Side:
    gini_value, vt_spread = _metrics(
        ctx,
        incentive=np.asarray(outputs.incentive),
        trust=np.asarray(outputs.validator_trust),
        permit=np.asarray(outputs.validator_permit, dtype=np.bool_),
    )
    return _Side(
        uid_rao=emission_by_uid(plan, uids=ctx.n),
        owner_rao=plan.payouts.owner_rao,
        paid_rao=plan.total_rao,
        unissued_rao=plan.payouts.unissued_rao,
        gini=gini_value,
        vt_spread=vt_spread,
    )


def _check_conserved(stored: StoredEpoch, *, baseline: _Side, whatif: _Side) -> int:
    """The epoch's schedule; both sides pay it exactly (paid + unissued), or AssertionError."""
    scheduled = int(stored.payload.get("scheduled_rao", -1))
    for name, side in (("stored", baseline), ("what-if", whatif)):
        if side.paid_rao + side.unissued_rao != scheduled:
            raise AssertionError(
                f"epoch {stored.epoch}: {name} side pays {side.paid_rao} + unissued "
                f"{side.unissued_rao} rao, not the schedule {scheduled}"
            )
    return scheduled


@dataclass(frozen=True)
class _EpochResult:
    comparison: EpochComparison
    baseline: _Side
    whatif: _Side
    next_state: EpochState


def _rejected_uids(stored: StoredEpoch) -> frozenset[int]:
    """The uids the epoch's evaluation rejected (its payload's ``evaluation.errors``)."""
    errors = (stored.payload.get("evaluation") or {}).get("errors") or {}
    return frozenset(int(uid) for uid in errors)


def compare_epoch(
    ledger: Ledger,
    stored: StoredEpoch,
    *,
    overrides: WhatIfParams,
    state: EpochState,
    engine: _Engine,
) -> _EpochResult:
    """One stored epoch recomputed from ``state`` under ``overrides``, beside what it stored."""
    ctx = stored.ctx
    params = overrides.yuma_params(yuma_params(ctx.config))
    outputs, next_state = engine.run(consensus_inputs(stored), params, state)
    shares = EpochShares.from_consensus(
        hotkeys=[n.hotkey for n in ctx.neurons],
        incentive=outputs.incentive.tolist(),
        dividends=outputs.dividends.tolist(),
        validator_share=outputs.validator_emission_share.tolist(),
        rejected_uids=_rejected_uids(stored),
    )
    plan = _payout_plan(ledger, stored, shares, overrides.split_of(ctx.config))
    baseline, whatif = _baseline(stored), _whatif_side(ctx, outputs, plan)
    scheduled = _check_conserved(stored, baseline=baseline, whatif=whatif)
    comparison = EpochComparison(
        epoch=stored.epoch,
        scheduled_rao=scheduled,
        baseline_rao=baseline.paid_rao,
        whatif_rao=whatif.paid_rao,
        baseline_owner_rao=baseline.owner_rao,
        whatif_owner_rao=whatif.owner_rao,
        baseline_gini=baseline.gini,
        whatif_gini=whatif.gini,
        baseline_vt_spread=baseline.vt_spread,
        whatif_vt_spread=whatif.vt_spread,
        reproduced=baseline.owner_rao == whatif.owner_rao
        and np.array_equal(baseline.uid_rao, whatif.uid_rao),
    )
    return _EpochResult(comparison, baseline, whatif, next_state)


# ---- the walk --------------------------------------------------------------------------------


class _HotkeyTotals:
    """Rao per hotkey over the range, both ways (a uid re-registered to another hotkey starts a
    new hotkey's line)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {}  # hotkey → [uid, role, baseline_rao, whatif_rao]

    def add(self, ctx: EpochContext, *, baseline: np.ndarray, whatif: np.ndarray) -> None:
        for neuron, base_rao, new_rao in zip(
            ctx.neurons, baseline.tolist(), whatif.tolist(), strict=True
        ):
            row = self.rows.setdefault(neuron.hotkey, [neuron.uid, neuron.role, 0, 0])
            row[0], row[1] = neuron.uid, neuron.role
            row[2] += base_rao
            row[3] += new_rao

    def deltas(self) -> tuple[HotkeyDelta, ...]:
        out = [
            HotkeyDelta(hotkey=h, uid=r[0], role=r[1], baseline_rao=r[2], whatif_rao=r[3])
            for h, r in self.rows.items()
            if r[2] or r[3]
        ]
        return tuple(sorted(out, key=lambda d: (-abs(d.delta_rao), d.hotkey)))


def whatif(
    ledger: Ledger,
    *,
    subnet: str,
    first: int,
    last: int,
    overrides: WhatIfParams,
    engine: Engine = "numpy",
    on_epoch: Callable[[EpochComparison], None] | None = None,
) -> WhatIfReport:
    """Epochs ``first..last`` of ``subnet`` recomputed under ``overrides``, bonds carried forward
    (one-line ``HistoryError``/``WhatIfError`` for a range or parameters that cannot be used)."""
    if engine not in ENGINES:
        raise WhatIfError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    runner = _Engine(name=engine, connection=duckdb.connect())
    totals = _HotkeyTotals()
    comparisons: list[EpochComparison] = []
    state: EpochState | None = None
    try:
        walk = stored_epochs_ahead(
            ledger, subnet=subnet, first=first, last=last, records=WHATIF_RECORDS
        )
        for stored in walk:
            if state is None:
                state = previous_state(stored.ctx)  # what epoch first − 1 stored
            result = compare_epoch(ledger, stored, overrides=overrides, state=state, engine=runner)
            state = result.next_state
            comparisons.append(result.comparison)
            totals.add(stored.ctx, baseline=result.baseline.uid_rao, whatif=result.whatif.uid_rao)
            if on_epoch is not None:
                on_epoch(result.comparison)
    finally:
        runner.connection.close()
    return WhatIfReport(
        subnet=subnet,
        first=first,
        last=last,
        overrides=overrides,
        engine=engine,
        epochs=tuple(comparisons),
        hotkeys=totals.deltas(),
        duckdb_epochs=runner.duckdb_epochs,
    )


def delta_table(report: WhatIfReport) -> pa.Table:
    """The per-hotkey deltas as an Arrow table (rao as int64; τ and % as float64 for reading)."""
    rows = report.hotkeys
    return pa.table(
        {
            "hotkey": pa.array([h.hotkey for h in rows], pa.string()),
            "uid": pa.array([h.uid for h in rows], pa.int32()),
            "role": pa.array([h.role for h in rows], pa.string()),
            "baseline_rao": pa.array([h.baseline_rao for h in rows], pa.int64()),
            "whatif_rao": pa.array([h.whatif_rao for h in rows], pa.int64()),
            "delta_rao": pa.array([h.delta_rao for h in rows], pa.int64()),
            "delta_pct": pa.array([h.delta_pct for h in rows], pa.float64()),
        }
    )


__all__ = [
    "ENGINES",
    "EpochComparison",
    "HistoryError",
    "HotkeyDelta",
    "WhatIfError",
    "WhatIfParams",
    "WhatIfReport",
    "compare_epoch",
    "consensus_inputs",
    "delta_table",
    "overrides_from",
    "parse_overrides",
    "parse_split",
    "whatif",
]
