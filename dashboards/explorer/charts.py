"""Server-side SVG charts for the explorer: line charts over epochs and bar charts.

Invariants:
- Each chart is one ``<svg class="chart" data-chart="{id}" data-points="{N}" role="img">``
  element, where N is the number of finite points (or bars) drawn over all series. A chart with
  nothing to draw has ``data-points="0"`` and a centred "no data yet".
- Every caller-supplied text (chart id, series names, labels) goes through ``markupsafe.escape``.
  There is no ``style`` attribute anywhere (the explorer's Content-Security-Policy forbids inline
  styles): colours are CSS classes ``s0``…``s7`` with ``stroke``/``fill`` presentation
  attributes from the same colour-blind-safe palette as a fallback.
- A series keeps at most ``points_max`` points: beyond that, its x range is cut into
  ``(points_max - 2) // 2`` equal buckets and each bucket keeps its minimum and its maximum in x
  order (so a one-epoch spike survives), plus the first and last points (so the line ends where
  the data end). NaN or infinite y is a gap; xs are sorted, never trusted to be.
- Pure: no I/O and no state; only numpy. Money arrives as rao (floats are fine for drawing) and
  ``y_format="tao"`` shows it in τ; ``"percent"`` takes fractions (0.25 → 25%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
from markupsafe import Markup, escape

from taoflow.ledger.schema import RAO_PER_TAO

YFormat = Literal["number", "tao", "percent"]
Y_FORMATS: Final = frozenset(get_args(YFormat))

# Okabe–Ito: distinguishable with the common colour-vision deficiencies (yellow darkened).
PALETTE: Final = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#B8A200",
)
POINTS_MAX: Final = 600  # per series after downsampling
SERIES_MAX: Final = len(PALETTE)  # one colour each; more lines would not be told apart
BARS_MAX: Final = 1024
TICKS_MAX: Final = 5
TICKS_MIN: Final = 3
TICK_SEARCH_MAX: Final = 64  # candidate steps tried by nice_ticks (1, 2, 5 × 10^k)
DECIMALS_MAX: Final = 12  # beyond this, numbers are written in scientific notation
SIZE_MIN_PX: Final = 160
SIZE_MAX_PX: Final = 4000
LEGEND_NAME_CHARS_MAX: Final = 32
CHAR_WIDTH_PX: Final = 7.0  # rough width of one character at the chart's 12 px font
BAR_LABEL_PX_MIN: Final = 48  # horizontal room a bar label needs before labels are thinned
EMPTY_TEXT: Final = "no data yet"

_MANTISSAS: Final = (1, 2, 5)
_SUFFIXES: Final = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_UNITS: Final = {"number": "", "tao": " τ", "percent": "%"}
_MARGIN_LEFT_PX: Final = 72
_MARGIN_RIGHT_PX: Final = 16
_MARGIN_TOP_PX: Final = 10
_MARGIN_BOTTOM_PX: Final = 40
_LEGEND_ROW_PX: Final = 18
_FLAT_SPAN_RATIO: Final = 1e-9  # a range narrower than this times its size is drawn as flat


@dataclass(frozen=True)
class Series:
    """One line: ``ys[i]`` at ``xs[i]`` (e.g. epoch numbers); NaN in ys is a gap."""

    name: str
    xs: Sequence[float] | np.ndarray
    ys: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class _Prepared:
    name: str
    xs: np.ndarray  # sorted, finite
    ys: np.ndarray  # NaN where there is nothing to draw


@dataclass(frozen=True)
class _Frame:
    """Pixel box of the plot area and the data domain it shows."""

    width_px: int
    height_px: int
    top_px: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    @property
    def left_px(self) -> float:
        return float(_MARGIN_LEFT_PX)

    @property
    def right_px(self) -> float:
        return float(self.width_px - _MARGIN_RIGHT_PX)

    @property
    def bottom_px(self) -> float:
        return float(self.height_px - _MARGIN_BOTTOM_PX)

    def px_x(self, xs: np.ndarray) -> np.ndarray:
        if self.x_hi == self.x_lo:
            return np.full(xs.shape, (self.left_px + self.right_px) / 2)
        return self.left_px + (xs - self.x_lo) / (self.x_hi - self.x_lo) * (
            self.right_px - self.left_px
        )

    def px_y(self, ys: np.ndarray) -> np.ndarray:
        return self.bottom_px - (ys - self.y_lo) / (self.y_hi - self.y_lo) * (
            self.bottom_px - self.top_px
        )


# ---------------------------------------------------------------------------------------------
# numbers


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def compact_number(value: float, *, significant: int = 3) -> str:
    """``value`` with ``significant`` digits and a k/M/G/T/P suffix: 1234 → ``1.23k``."""
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    rounded = float(f"{value:.{significant}g}")
    magnitude = abs(rounded)
    scale, suffix = next(((s, x) for s, x in _SUFFIXES if magnitude >= s), (1.0, ""))
    scaled = magnitude / scale
    decimals = significant - 1 - math.floor(math.log10(scaled))
    if decimals > DECIMALS_MAX:
        return f"{rounded:.{significant - 1}e}"
    return ("-" if rounded < 0 else "") + _fixed(scaled, max(0, decimals)) + suffix


def _in_unit(value: float, y_format: str) -> float:
    if y_format == "tao":
        return value / RAO_PER_TAO
    if y_format == "percent":
        return value * 100
    return value


def _check_format(y_format: str) -> None:
    if y_format not in Y_FORMATS:
        raise ValueError(f"y_format must be one of {sorted(Y_FORMATS)}, not {y_format!r}")


def format_value(value: float, y_format: YFormat = "number") -> str:
    """One value as a reader sees it: ``12.3 τ`` (value in rao), ``25%`` (fraction), ``1.2k``."""
    _check_format(y_format)
    if not math.isfinite(value):
        return "–"
    return compact_number(_in_unit(value, y_format)) + _UNITS[y_format]


def tick_labels(ticks: Sequence[float], y_format: YFormat = "number") -> list[str]:
    """Labels for evenly spaced ``ticks``, with just enough decimals to tell them apart."""
    _check_format(y_format)
    scaled = [_in_unit(t, y_format) for t in ticks]
    if not scaled:
        return []
    top = max(abs(v) for v in scaled)
    scale, suffix = next(((s, x) for s, x in _SUFFIXES if top >= s), (1.0, ""))
    step = abs(scaled[1] - scaled[0]) / scale if len(scaled) > 1 else 0.0
    decimals = 0 if step == 0 else max(0, -math.floor(math.log10(step) + 1e-9))
    decimals = min(decimals, DECIMALS_MAX)
    unit = _UNITS[y_format]
    labels = []
    for value in scaled:
        text = f"{value / scale + 0.0:.{decimals}f}"
        if float(text) == 0:
            text = "0"
        labels.append(text + (suffix if text != "0" else "") + unit)
    return labels


def _tick_values(first: int, last: int, mantissa: int, exponent: int) -> list[float]:
    if exponent >= 0:
        return [float(k * mantissa * 10**exponent) for k in range(first, last + 1)]
    return [k * mantissa / 10 ** (-exponent) for k in range(first, last + 1)]


def nice_ticks(lo: float, hi: float, *, count_max: int = TICKS_MAX) -> list[float]:
    """Ticks at multiples of a 1, 2 or 5 × 10^k step covering [lo, hi]: 3 to ``count_max``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"tick range must be finite and ordered, not [{lo}, {hi}]")
    if count_max < TICKS_MIN:
        raise ValueError(f"count_max must be at least {TICKS_MIN}, not {count_max}")
    if hi - lo <= max(abs(lo), abs(hi)) * _FLAT_SPAN_RATIO:
        pad = abs(hi) / 2 if hi != 0 else 1.0
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    if not math.isfinite(span):
        raise ValueError(f"tick range [{lo}, {hi}] is too wide")
    exponent = math.floor(math.log10(span / (count_max - 1)))
    for attempt in range(TICK_SEARCH_MAX):
        mantissa = _MANTISSAS[attempt % len(_MANTISSAS)]
        exp = exponent + attempt // len(_MANTISSAS)
        step = mantissa * 10.0**exp
        first, last = math.floor(lo / step), math.ceil(hi / step)
        if last - first + 1 <= count_max:
            return _tick_values(first, last, mantissa, exp)
    raise ValueError(f"no tick step found for [{lo}, {hi}]")


