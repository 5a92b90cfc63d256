"""PNG plots of an epoch for its MLflow run: weights vs consensus, emission by uid, scores.

Pure functions: each takes plain data and a path, writes one PNG there and returns the path.

Invariants:

* headless and process-safe: figures are built with matplotlib's object-oriented API
  (``matplotlib.figure.Figure`` rendered by the Agg canvas); ``pyplot`` is never imported, so no
  display is needed, no GUI backend is selected, no global figure registry is touched (safe in
  Prefect's worker threads), and the importing process's backend choice is left alone;
* deterministic: the same inputs give the same bytes on the same matplotlib build (no
  timestamps in the PNG metadata, fixed size and dpi, no randomness);
* small: a fixed ``FIGSIZE_IN`` at ``DPI`` with nearest-neighbour heatmaps and a reduced
  palette keeps a plot of a few hundred uids well under ~100 KB;
* every plot has a title and labelled axes; empty inputs give a labelled, empty plot rather
  than an error.

Fault model: inputs come from our own pipeline (already validated); shapes that disagree raise
``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

FIGSIZE_IN: Final = (6.4, 4.0)
DPI: Final = 100
HEATMAP_COLOURS: Final = 32  # a small palette keeps the PNG compressible
TICKS_MAX: Final = 12
SCORE_BINS: Final = 20
_PNG_METADATA: Final[dict[str, str | None]] = {"Software": None}


def _new_figure(figsize_in: tuple[float, float] = FIGSIZE_IN) -> Figure:
    figure = Figure(figsize=figsize_in, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI, metadata=_PNG_METADATA)
    return path


def row_normalised_weights(weights: pa.Table, *, n_uids: int) -> tuple[list[int], np.ndarray]:
    """Validators (sorted) and their weight rows over uids ``0..n_uids-1``, each summing to 1.

    A validator whose weights are all zero keeps a zero row; weights to uids ``>= n_uids`` are
    dropped (as consensus does).
    """
    for column in ("validator", "miner", "weight_u16"):
        if column not in weights.column_names:
            raise ValueError(f"weights table lacks column {column!r}")
    columns = weights.to_pydict()
    validators = sorted({int(v) for v in columns["validator"]})
    row_of = {v: i for i, v in enumerate(validators)}
    dense = np.zeros((len(validators), n_uids), dtype=np.float64)
    for v, m, w in zip(columns["validator"], columns["miner"], columns["weight_u16"], strict=True):
        if 0 <= int(m) < n_uids:
            dense[row_of[int(v)], int(m)] += float(w)
    sums = dense.sum(axis=1, keepdims=True)
    np.divide(dense, sums, out=dense, where=sums > 0)
    return validators, dense


def weights_vs_consensus_png(weights: pa.Table, consensus: Sequence[float], path: Path) -> Path:
    """Heatmap of row-normalised weights (validators × miner uids) above the consensus row.

    ``weights`` has columns ``validator``, ``miner``, ``weight_u16`` (sparse, u16 values);
    ``consensus`` is the per-uid consensus weight (its length is the number of uids). Both
    panels share one colour scale, so a validator's row can be compared with consensus.
    """
    n_uids = len(consensus)
    validators, dense = row_normalised_weights(weights, n_uids=n_uids)
    consensus_row = np.asarray([float(c) for c in consensus], dtype=np.float64).reshape(1, -1)
    if not validators or n_uids == 0:
        dense = np.zeros((max(len(validators), 1), max(n_uids, 1)), dtype=np.float64)
    if n_uids == 0:
        consensus_row = np.zeros((1, 1), dtype=np.float64)
    vmax = max(1e-12, float(dense.max(initial=0.0)), float(consensus_row.max(initial=0.0)))
    palette = colormaps["viridis"].resampled(HEATMAP_COLOURS)
    figure = _new_figure()
    grid = figure.add_gridspec(
        2, 2, height_ratios=(min(max(len(validators), 2), 5), 1), width_ratios=(30, 1)
    )
    top = figure.add_subplot(grid[0, 0])
    bottom = figure.add_subplot(grid[1, 0], sharex=top)
    colour_axis = figure.add_subplot(grid[:, 1])
    image = top.imshow(
        dense, aspect="auto", interpolation="nearest", cmap=palette, vmin=0.0, vmax=vmax
    )
    top.set_title("Weights (row-normalised) vs consensus")
    top.set_ylabel("validator uid")
    top.yaxis.set_major_locator(MaxNLocator(nbins=TICKS_MAX, integer=True))
    top.yaxis.set_major_formatter(FuncFormatter(_row_labeller(validators)))
    top.tick_params(labelbottom=False)
    bottom.imshow(
        consensus_row, aspect="auto", interpolation="nearest", cmap=palette, vmin=0.0, vmax=vmax
    )
    bottom.set_yticks([0], ["consensus"])
    bottom.set_xlabel("miner uid")
    bottom.xaxis.set_major_locator(MaxNLocator(nbins=TICKS_MAX, integer=True))
    figure.colorbar(image, cax=colour_axis, label="weight share")
    if not validators:
        top.text(
            0.5,
            0.5,
            "no weights set",
            ha="center",
            va="center",
            color="white",
            transform=top.transAxes,
        )
    return _save(figure, path)


def emission_by_uid_png(uids: Sequence[int], emission_tao: Sequence[float], path: Path) -> Path:
    """Bar chart of each uid's emission this epoch (τ)."""
    if len(uids) != len(emission_tao):
        raise ValueError(f"{len(uids)} uids but {len(emission_tao)} emission values")
    figure = _new_figure()
    axes = figure.add_subplot()
    xs = np.asarray([int(u) for u in uids], dtype=np.int64)
    ys = np.asarray([float(e) for e in emission_tao], dtype=np.float64)
    axes.bar(xs, ys, width=0.8, color="tab:blue")
    axes.set_title("Emission by uid")
    axes.set_xlabel("uid")
    axes.set_ylabel("emission (τ)")
    axes.xaxis.set_major_locator(MaxNLocator(nbins=TICKS_MAX, integer=True))
    if not len(xs):
        axes.text(0.5, 0.5, "no uids", ha="center", va="center", transform=axes.transAxes)
    return _save(figure, path)


def score_distribution_png(scores: Mapping[int, float], path: Path) -> Path:
    """Histogram of the miners' mean scores this epoch (scores in [0, 1] for accuracy)."""
    values = np.asarray([float(scores[uid]) for uid in sorted(scores)], dtype=np.float64)
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min(initial=0.0)))
    high = max(1.0, float(finite.max(initial=1.0)))
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.hist(finite, bins=SCORE_BINS, range=(low, high), color="tab:green", edgecolor="white")
    axes.set_title(f"Score distribution ({len(finite)} miners)")
    axes.set_xlabel("score")
    axes.set_ylabel("miners")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not len(finite):
        axes.text(0.5, 0.5, "no scores", ha="center", va="center", transform=axes.transAxes)
    return _save(figure, path)


def _row_labeller(validators: Sequence[int]) -> Callable[[float, int | None], str]:
    def label(position: float, _index: int | None = None) -> str:
        row = round(position)
        return str(validators[row]) if 0 <= row < len(validators) else ""

    return label
