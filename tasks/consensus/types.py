"""Plain data carried in and out of one Yuma epoch (shared/yuma-spec.md §3, §4.10).

Invariants
----------
* n (the number of UIDs) is ``len(EpochInputs.stake_rao)`` and every per-uid vector has length n;
  uid i is the index i.
* Sparse matrices are Arrow tables with int32 ``validator`` / ``miner`` uid columns and at most one
  row per (validator, miner) pair. Weight rows may carry explicit zeros; weight entries with
  ``miner >= n`` are legal input and are dropped by the epoch (spec §4.5.1).
* All stored integers keep the chain's units: stake in rao, blocks as block numbers, weights and
  bonds as raw u16 integers (0..65535).
* ``EpochInputs.commit_block`` (optional) is, per uid, the block of its smallest *unexpired*
  weight commit, or :data:`NO_COMMIT_BLOCK` when it has none (the chain's ``u64::MAX``). ``None``
  means no uid has an unexpired commit. It is only read when commit-reveal is enabled
  (``YumaParams.commit_reveal``, spec §4.5.5).
* Every dataclass is frozen and its numpy arrays are read-only copies, so an epoch can never mutate
  its caller's data. Validation raises ``ValueError`` / ``TypeError`` with the reason; nothing here
  uses ``assert``.
* This module holds data and its validation only; the epoch arithmetic lives in ``sql.py``
  (production) and, independently, in ``reference.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taoflow.tasks.consensus.params import U16_MAX

WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)
BONDS_U16_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("bond_u16", pa.int32())]
)
BONDS_FLOAT_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("bond", pa.float64())]
)

NO_COMMIT_BLOCK: int = int(np.iinfo(np.int64).max)
"""``commit_block`` sentinel: the uid has no unexpired commit (never masks anything, §4.5.5)."""


def _frozen_int64_vector(name: str, values: object, *, length: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} must have length n={length}, got {array.shape[0]}")
    if array.size and int(array.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(array.min())}")
    unsigned = array.size and np.issubdtype(array.dtype, np.unsignedinteger)
    if unsigned and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} exceeds the int64 range")
    frozen = array.astype(np.int64, copy=True)
    frozen.flags.writeable = False
    return frozen


def _frozen_bool_vector(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and array.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array, got dtype {array.dtype}")
    frozen = array.astype(np.bool_, copy=True)
    frozen.flags.writeable = False
    return frozen


def _frozen_float_vector(name: str, values: object, *, length: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {array.shape}")
    frozen = array.copy()
    frozen.flags.writeable = False
    return frozen


def _require_plain_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _sparse_u16_table(
    name: str, table: pa.Table, *, schema: pa.Schema, value_column: str
) -> pa.Table:
    """Check a sparse (validator, miner, value_u16) table and cast it to ``schema``."""
    if not isinstance(table, pa.Table):
        raise TypeError(f"{name} must be a pyarrow.Table, got {type(table).__name__}")
    missing = [field.name for field in schema if field.name not in table.column_names]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not pa.types.is_integer(column.type):
            raise TypeError(f"{name}.{field.name} must be an integer column, got {column.type}")
        if column.null_count:
            raise ValueError(f"{name}.{field.name} must not contain nulls")
        if len(column):
            low, high = pc.min_max(column).values()
            bound = U16_MAX if field.name == value_column else np.iinfo(np.int32).max
            if low.as_py() < 0 or high.as_py() > bound:
                raise ValueError(
                    f"{name}.{field.name} must be in [0, {bound}], got [{low}, {high}]"
                )
        columns.append(column.cast(field.type))
    result = pa.Table.from_arrays(columns, schema=schema)
    if _has_duplicate_pairs(result):
        raise ValueError(f"{name} has duplicate (validator, miner) entries")
    return result


def _has_duplicate_pairs(table: pa.Table) -> bool:
    """Whether two rows share (validator, miner).

    O(N) for tables sorted by (validator, miner), as the epoch returns them: with both uids in
    [0, 2^31), key = validator·2^32 + miner is an injective int64 that orders like the pair, so
    keys strictly increasing along the rows means no pair repeats. Only otherwise (unsorted input,
    or a duplicate) is the pyarrow hash group_by run, which decides.
    """
    if table.num_rows < 2:
        return False
    validator = table.column("validator").to_numpy().astype(np.int64)
    miner = table.column("miner").to_numpy().astype(np.int64)
    key = (validator << 32) | miner
    if bool(np.all(key[1:] > key[:-1])):
        return False
    counts = table.group_by(["validator", "miner"]).aggregate([([], "count_all")])
    return bool(pc.max(counts.column("count_all")).as_py() > 1)


def _max_uid(table: pa.Table, column: str) -> int:
    if table.num_rows == 0:
        return -1
    return int(pc.max(table.column(column)).as_py())


@dataclass(frozen=True)
class EpochInputs:
    """Everything one epoch reads from chain storage besides hyper-parameters and bond state.

    ``commit_block[i]`` is the block of uid i's smallest unexpired weight commit, or
    :data:`NO_COMMIT_BLOCK` if it has none; ``None`` (the default) means nobody has one. Under
    commit-reveal the epoch drops weight (i, j) when ``commit_block[i] < registered_block[j]``.
    """

    stake_rao: np.ndarray
    weights: pa.Table
    last_update_block: np.ndarray
    registered_block: np.ndarray
    current_block: int
    owner_uid: int | None
    last_step_block: int
    tempo_blocks: int
    commit_block: np.ndarray | None = None

    def __post_init__(self) -> None:
        stake_rao = _frozen_int64_vector("stake_rao", self.stake_rao, length=None)
        n_uids = stake_rao.shape[0]
        if n_uids < 1:
            raise ValueError("an epoch needs at least one uid (stake_rao is empty)")
        object.__setattr__(self, "stake_rao", stake_rao)
        for name in ("last_update_block", "registered_block"):
            vector = _frozen_int64_vector(name, getattr(self, name), length=n_uids)
            object.__setattr__(self, name, vector)
        if self.commit_block is not None:
            commit_block = _frozen_int64_vector("commit_block", self.commit_block, length=n_uids)
            object.__setattr__(self, "commit_block", commit_block)
        weights = _sparse_u16_table(
            "weights", self.weights, schema=WEIGHTS_SCHEMA, value_column="weight_u16"
        )
        if _max_uid(weights, "validator") >= n_uids:
            raise ValueError(
                f"weights.validator must be < n={n_uids}, got {_max_uid(weights, 'validator')}"
            )
        object.__setattr__(self, "weights", weights)
        current_block = _require_plain_int("current_block", self.current_block, minimum=0)
        object.__setattr__(self, "current_block", current_block)
        last_step = _require_plain_int("last_step_block", self.last_step_block, minimum=0)
        if last_step > current_block:
            raise ValueError(
                f"last_step_block ({last_step}) must be <= current_block ({current_block})"
            )
        object.__setattr__(self, "last_step_block", last_step)
        # The chain allows tempo 0 (no scheduled epochs; last_tempo = current_block, §4.9).
        tempo = _require_plain_int("tempo_blocks", self.tempo_blocks, minimum=0)
        object.__setattr__(self, "tempo_blocks", tempo)
        if self.owner_uid is not None:
            owner = _require_plain_int("owner_uid", self.owner_uid, minimum=0)
            if owner >= n_uids:
                raise ValueError(f"owner_uid must be < n={n_uids} or None, got {owner}")
            object.__setattr__(self, "owner_uid", owner)

    @property
    def n_uids(self) -> int:
        """Number of UIDs, n."""
        return int(self.stake_rao.shape[0])

    def commit_blocks(self) -> np.ndarray:
        """``commit_block`` with ``None`` expanded to :data:`NO_COMMIT_BLOCK` for every uid."""
        if self.commit_block is None:
            return np.full(self.n_uids, NO_COMMIT_BLOCK, dtype=np.int64)
        return self.commit_block


@dataclass(frozen=True)
class EpochState:
    """What one epoch hands to the next: stored u16 bonds and the validator permits it set."""

    bonds: pa.Table
    validator_permit: np.ndarray

    def __post_init__(self) -> None:
        bonds = _sparse_u16_table(
            "bonds", self.bonds, schema=BONDS_U16_SCHEMA, value_column="bond_u16"
        )
        object.__setattr__(self, "bonds", bonds)
        permit = _frozen_bool_vector("validator_permit", self.validator_permit)
        object.__setattr__(self, "validator_permit", permit)

    @classmethod
    def empty(cls, n_uids: int) -> EpochState:
        """State before the first epoch: no bonds, nobody permitted."""
        count = _require_plain_int("n_uids", n_uids, minimum=0)
        return cls(
            bonds=BONDS_U16_SCHEMA.empty_table(),
            validator_permit=np.zeros(count, dtype=np.bool_),
        )

    def for_uids(self, n_uids: int) -> EpochState:
        """This state for an epoch over ``n_uids`` uids.

        Uids appended since the last epoch get no permit (padding with False). A state that refers
        to uids beyond ``n_uids`` is inconsistent with the inputs and raises ``ValueError``.
        """
        previous = self.validator_permit.shape[0]
        if previous > n_uids:
            raise ValueError(
                f"state has permits for {previous} uids but the epoch has only n={n_uids}"
            )
        for column in ("validator", "miner"):
            if _max_uid(self.bonds, column) >= n_uids:
                raise ValueError(f"state bonds refer to {column} uid >= n={n_uids}")
        if previous == n_uids:
            return self
        padded = np.zeros(n_uids, dtype=np.bool_)
        padded[:previous] = self.validator_permit
        return EpochState(bonds=self.bonds, validator_permit=padded)


_VECTOR_FIELDS = (
    "stake_weight",
    "active_stake",
    "active",
    "validator_permit",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "server_emission_share",
    "validator_emission_share",
)
_BOOL_FIELDS = frozenset({"active", "validator_permit"})


@dataclass(frozen=True)
class EpochOutputs:
    """Per-uid results of one epoch (float64 unless noted) plus the new float bonds.

    ``server_emission_share`` and ``validator_emission_share`` are the fractions of the epoch's
    emission each uid receives as a miner / as a validator; together they sum to 1 whenever anything
    is emitted (spec §4.10, including the all-zero-incentive fallback to stake). ``active_stake``
    is A of spec §4.4: the stake weight of active, permitted validators, normalised (all 0 when
    none has stake).
    """

    stake_weight: np.ndarray
    active_stake: np.ndarray
    active: np.ndarray
    validator_permit: np.ndarray
    validator_trust: np.ndarray
    consensus: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    server_emission_share: np.ndarray
    validator_emission_share: np.ndarray
    bonds: pa.Table

    def __post_init__(self) -> None:
        n_uids = np.asarray(self.stake_weight).shape[0]
        for name in _VECTOR_FIELDS:
            value = getattr(self, name)
            if name in _BOOL_FIELDS:
                vector = _frozen_bool_vector(name, value)
                if vector.shape != (n_uids,):
                    raise ValueError(f"{name} must have shape ({n_uids},), got {vector.shape}")
            else:
                vector = _frozen_float_vector(name, value, length=n_uids)
            object.__setattr__(self, name, vector)
        if not isinstance(self.bonds, pa.Table):
            raise TypeError(f"bonds must be a pyarrow.Table, got {type(self.bonds).__name__}")
        if self.bonds.schema != BONDS_FLOAT_SCHEMA:
            raise ValueError(
                f"bonds must have schema {BONDS_FLOAT_SCHEMA}, got {self.bonds.schema}"
            )

    @property
    def n_uids(self) -> int:
        """Number of UIDs, n."""
        return int(self.stake_weight.shape[0])

    def to_table(self) -> pa.Table:
        """One row per uid: ``uid`` plus every per-uid vector (the metagraph view)."""
        columns: dict[str, np.ndarray] = {"uid": np.arange(self.n_uids, dtype=np.int32)}
        for name in _VECTOR_FIELDS:
            columns[name] = getattr(self, name)
        return pa.table(columns)