def integer_ticks(lo: float, hi: float, *, count_max: int = TICKS_MAX) -> list[int]:
    """Integer ticks inside [lo, hi] (epochs) at a 1, 2 or 5 × 10^k step, at most ``count_max``."""
    first_int, last_int = math.ceil(lo), math.floor(hi)
    if last_int < first_int:
        return []
    for attempt in range(TICK_SEARCH_MAX):
        step = _MANTISSAS[attempt % len(_MANTISSAS)] * 10 ** (attempt // len(_MANTISSAS))
        first, last = -(-first_int // step), last_int // step
        if last - first + 1 <= count_max:
            return [k * step for k in range(first, last + 1)]
    return [first_int]


# ---------------------------------------------------------------------------------------------
# data


def _extreme_indices(
    values: np.ndarray, starts: np.ndarray, bucket: np.ndarray, *, low: bool
) -> np.ndarray:
    """Index of the first minimum (``low``) or maximum of ``values`` in each bucket."""
    reducer = np.minimum if low else np.maximum
    extremes = reducer.reduceat(values, starts)
    hits = np.flatnonzero(values == extremes[bucket])
    _, first = np.unique(bucket[hits], return_index=True)
    return hits[first]


def downsample_indices(xs: np.ndarray, ys: np.ndarray, *, points_max: int) -> np.ndarray:
    """Indices (into x-sorted ``xs``/``ys``) kept: all if few, else min+max per x bucket."""
    if points_max < 4:
        raise ValueError(f"points_max must be at least 4, not {points_max}")
    count = len(xs)
    if count <= points_max:
        return np.arange(count)
    buckets = (points_max - 2) // 2
    span = float(xs[-1] - xs[0])
    if span > 0:
        bucket = np.minimum(((xs - xs[0]) / span * buckets).astype(np.int64), buckets - 1)
    else:
        bucket = np.zeros(count, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
    segment = np.cumsum(np.concatenate(([0], (np.diff(bucket) != 0).astype(np.int64))))
    finite = np.isfinite(ys)
    lows = _extreme_indices(np.where(finite, ys, np.inf), starts, segment, low=True)
    highs = _extreme_indices(np.where(finite, ys, -np.inf), starts, segment, low=False)
    kept = np.concatenate((lows, highs, [0, count - 1]))
    return np.unique(kept)


def downsample(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, *, points_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """The points of a series that a chart draws (xs sorted, at most ``points_max``)."""
    prepared = _prepare(Series("", xs, ys))
    kept = downsample_indices(prepared.xs, prepared.ys, points_max=points_max)
    return prepared.xs[kept], prepared.ys[kept]


def _prepare(series: Series) -> _Prepared:
    try:
        xs = np.asarray(series.xs, dtype=np.float64)
        ys = np.asarray(series.ys, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"series {series.name!r}: xs and ys must be numbers") from None
    if xs.ndim != 1 or ys.ndim != 1 or len(xs) != len(ys):
        raise ValueError(
            f"series {series.name!r}: {xs.size} xs but {ys.size} ys (need two equal 1-D lists)"
        )
    if not np.isfinite(xs).all():
        raise ValueError(f"series {series.name!r}: xs must be finite")
    order = np.argsort(xs, kind="stable")
    ys = ys[order]
    return _Prepared(series.name, xs[order], np.where(np.isfinite(ys), ys, np.nan))


def _check_size(width_px: int, height_px: int) -> None:
    for name, value in (("width_px", width_px), ("height_px", height_px)):
        if not SIZE_MIN_PX <= value <= SIZE_MAX_PX:
            raise ValueError(f"{name} must be in [{SIZE_MIN_PX}, {SIZE_MAX_PX}], not {value}")


def _y_domain(lo: float, hi: float, *, include_zero: bool) -> list[float]:
    """Y ticks for data in [lo, hi]; zero is shown when asked or when the data sit near it."""
    if include_zero or (lo >= 0 and (lo <= hi / 2 or lo == hi)):
        lo = min(lo, 0.0)
    if include_zero or (hi <= 0 and (hi >= lo / 2 or lo == hi)):
        hi = max(hi, 0.0)
    if lo == hi == 0.0:  # all zero: the line sits on the axis of a 0..1 scale
        hi = 1.0
    return nice_ticks(lo, hi)


# ---------------------------------------------------------------------------------------------
# svg


def _n(value: float) -> str:
    return f"{value:.1f}"


def _svg_open(chart_id: str, *, points: int, width_px: int, height_px: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(chart_id)}"'
        f' data-points="{points}" viewBox="0 0 {width_px} {height_px}" width="{width_px}"'
        f' height="{height_px}" role="img" aria-label="{escape(label)}"'
        ' font-family="system-ui, sans-serif" font-size="12">'
    )


def _empty(chart_id: str, *, width_px: int, height_px: int, label: str) -> Markup:
    return Markup(
        _svg_open(chart_id, points=0, width_px=width_px, height_px=height_px, label=label)
        + f'<text class="empty" x="{width_px / 2:.1f}" y="{height_px / 2:.1f}"'
        f' text-anchor="middle" dominant-baseline="middle" fill="#666">{EMPTY_TEXT}</text></svg>'
    )


def _y_axis(frame: _Frame, ticks: list[float], y_format: YFormat, y_label: str) -> list[str]:
    parts = []
    ys = frame.px_y(np.asarray(ticks))
    for y_px, text in zip(ys.tolist(), tick_labels(ticks, y_format), strict=True):
        parts.append(
            f'<line class="grid" x1="{_n(frame.left_px)}" x2="{_n(frame.right_px)}"'
            f' y1="{_n(y_px)}" y2="{_n(y_px)}" stroke="#e5e5e5"/>'
            f'<text class="tick" x="{_n(frame.left_px - 6)}" y="{_n(y_px)}" text-anchor="end"'
            f' dominant-baseline="middle">{escape(text)}</text>'
        )
    middle = (frame.top_px + frame.bottom_px) / 2
    parts.append(
        f'<text class="axis-label" x="14" y="{_n(middle)}" text-anchor="middle"'
        f' transform="rotate(-90 14 {_n(middle)})">{escape(y_label)}</text>'
        f'<line class="axis" x1="{_n(frame.left_px)}" x2="{_n(frame.left_px)}"'
        f' y1="{_n(frame.top_px)}" y2="{_n(frame.bottom_px)}" stroke="#888"/>'
        f'<line class="axis" x1="{_n(frame.left_px)}" x2="{_n(frame.right_px)}"'
        f' y1="{_n(frame.bottom_px)}" y2="{_n(frame.bottom_px)}" stroke="#888"/>'
    )
    return parts


def _x_axis(frame: _Frame, x_label: str) -> list[str]:
    parts = []
    ticks = integer_ticks(frame.x_lo, frame.x_hi)
    at_px = frame.px_x(np.asarray(ticks, dtype=np.float64)).tolist()
    for x_tick, x_px in zip(ticks, at_px, strict=True):
        parts.append(
            f'<line class="tick" x1="{_n(x_px)}" x2="{_n(x_px)}" y1="{_n(frame.bottom_px)}"'
            f' y2="{_n(frame.bottom_px + 4)}" stroke="#888"/>'
            f'<text class="tick" x="{_n(x_px)}" y="{_n(frame.bottom_px + 16)}"'
            f' text-anchor="middle">{x_tick}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{_n((frame.left_px + frame.right_px) / 2)}"'
        f' y="{frame.height_px - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    return parts


def _short(name: str, chars_max: int) -> str:
    return name if len(name) <= chars_max else name[: max(1, chars_max - 1)] + "…"


def _legend(names: Sequence[str], *, width_px: int) -> tuple[list[str], int]:
    """Legend items laid out in rows across the top; returns the parts and the height used."""
    if len(names) < 2:
        return [], 0
    parts = ['<g class="legend">']
    x_px, row = float(_MARGIN_LEFT_PX), 0
    for index, name in enumerate(names):
        shown = _short(name, LEGEND_NAME_CHARS_MAX)
        item_px = 18 + len(shown) * CHAR_WIDTH_PX + 14
        if x_px + item_px > width_px - _MARGIN_RIGHT_PX and x_px > _MARGIN_LEFT_PX:
            x_px, row = float(_MARGIN_LEFT_PX), row + 1
        y_px = _MARGIN_TOP_PX + row * _LEGEND_ROW_PX
        colour = PALETTE[index]
        parts.append(
            f'<rect class="swatch s{index}" x="{_n(x_px)}" y="{y_px + 2}" width="12"'
            f' height="8" fill="{colour}"/><text x="{_n(x_px + 16)}" y="{y_px + 10}">'
            f"{escape(shown)}</text>"
        )
        x_px += item_px
    parts.append("</g>")
    return parts, (row + 1) * _LEGEND_ROW_PX


def _coordinates(xs_px: list[float], ys_px: list[float]) -> str:
    """``x,y x,y …`` with one decimal (the hot loop of a chart: keep it a plain format)."""
    return " ".join([f"{x:.1f},{y:.1f}" for x, y in zip(xs_px, ys_px, strict=True)])


def _runs(finite: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in ``finite``."""
    edges = np.diff(np.concatenate(([0], finite.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))


def _line(frame: _Frame, xs: np.ndarray, ys: np.ndarray, *, index: int, title: str) -> str:
    """One series as a path (gaps split it) plus a dot for every isolated point."""
    x_px, y_px = frame.px_x(xs).tolist(), frame.px_y(ys).tolist()
    colour = PALETTE[index]
    strokes, dots = [], []
    for start, end in _runs(np.isfinite(ys)):
        if end - start == 1:
            dots.append(
                f'<circle class="dot s{index}" cx="{_n(x_px[start])}" cy="{_n(y_px[start])}"'
                f' r="2.5" fill="{colour}"/>'
            )
            continue
        points = _coordinates(x_px[start:end], y_px[start:end])
        strokes.append(f"M{points.replace(' ', 'L', 1)}")
    path = (
        f'<path class="line s{index}" d="{" ".join(strokes)}" fill="none" stroke="{colour}"'
        f' stroke-width="1.5" stroke-linejoin="round"/>'
        if strokes
        else ""
    )
    return f'<g class="series s{index}"><title>{escape(title)}</title>{path}{"".join(dots)}</g>'


def _last_value(ys: np.ndarray) -> float:
    finite = np.flatnonzero(np.isfinite(ys))
    return float(ys[finite[-1]]) if finite.size else math.nan


def _stack(prepared: list[_Prepared], *, points_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, cumulative tops per layer) of stacked series sharing one x grid, downsampled."""
    xs = prepared[0].xs
    for item in prepared[1:]:
        if item.xs.shape != xs.shape or not np.array_equal(item.xs, xs):
            raise ValueError(f"stacked series {item.name!r} must share the first series' xs")
    layers = np.vstack([item.ys for item in prepared])
    tops = np.cumsum(layers, axis=0)  # a gap in any layer is a gap in every layer above it
    tops[:, ~np.isfinite(tops[-1])] = np.nan
    kept = downsample_indices(xs, tops[-1], points_max=points_max)
    return xs[kept], tops[:, kept]


def _areas(
    frame: _Frame, xs: np.ndarray, tops: np.ndarray, *, names: list[str], y_format: YFormat
) -> list[str]:
    """Stacked layers as filled bands between consecutive cumulative tops."""
    parts = []
    x_px = frame.px_x(xs).tolist()
    finite = np.isfinite(tops[-1])
    for index, name in enumerate(names):
        upper = frame.px_y(tops[index]).tolist()
        below = tops[index - 1] if index else np.zeros_like(xs)
        lower = frame.px_y(below).tolist()
        shapes = []
        for start, end in _runs(finite):
            forward = _coordinates(x_px[start:end], upper[start:end])
            back = _coordinates(x_px[start:end][::-1], lower[start:end][::-1])
            shapes.append(f"M{forward} {back}Z".replace(" ", "L"))
        title = f"{name}: {format_value(_last_value(tops[index] - below), y_format)}"
        colour = PALETTE[index]
        parts.append(
            f'<g class="series s{index}"><title>{escape(title)}</title>'
            f'<path class="area s{index}" d="{" ".join(shapes)}" fill="{colour}"'
            f' fill-opacity="0.35" stroke="{colour}" stroke-width="1"/></g>'
        )
    return parts


def _aria(y_label: str, x_label: str, names: Sequence[str]) -> str:
    label = f"{y_label} by {x_label}" if x_label else y_label
    return f"{label}: {', '.join(names)}" if names else label


def line_chart(
    chart_id: str,
    *,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    y_format: YFormat = "number",
    width_px: int = 720,
    height_px: int = 220,
    points_max: int = POINTS_MAX,
    stacked: bool = False,
) -> Markup:
    """Lines of ``series`` over x (epochs); ``stacked`` draws bands summing to the top line.

    Stacked series must share their xs; a gap in one layer is a gap in every layer above it.
    Raises ValueError (one line) on mismatched lengths, too many series or a bad option.
    """
    _check_format(y_format)
    _check_size(width_px, height_px)
    if len(series) > SERIES_MAX:
        raise ValueError(f"a chart draws at most {SERIES_MAX} series, not {len(series)}")
    names = [item.name for item in series]
    label = _aria(y_label, x_label, names)
    prepared = [_prepare(item) for item in series]
    if stacked and prepared:
        xs, tops = _stack(prepared, points_max=points_max)
        drawn = [(xs, row) for row in tops]
        points = int(np.isfinite(tops[-1]).sum()) * len(prepared)
    else:
        kept = [downsample_indices(p.xs, p.ys, points_max=points_max) for p in prepared]
        drawn = [(p.xs[k], p.ys[k]) for p, k in zip(prepared, kept, strict=True)]
        points = sum(int(np.isfinite(ys).sum()) for _, ys in drawn)
    if points == 0:
        return _empty(chart_id, width_px=width_px, height_px=height_px, label=label)
    all_ys = np.concatenate([ys for _, ys in drawn])
    all_xs = np.concatenate([xs for xs, _ in drawn])
    y_ticks = _y_domain(float(np.nanmin(all_ys)), float(np.nanmax(all_ys)), include_zero=stacked)
    legend, legend_px = _legend(names, width_px=width_px)
    frame = _Frame(
        width_px=width_px,
        height_px=height_px,
        top_px=float(_MARGIN_TOP_PX + legend_px + (4 if legend_px else 0)),
        x_lo=float(all_xs.min()),
        x_hi=float(all_xs.max()),
        y_lo=y_ticks[0],
        y_hi=y_ticks[-1],
    )
    parts = [
        _svg_open(chart_id, points=points, width_px=width_px, height_px=height_px, label=label)
    ]
    parts += _y_axis(frame, y_ticks, y_format, y_label) + _x_axis(frame, x_label) + legend
    if stacked:
        parts += _areas(frame, drawn[0][0], tops, names=names, y_format=y_format)
    else:
        for index, ((xs, ys), item) in enumerate(zip(drawn, prepared, strict=True)):
            title = f"{item.name}: {format_value(_last_value(item.ys), y_format)}"
            parts.append(_line(frame, xs, ys, index=index, title=title))
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar_labels(frame: _Frame, labels: Sequence[str], slot_px: float) -> list[str]:
    """Category labels under the bars, thinned and shortened to the room there is."""
    every = max(1, math.ceil(BAR_LABEL_PX_MIN / slot_px))
    chars_max = max(2, int(slot_px * every / CHAR_WIDTH_PX))
    parts = []
    for index in range(0, len(labels), every):
        x_px = frame.left_px + (index + 0.5) * slot_px
        parts.append(
            f'<text class="tick" x="{_n(x_px)}" y="{_n(frame.bottom_px + 16)}"'
            f' text-anchor="middle">{escape(_short(labels[index], chars_max))}</text>'
        )
    return parts


def bar_chart(
    chart_id: str,
    *,
    labels: Sequence[str],
    values: Sequence[float] | np.ndarray,
    y_label: str,
    y_format: YFormat = "number",
    width_px: int = 720,
    height_px: int = 220,
) -> Markup:
    """One bar per label (in the given order) from zero to its value; NaN draws no bar."""
    _check_format(y_format)
    _check_size(width_px, height_px)
    try:
        ys = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("bar values must be numbers") from None
    if ys.ndim != 1 or len(labels) != len(ys):
        raise ValueError(f"{len(labels)} labels but {ys.size} values (need two equal lists)")
    if len(ys) > BARS_MAX:
        raise ValueError(f"a bar chart draws at most {BARS_MAX} bars, not {len(ys)}")
    ys = np.where(np.isfinite(ys), ys, np.nan)
    label = _aria(y_label, "", [])
    points = int(np.isfinite(ys).sum())
    if points == 0:
        return _empty(chart_id, width_px=width_px, height_px=height_px, label=label)
    y_ticks = _y_domain(float(np.nanmin(ys)), float(np.nanmax(ys)), include_zero=True)
    frame = _Frame(
        width_px, height_px, float(_MARGIN_TOP_PX), 0.0, float(len(ys)), y_ticks[0], y_ticks[-1]
    )
    slot_px = (frame.right_px - frame.left_px) / len(ys)
    zero_px = float(frame.px_y(np.zeros(1))[0])
    parts = [
        _svg_open(chart_id, points=points, width_px=width_px, height_px=height_px, label=label)
    ]
    parts += _y_axis(frame, y_ticks, y_format, y_label)
    for index, (name, value, y_px) in enumerate(
        zip(labels, ys.tolist(), frame.px_y(ys).tolist(), strict=True)
    ):
        if not math.isfinite(value):
            continue
        title = f"{name}: {format_value(value, y_format)}"
        parts.append(
            f'<rect class="bar s0" x="{_n(frame.left_px + (index + 0.15) * slot_px)}"'
            f' y="{_n(min(y_px, zero_px))}" width="{_n(slot_px * 0.7)}"'
            f' height="{_n(abs(zero_px - y_px))}" fill="{PALETTE[0]}">'
            f"<title>{escape(title)}</title></rect>"
        )
    parts += _bar_labels(frame, labels, slot_px)
    parts.append("</svg>")
    return Markup("".join(parts))
