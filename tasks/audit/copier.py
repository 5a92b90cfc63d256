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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from taoflow.tasks.consensus.params import U16_MAX, YumaParams
from taoflow.tasks.consensus.sql import run_epoch
from taoflow.tasks.consensus.types import WEIGHTS_SCHEMA, EpochInputs, EpochState

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


if __name__ == "__main__":  # pragma: no cover - a script line for people
    for line in economics_lines(copier_economics()):
        print(line)
