"""Scenario documents for ``taoflow consensus run``: parsing and validation (schema v1 and v2).

The schema is documented in ``tasks/consensus/scenario.md``. ``parse_scenario`` turns a JSON
document into a :class:`Scenario` (frozen, validated epoch inputs, hyper-parameters and state
edits); ``tasks.consensus.scenario`` runs it.

Invariants
----------
* ``parse_scenario`` returns a fully validated :class:`Scenario` or raises
  :class:`InvalidScenario`, one line that starts with the location
  (``epochs[3].state_overrides.bonds_u16[2]: …``); any JSON value gives one of the two.
* A document without ``version`` (or with ``"version": 1``) is v1 and keeps its original
  semantics (lenient about unknown keys, ``last_step_block`` defaulting to the previous epoch's
  block, per-epoch hyper-parameters for that epoch only, commit blocks ignored). ``"version": 2``
  is v2, which names any unknown key; any other version is refused.
* Sizes are checked before per-entry work: at most ``EPOCHS_MAX`` epochs, ``UIDS_MAX`` uids per
  epoch and ``ENTRIES_MAX`` values over the whole document (per-uid values plus sparse entries),
  so a document cannot exhaust memory.
* Uids are never removed (as on chain): an epoch's n is at least the previous epoch's n, and new
  uids start with no permit and no bonds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import numpy as np
import pyarrow as pa

from taoflow.tasks.consensus.params import PPM_ONE, U16_MAX, YumaParams
from taoflow.tasks.consensus.types import (
    BONDS_U16_SCHEMA,
    NO_COMMIT_BLOCK,
    WEIGHTS_SCHEMA,
    EpochInputs,
    EpochState,
)

SCENARIO_V1: Final = 1
SCENARIO_V2: Final = 2
EPOCHS_MAX: Final = 10_000
"""Most epochs in one document."""
UIDS_MAX: Final = 65_536
"""Most uids in one epoch (uids are u16 on chain); also the bound on any uid in a sparse entry."""
ENTRIES_MAX: Final = 10_000_000
"""Most values in one document: per-uid values plus sparse entries, over every epoch."""
INT64_MAX: Final = int(np.iinfo(np.int64).max)
DEFAULT_TEMPO_BLOCKS: Final = 360
SHOWN_CHARS_MAX: Final = 40
"""Longest excerpt of an offending value quoted in an error."""

DOCUMENT_KEYS_V2: Final = frozenset(
    {
        "version",
        "description",
        "epochs",
        "hyperparameters",
        "tempo_blocks",
        "owner_uid",
        "emission_rao",
        "epoch_emission_rao",
        "emission_split_ppm",
        "initial_state",
    }
)
EPOCH_KEYS_V2: Final = frozenset(
    {
        "description",
        "current_block",
        "stake_rao",
        "last_update_block",
        "registered_block",
        "weights",
        "commit_block",
        "last_step_block",
        "tempo_blocks",
        "owner_uid",
        "emission_rao",
        "epoch_emission_rao",
        "hyperparameters",
        "hyperparameters_once",
        "state_overrides",
    }
)
INITIAL_STATE_KEYS: Final = frozenset({"validator_permit", "bonds_u16"})
STATE_OVERRIDE_KEYS: Final = frozenset({"validator_permit", "bonds_u16", "reset_bond_miners"})
SPLIT_KEYS: Final = ("owner", "miners", "validators")


class InvalidScenario(ValueError):
    """The scenario document does not follow the schema; the message says where."""


@dataclass(frozen=True)
class EmissionSplitPpm:
    """Shares of an epoch's emission in parts per million (they add up to 1,000,000)."""

    owner: int = 180_000
    miners: int = 410_000
    validators: int = 410_000

    def as_mapping(self) -> dict[str, int]:
        """The ``split_ppm`` mapping ``compute_payouts`` reads."""
        return {"owner": self.owner, "miners": self.miners, "validators": self.validators}


