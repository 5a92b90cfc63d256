"""The epoch's PNG plots: valid PNGs, deterministic, small, headless, robust to empty inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from taoflow.tasks.track_plots import (
    emission_by_uid_png,
    row_normalised_weights,
    score_distribution_png,
    weights_vs_consensus_png,
)

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIGHTS_SCHEMA = pa.schema(
    [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
)


def weights(rows: list[tuple[int, int, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"validator": v, "miner": m, "weight_u16": w} for v, m, w in rows], schema=WEIGHTS_SCHEMA
    )


def random_weights(n_validators: int, n_uids: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return weights(
        [
            (v, m, int(rng.integers(0, 65_536)))
            for v in range(n_validators)
            for m in range(n_validators, n_uids)
        ]
    )


def draw_all(directory: Path, n_validators: int, n_uids: int) -> list[Path]:
    rng = np.random.default_rng(1)
    return [
        weights_vs_consensus_png(
            random_weights(n_validators, n_uids),
            list(rng.random(n_uids) / max(n_uids, 1)),
            directory / "weights_vs_consensus.png",
        ),
        emission_by_uid_png(
            list(range(n_uids)), list(rng.random(n_uids)), directory / "emission_by_uid.png"
        ),
        score_distribution_png(
            {uid: float(rng.random()) for uid in range(n_validators, n_uids)},
            directory / "scores" / "score_distribution.png",
        ),
    ]


def test_plots_are_small_deterministic_pngs(tmp_path: Path) -> None:
    first = draw_all(tmp_path / "a", n_validators=3, n_uids=16)
    second = draw_all(tmp_path / "b", n_validators=3, n_uids=16)
    for one, two in zip(first, second, strict=True):
        data = one.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) < 100_000
        assert data == two.read_bytes()


def test_a_large_noisy_heatmap_stays_near_100_kb(tmp_path: Path) -> None:
    path = weights_vs_consensus_png(
        random_weights(64, 256), [1 / 256] * 256, tmp_path / "large.png"
    )
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size < 110_000  # worst case: uniform noise barely compresses


@pytest.mark.parametrize("n_validators, n_uids", [(0, 0), (0, 4), (2, 2)])
def test_empty_inputs_still_give_labelled_pngs(
    tmp_path: Path, n_validators: int, n_uids: int
) -> None:
    for path in draw_all(tmp_path, n_validators, n_uids):
        assert path.read_bytes().startswith(PNG_MAGIC)


def test_rows_are_normalised_and_out_of_range_miners_dropped() -> None:
    table = weights([(5, 1, 100), (5, 2, 300), (5, 9, 1000), (2, 1, 0)])
    validators, dense = row_normalised_weights(table, n_uids=3)
    assert validators == [2, 5]
    np.testing.assert_allclose(dense, [[0.0, 0.0, 0.0], [0.0, 0.25, 0.75]])


def test_mismatched_inputs_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 uids but 1 emission"):
        emission_by_uid_png([0, 1], [1.0], tmp_path / "x.png")
    with pytest.raises(ValueError, match="weight_u16"):
        weights_vs_consensus_png(
            pa.table({"validator": [0], "miner": [1]}), [0.5], tmp_path / "y.png"
        )


def test_plotting_never_imports_pyplot_or_needs_a_display(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from taoflow.tasks.track_plots import emission_by_uid_png\n"
        f"emission_by_uid_png([0, 1], [1.0, 2.0], Path({str(tmp_path / 'e.png')!r}))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
    env["MPLBACKEND"] = "TkAgg"  # a GUI backend that would fail here if it were ever selected
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=120)
    assert (tmp_path / "e.png").read_bytes().startswith(PNG_MAGIC)