@dataclass(frozen=True)
class StateOverrides:
    """Edits of the stored state applied just before one epoch runs (v2 ``state_overrides``).

    Order: ``validator_permit`` replaces the permit vector; ``reset_bond_miners`` clears those
    miners' bond columns (the chain's ``do_reset_bonds``); then each ``bonds_u16`` row
    ``(validator, miner, u16)`` sets that entry, a 0 deleting it. Rows are read-only int64.
    """

    validator_permit: np.ndarray | None = None
    bonds_u16: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0, 3), dtype=np.int64)
    )
    reset_bond_miners: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether applying these overrides changes nothing."""
        return (
            self.validator_permit is None
            and self.bonds_u16.shape[0] == 0
            and not self.reset_bond_miners
        )


@dataclass(frozen=True)
class ScenarioEpoch:
    """One epoch of a parsed scenario: validated inputs, the hyper-parameters it runs with, the
    emission amounts, and the state edits applied before it."""

    index: int
    inputs: EpochInputs
    params: YumaParams
    emission_rao: int
    epoch_emission_rao: int | None
    overrides: StateOverrides


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario document (see ``parse_scenario``)."""

    version: int
    split_ppm: EmissionSplitPpm
    initial_state: EpochState
    epochs: tuple[ScenarioEpoch, ...]


class Budget:
    """Counts the values a document holds against ``ENTRIES_MAX``."""

    def __init__(self) -> None:
        self.used = 0

    def take(self, count: int, where: str) -> None:
        self.used += count
        if self.used > ENTRIES_MAX:
            raise InvalidScenario(f"{where}: the document holds more than {ENTRIES_MAX:,} values")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS_MAX else text[: SHOWN_CHARS_MAX - 1] + "…"


def _is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (``bool`` is not one)."""
    return type(value) is int


def _required_int(
    value: object,
    where: str,
    *,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    kind: str = "an integer",
) -> int:
    if not _is_int(value) or not minimum <= value <= maximum:
        raise InvalidScenario(
            f"{where} must be {kind} in [{minimum}, {maximum}], got {_shown(value)}"
        )
    return value


def _optional_int(value: object, where: str, *, maximum: int = INT64_MAX) -> int | None:
    """An integer in [0, maximum], or None for JSON null."""
    if value is None:
        return None
    return _required_int(value, where, maximum=maximum, kind="an integer or null")


def _uint_vector(
    raw: object, where: str, *, length: int | None, budget: Budget, maximum: int = INT64_MAX
) -> np.ndarray:
    """A list of non-negative integers (exactly ``length`` of them, if given) as int64."""
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where} must be a list of integers, got {_shown(raw)}")
    if length is not None and len(raw) != length:
        raise InvalidScenario(f"{where} must have n={length} entries, got {len(raw)}")
    budget.take(len(raw), where)
    for k, value in enumerate(raw):
        if not _is_int(value) or not 0 <= value <= maximum:
            raise InvalidScenario(
                f"{where}[{k}] must be an integer in [0, {maximum}], got {_shown(value)}"
            )
    return np.array(raw, dtype=np.int64)


def _bool_vector(raw: object, where: str, *, length: int, budget: Budget) -> np.ndarray:
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where} must be a list of booleans, got {_shown(raw)}")
    if len(raw) != length:
        raise InvalidScenario(f"{where} must have n={length} entries, got {len(raw)}")
    budget.take(len(raw), where)
    for k, value in enumerate(raw):
        if type(value) is not bool:
            raise InvalidScenario(f"{where}[{k}] must be true or false, got {_shown(value)}")
    vector = np.array(raw, dtype=np.bool_)
    vector.flags.writeable = False
    return vector


def _commit_blocks(raw: object, where: str, *, length: int, budget: Budget) -> np.ndarray:
    """Per-uid commit blocks; null means no unexpired commit (``NO_COMMIT_BLOCK``)."""
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where} must be a list of integers or nulls, got {_shown(raw)}")
    if len(raw) != length:
        raise InvalidScenario(f"{where} must have n={length} entries, got {len(raw)}")
    budget.take(len(raw), where)
    blocks = [
        NO_COMMIT_BLOCK
        if value is None
        else _required_int(value, f"{where}[{k}]", maximum=NO_COMMIT_BLOCK - 1)
        for k, value in enumerate(raw)
    ]
    return np.array(blocks, dtype=np.int64)


def _triples(raw: object, where: str, *, budget: Budget, uid_limit: int) -> np.ndarray:
    """``[[validator, miner, u16], …]`` as an (k, 3) int64 array; uids < ``uid_limit``, no
    repeated (validator, miner) pair."""
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where} must be a list of [validator, miner, u16]")
    budget.take(len(raw), where)
    for k, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 3 and all(map(_is_int, entry))):
            raise InvalidScenario(
                f"{where}[{k}] must be [validator, miner, u16] integers, got {_shown(entry)}"
            )
        validator, miner, value = entry
        if not (0 <= validator < uid_limit and 0 <= miner < uid_limit):
            raise InvalidScenario(
                f"{where}[{k}]: uids must be in [0, {uid_limit}), got {_shown(entry)}"
            )
        if not 0 <= value <= U16_MAX:
            raise InvalidScenario(f"{where}[{k}]: u16 must be in [0, {U16_MAX}], got {value}")
    rows = np.array(raw, dtype=np.int64).reshape(-1, 3)
    duplicate = _first_duplicate_pair(rows)
    if duplicate is not None:
        raise InvalidScenario(
            f"{where}[{duplicate}]: repeats (validator, miner) "
            f"({rows[duplicate, 0]}, {rows[duplicate, 1]})"
        )
    rows.flags.writeable = False
    return rows


def _first_duplicate_pair(rows: np.ndarray) -> int | None:
    """Index of the first row whose (validator, miner) pair occurred in an earlier row."""
    if rows.shape[0] < 2:
        return None
    keys = (rows[:, 0] << 32) | rows[:, 1]
    _, first_index = np.unique(keys, return_index=True)
    if first_index.shape[0] == keys.shape[0]:
        return None
    seen = np.zeros(keys.shape[0], dtype=np.bool_)
    seen[first_index] = True
    return int(np.flatnonzero(~seen)[0])


def _sparse_table(rows: np.ndarray, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(rows[:, column], pa.int32()) for column in range(3)], schema=schema
    )


def _reject_unknown_keys(raw: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise InvalidScenario(f"{where}: unknown key {_shown(unknown[0])}")


def _object(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidScenario(f"{where} must be an object, got {_shown(raw)}")
    return raw


def _params(base: Mapping[str, Any], override: Mapping[str, Any], where: str) -> YumaParams:
    known = {field.name for field in dataclasses.fields(YumaParams)}
    merged = {**base, **override}
    unknown = sorted(str(key) for key in merged if key not in known)
    if unknown:
        raise InvalidScenario(f"{where}: unknown hyper-parameter(s) {unknown}")
    try:
        return YumaParams(**merged)
    except (TypeError, ValueError) as exc:
        raise InvalidScenario(f"{where}: {exc}") from exc


def _split_ppm(raw: object, where: str) -> EmissionSplitPpm:
    mapping = _object(raw, where)
    _reject_unknown_keys(mapping, frozenset(SPLIT_KEYS), where)
    shares = [
        _required_int(mapping.get(key), f"{where}.{key}", maximum=PPM_ONE) for key in SPLIT_KEYS
    ]
    if sum(shares) != PPM_ONE:
        raise InvalidScenario(
            f"{where}: the shares must add up to {PPM_ONE:,}, got {sum(shares):,}"
        )
    return EmissionSplitPpm(*shares)


def _epoch_inputs(where: str, **fields: Any) -> EpochInputs:
    try:
        return EpochInputs(**fields)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidScenario(f"{where}: {exc}") from exc


def _check_growth(n_uids: int, previous_n: int, where: str) -> None:
    if n_uids > UIDS_MAX:
        raise InvalidScenario(f"{where}: n={n_uids} uids exceeds the maximum {UIDS_MAX:,}")
    if n_uids < previous_n:
        raise InvalidScenario(
            f"{where}: n={n_uids} is less than the previous n={previous_n} "
            "(uids are never removed on chain)"
        )


def _check_document(document: object) -> tuple[Mapping[str, Any], int, list[Any]]:
    """The document's schema version and its epoch list, after the checks common to v1 and v2."""
    if not isinstance(document, Mapping):
        raise InvalidScenario("the scenario must be a JSON object")
    version = document.get("version", SCENARIO_V1)
    if not _is_int(version) or version not in (SCENARIO_V1, SCENARIO_V2):
        raise InvalidScenario(
            f"version: unsupported scenario version {_shown(version)} "
            f"(supported: {SCENARIO_V1}, {SCENARIO_V2})"
        )
    epochs = document.get("epochs")
    if not isinstance(epochs, list) or not epochs:
        raise InvalidScenario("'epochs' must be a non-empty list")
    if len(epochs) > EPOCHS_MAX:
        raise InvalidScenario(f"at most {EPOCHS_MAX} epochs")
    return document, version, epochs


def _vector_v1(epoch: Mapping[str, Any], key: str, where: str, *, default: Any = None) -> Any:
    value = epoch.get(key, default)
    if value is None:
        raise InvalidScenario(f"{where}.{key} is required")
    return value


def _weights_v1(raw: object, where: str, budget: Budget) -> pa.Table:
    if not isinstance(raw, list):
        raise InvalidScenario(f"{where}.weights must be a list of [validator, miner, u16]")
    budget.take(len(raw), f"{where}.weights")
    rows = []
    for k, entry in enumerate(raw):
        if not (isinstance(entry, list) and len(entry) == 3):
            raise InvalidScenario(f"{where}.weights[{k}] must be [validator, miner, u16]")
        rows.append({"validator": entry[0], "miner": entry[1], "weight_u16": entry[2]})
    try:
        return pa.Table.from_pylist(rows, schema=WEIGHTS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise InvalidScenario(f"{where}.weights: {exc}") from exc


def _parse_v1(document: Mapping[str, Any], epochs: list[Any], budget: Budget) -> Scenario:
    """v1 exactly as first specified: lenient keys, ``last_step_block`` = previous block."""
    base = _object(document.get("hyperparameters", {}), "hyperparameters")
    split = _split_ppm(
        document.get("emission_split_ppm", EmissionSplitPpm().as_mapping()), "emission_split_ppm"
    )
    last_step_block = 0
    previous_n = 0
    parsed = []
    for index, epoch in enumerate(epochs):
        where = f"epochs[{index}]"
        if not isinstance(epoch, Mapping):
            raise InvalidScenario(f"{where} must be an object")
        params = _params(base, _object(epoch.get("hyperparameters", {}), where), where)
        inputs = _inputs_v1(document, epoch, where, last_step_block, budget)
        _check_growth(inputs.n_uids, previous_n, where)
        previous_n = inputs.n_uids
        last_step_block = inputs.current_block
        try:
            emission_rao = int(epoch.get("emission_rao", document.get("emission_rao", 0)))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidScenario(f"{where}.emission_rao: {exc}") from exc
        _required_int(emission_rao, f"{where}.emission_rao")
        parsed.append(ScenarioEpoch(index, inputs, params, emission_rao, None, StateOverrides()))
    return Scenario(
        version=SCENARIO_V1,
        split_ppm=split,
        initial_state=EpochState.empty(parsed[0].inputs.n_uids),
        epochs=tuple(parsed),
    )


def _inputs_v1(
    document: Mapping[str, Any],
    epoch: Mapping[str, Any],
    where: str,
    last_step_block: int,
    budget: Budget,
) -> EpochInputs:
    stake = _vector_v1(epoch, "stake_rao", where)
    if not isinstance(stake, list):
        raise InvalidScenario(f"{where}.stake_rao must be a list of integers")
    n = len(stake)
    if n > UIDS_MAX:
        raise InvalidScenario(f"{where}: n={n} uids exceeds the maximum {UIDS_MAX:,}")
    budget.take(3 * n, where)
    try:
        return EpochInputs(
            stake_rao=np.asarray(stake, dtype=np.int64),
            weights=_weights_v1(epoch.get("weights", []), where, budget),
            last_update_block=np.asarray(
                _vector_v1(epoch, "last_update_block", where), dtype=np.int64
            ),
            registered_block=np.asarray(epoch.get("registered_block", [0] * n), dtype=np.int64),
            current_block=int(_vector_v1(epoch, "current_block", where)),
            owner_uid=epoch.get("owner_uid", document.get("owner_uid")),
            last_step_block=int(epoch.get("last_step_block", last_step_block)),
            tempo_blocks=int(epoch.get("tempo_blocks", document.get("tempo_blocks", 360))),
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidScenario(f"{where}: {exc}") from exc


def parse_scenario(document: object) -> Scenario:
    """Validate ``document`` (v1 or v2) into a :class:`Scenario`; see scenario.md."""
    mapping, version, epochs = _check_document(document)
    if version == SCENARIO_V2:
        return _parse_v2(mapping, epochs, Budget())
    return _parse_v1(mapping, epochs, Budget())


# ---- v2 ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DocumentV2:
    """Document-level v2 values every epoch falls back on."""

    base_params: Mapping[str, Any]
    tempo_blocks: int
    owner_uid: int | None
    emission_rao: int
    epoch_emission_rao: int | None


def _document_v2(document: Mapping[str, Any]) -> _DocumentV2:
    _reject_unknown_keys(document, DOCUMENT_KEYS_V2, "document")
    return _DocumentV2(
        base_params=_object(document.get("hyperparameters", {}), "hyperparameters"),
        tempo_blocks=_required_int(
            document.get("tempo_blocks", DEFAULT_TEMPO_BLOCKS), "tempo_blocks"
        ),
        owner_uid=_optional_int(document.get("owner_uid"), "owner_uid", maximum=UIDS_MAX - 1),
        emission_rao=_required_int(document.get("emission_rao", 0), "emission_rao"),
        epoch_emission_rao=_optional_int(document.get("epoch_emission_rao"), "epoch_emission_rao"),
    )


def _parse_v2(document: Mapping[str, Any], epochs: list[Any], budget: Budget) -> Scenario:
    defaults = _document_v2(document)
    split = _split_ppm(
        document.get("emission_split_ppm", EmissionSplitPpm().as_mapping()), "emission_split_ppm"
    )
    persistent: dict[str, Any] = dict(defaults.base_params)
    parsed: list[ScenarioEpoch] = []
    for index, raw in enumerate(epochs):
        where = f"epochs[{index}]"
        epoch = _object(raw, where)
        _reject_unknown_keys(epoch, EPOCH_KEYS_V2, where)
        persistent.update(_object(epoch.get("hyperparameters", {}), f"{where}.hyperparameters"))
        once = _object(epoch.get("hyperparameters_once", {}), f"{where}.hyperparameters_once")
        params = _params(persistent, once, where)
        inputs = _inputs_v2(epoch, defaults, where, budget)
        previous_n = parsed[-1].inputs.n_uids if parsed else 0
        _check_growth(inputs.n_uids, previous_n, where)
        overrides = _state_overrides(
            epoch.get("state_overrides", {}), f"{where}.state_overrides", inputs.n_uids, budget
        )
        emission_rao = _required_int(
            epoch.get("emission_rao", defaults.emission_rao), f"{where}.emission_rao"
        )
        epoch_emission_rao = _optional_int(
            epoch.get("epoch_emission_rao", defaults.epoch_emission_rao),
            f"{where}.epoch_emission_rao",
        )
        parsed.append(
            ScenarioEpoch(index, inputs, params, emission_rao, epoch_emission_rao, overrides)
        )
    first_n = parsed[0].inputs.n_uids
    initial = _initial_state(document.get("initial_state", {}), first_n, budget)
    return Scenario(
        version=SCENARIO_V2, split_ppm=split, initial_state=initial, epochs=tuple(parsed)
    )


def _inputs_v2(
    epoch: Mapping[str, Any], defaults: _DocumentV2, where: str, budget: Budget
) -> EpochInputs:
    for key in ("current_block", "stake_rao", "last_update_block"):
        if key not in epoch:
            raise InvalidScenario(f"{where}.{key} is required")
    stake = _uint_vector(epoch["stake_rao"], f"{where}.stake_rao", length=None, budget=budget)
    n = stake.shape[0]
    _check_growth(n, 0, where)
    last_update = _uint_vector(
        epoch["last_update_block"], f"{where}.last_update_block", length=n, budget=budget
    )
    registered = _uint_vector(
        epoch.get("registered_block", [0] * n), f"{where}.registered_block", length=n, budget=budget
    )
    commit_block = None
    if epoch.get("commit_block") is not None:
        commit_block = _commit_blocks(
            epoch["commit_block"], f"{where}.commit_block", length=n, budget=budget
        )
    weights = _triples(
        epoch.get("weights", []), f"{where}.weights", budget=budget, uid_limit=UIDS_MAX
    )
    return _epoch_inputs(
        where,
        stake_rao=stake,
        weights=_sparse_table(weights, WEIGHTS_SCHEMA),
        last_update_block=last_update,
        registered_block=registered,
        current_block=_required_int(epoch["current_block"], f"{where}.current_block"),
        owner_uid=_optional_int(
            epoch.get("owner_uid", defaults.owner_uid), f"{where}.owner_uid", maximum=n - 1
        ),
        last_step_block=_required_int(epoch.get("last_step_block", 0), f"{where}.last_step_block"),
        tempo_blocks=_required_int(
            epoch.get("tempo_blocks", defaults.tempo_blocks), f"{where}.tempo_blocks"
        ),
        commit_block=commit_block,
    )


def _initial_state(raw: object, n_uids: int, budget: Budget) -> EpochState:
    where = "initial_state"
    state = _object(raw, where)
    _reject_unknown_keys(state, INITIAL_STATE_KEYS, where)
    permit = np.zeros(n_uids, dtype=np.bool_)
    if "validator_permit" in state:
        permit = _bool_vector(
            state["validator_permit"], f"{where}.validator_permit", length=n_uids, budget=budget
        )
    rows = _triples(
        state.get("bonds_u16", []), f"{where}.bonds_u16", budget=budget, uid_limit=n_uids
    )
    rows = rows[rows[:, 2] > 0]  # a stored bond of 0 is no entry
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    try:
        return EpochState(
            bonds=_sparse_table(rows[order], BONDS_U16_SCHEMA), validator_permit=permit
        )
    except (TypeError, ValueError) as exc:
        raise InvalidScenario(f"{where}: {exc}") from exc


def _state_overrides(raw: object, where: str, n_uids: int, budget: Budget) -> StateOverrides:
    overrides = _object(raw, where)
    _reject_unknown_keys(overrides, STATE_OVERRIDE_KEYS, where)
    permit = None
    if "validator_permit" in overrides:
        permit = _bool_vector(
            overrides["validator_permit"],
            f"{where}.validator_permit",
            length=n_uids,
            budget=budget,
        )
    bonds = _triples(
        overrides.get("bonds_u16", []), f"{where}.bonds_u16", budget=budget, uid_limit=n_uids
    )
    miners = _uint_vector(
        overrides.get("reset_bond_miners", []),
        f"{where}.reset_bond_miners",
        length=None,
        budget=budget,
        maximum=n_uids - 1,
    )
    if np.unique(miners).shape[0] != miners.shape[0]:
        raise InvalidScenario(f"{where}.reset_bond_miners repeats a uid")
    return StateOverrides(
        validator_permit=permit,
        bonds_u16=bonds,
        reset_bond_miners=tuple(int(miner) for miner in miners),
    )
