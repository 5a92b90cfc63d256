"""The explorer's server-side SVG charts: counts, downsampling, escaping, ticks and τ text."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.dashboards.explorer.charts import (
    EMPTY_TEXT,
    PALETTE,
    POINTS_MAX,
    SERIES_MAX,
    Series,
    bar_chart,
    compact_number,
    downsample,
    downsample_indices,
    format_value,
    integer_ticks,
    line_chart,
    nice_ticks,
    tick_labels,
)
from taoflow.ledger.schema import RAO_PER_TAO

SVG = "{http://www.w3.org/2000/svg}"
XSS = "<script>alert(1)</script>"


def _root(chart: str) -> ET.Element:
    return ET.fromstring(chart)  # also proves the SVG is well-formed XML


def _points(chart: str) -> int:
    return int(_root(chart).attrib["data-points"])


def _line(*series: Series, **options: Any) -> str:
    return str(line_chart("c", series=list(series), x_label="epoch", y_label="y", **options))


def _path_xy(chart: str) -> list[tuple[float, float]]:
    """Every coordinate pair of the first line path of ``chart``."""
    path = next(p for p in _root(chart).iter(f"{SVG}path") if "line" in p.attrib["class"])
    pairs = re.findall(r"(-?[\d.]+),(-?[\d.]+)", path.attrib["d"])
    return [(float(x), float(y)) for x, y in pairs]


def test_the_root_carries_the_contract_attributes() -> None:
    chart = _line(Series("a", [0, 1, 2], [1.0, 2.0, 3.0]))
    root = _root(chart)
    assert root.tag == f"{SVG}svg"
    assert root.attrib["class"] == "chart"
    assert root.attrib["data-chart"] == "c"
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-label"] == "y by epoch: a"
    assert root.attrib["viewBox"] == "0 0 720 220"


def test_data_points_counts_the_finite_points_of_every_series() -> None:
    first = Series("a", list(range(10)), [float(i) for i in range(10)])
    second = Series("b", [0, 1, 2, 3, 4], [1.0, math.nan, 2.0, math.inf, 3.0])
    assert _points(_line(first, second)) == 13
    assert _points(_line(first)) == 10


def test_a_single_point_is_drawn_as_a_dot() -> None:
    chart = _line(Series("a", [7], [3.0]))
    assert _points(chart) == 1
    assert len(list(_root(chart).iter(f"{SVG}circle"))) == 1


def test_gaps_split_the_line() -> None:
    chart = _line(Series("a", [0, 1, 2, 3, 4], [1.0, 2.0, math.nan, 3.0, 4.0]))
    path = next(_root(chart).iter(f"{SVG}path"))
    assert path.attrib["d"].count("M") == 2


def test_unsorted_xs_are_drawn_in_x_order() -> None:
    chart = _line(Series("a", [3, 0, 2, 1], [30.0, 0.0, 20.0, 10.0]))
    xy = _path_xy(chart)
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    assert [y for _, y in xy] == sorted((y for _, y in xy), reverse=True)  # rising line


def test_downsampling_keeps_a_one_epoch_spike_and_dip() -> None:
    ys = np.zeros(5_000)
    ys[3_333] = 100.0
    ys[1_234] = -50.0
    kept_xs, kept_ys = downsample(np.arange(5_000), ys, points_max=POINTS_MAX)
    assert len(kept_xs) <= POINTS_MAX
    assert 3_333.0 in kept_xs.tolist() and 1_234.0 in kept_xs.tolist()
    assert kept_ys.max() == 100.0 and kept_ys.min() == -50.0
    assert kept_xs[0] == 0.0 and kept_xs[-1] == 4_999.0
    assert kept_xs.tolist() == sorted(kept_xs.tolist())


def test_downsampling_bounds_the_drawn_points_per_series() -> None:
    rng = np.random.default_rng(7)
    xs = np.arange(5_000)
    chart = _line(Series("a", xs, rng.random(5_000)), Series("b", xs, rng.random(5_000)))
    assert 2 * (POINTS_MAX - 10) <= _points(chart) <= 2 * POINTS_MAX
    assert len(_path_xy(chart)) <= POINTS_MAX


def test_downsampling_leaves_short_series_untouched_and_keeps_all_nan_buckets_as_gaps() -> None:
    assert downsample_indices(np.arange(50.0), np.ones(50), points_max=60).tolist() == list(
        range(50)
    )
    ys = np.ones(1_000)
    ys[400:600] = np.nan
    _, kept = downsample(np.arange(1_000), ys, points_max=100)
    assert np.isnan(kept).any()
    with pytest.raises(ValueError, match="points_max"):
        downsample(np.arange(10), np.ones(10), points_max=2)


def test_every_caller_text_is_escaped() -> None:
    line = str(
        line_chart(
            XSS,
            series=[Series(XSS, [0, 1], [1.0, 2.0]), Series("b", [0, 1], [2.0, 1.0])],
            x_label=XSS,
            y_label=XSS,
        )
    )
    bars = str(bar_chart(XSS, labels=[XSS, "b"], values=[1.0, 2.0], y_label=XSS))
    for chart in (line, bars):
        assert "<script" not in chart
        assert "&lt;script&gt;" in chart
        root = _root(chart)
        assert root.attrib["data-chart"] == XSS
        assert not list(root.iter(f"{SVG}script"))
    titles = [t.text for t in _root(line).iter(f"{SVG}title")]
    assert f"{XSS}: 2" in titles


def test_charts_carry_no_inline_style() -> None:
    charts = [
        _line(Series("a", [0, 1], [1.0, 2.0]), Series("b", [0, 1], [1.0, 3.0])),
        _line(Series("a", [0, 1], [1.0, 2.0]), Series("b", [0, 1], [1.0, 3.0]), stacked=True),
        str(bar_chart("b", labels=["x"], values=[1.0], y_label="y")),
        _line(),
    ]
    for chart in charts:
        assert "style=" not in chart


@pytest.mark.parametrize(
    "series",
    [[], [Series("a", [], [])], [Series("a", [0, 1, 2], [math.nan] * 3)]],
    ids=["no series", "no points", "all nan"],
)
def test_an_empty_chart_says_so(series: list[Series]) -> None:
    chart = _line(*series)
    root = _root(chart)
    assert root.attrib["data-points"] == "0"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == [EMPTY_TEXT]


def test_mismatched_lengths_are_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^series 'a': 3 xs but 2 ys") as caught:
        _line(Series("a", [0, 1, 2], [1.0, 2.0]))
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="2 labels but 1 values"):
        bar_chart("b", labels=["x", "y"], values=[1.0], y_label="y")


def test_hostile_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match="y_format"):
        _line(Series("a", [0], [1.0]), y_format="money")
    with pytest.raises(ValueError, match="xs must be finite"):
        _line(Series("a", [0, math.nan], [1.0, 2.0]))
    with pytest.raises(ValueError, match="must be numbers"):
        _line(Series("a", ["x"], [1.0]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match=f"at most {SERIES_MAX} series"):
        _line(*[Series(str(i), [0], [1.0]) for i in range(SERIES_MAX + 1)])
    with pytest.raises(ValueError, match="width_px"):
        _line(Series("a", [0], [1.0]), width_px=10)
    with pytest.raises(ValueError, match="share the first series' xs"):
        _line(Series("a", [0, 1], [1.0, 2.0]), Series("b", [0, 2], [1.0, 2.0]), stacked=True)


def test_constant_and_negative_series_get_a_readable_axis() -> None:
    constant = _root(_line(Series("a", [0, 1, 2], [7.0, 7.0, 7.0])))
    ticks = [t.text for t in constant.iter(f"{SVG}text") if t.attrib.get("class") == "tick"]
    assert ticks[:5] == ["0", "2", "4", "6", "8"]
    negative = _root(_line(Series("a", [0, 1, 2], [-3.0, 2.0, -1.0])))
    labels = [t.text for t in negative.iter(f"{SVG}text") if t.attrib.get("class") == "tick"]
    assert labels[:4] == ["-4", "-2", "0", "2"]


def test_huge_rao_amounts_are_shown_in_tao() -> None:
    supply_rao = 21_000_000 * RAO_PER_TAO
    chart = _root(_line(Series("issued", [0, 1], [0.0, float(supply_rao)]), y_format="tao"))
    labels = [t.text for t in chart.iter(f"{SVG}text") if t.attrib.get("class") == "tick"]
    assert labels[:4] == ["0 τ", "10M τ", "20M τ", "30M τ"]
    title = next(chart.iter(f"{SVG}title")).text
    assert title == "issued: 21M τ"


def test_stacked_layers_are_bands_between_cumulative_tops() -> None:
    xs = [0, 1, 2]
    chart = _root(
        _line(
            Series("staked", xs, [2e9, 2e9, 2e9]),
            Series("free", xs, [1e9, math.nan, 1e9]),
            y_format="tao",
            stacked=True,
        )
    )
    assert chart.attrib["data-points"] == "4"  # the gap at x=1 removes both layers there
    areas = [p for p in chart.iter(f"{SVG}path") if "area" in p.attrib["class"]]
    assert [a.attrib["class"] for a in areas] == ["area s0", "area s1"]
    assert [t.text for t in chart.iter(f"{SVG}title")] == ["staked: 2 τ", "free: 1 τ"]


def test_a_legend_appears_only_with_several_series() -> None:
    one = _root(_line(Series("a", [0, 1], [1.0, 2.0])))
    two = _root(_line(Series("a", [0, 1], [1.0, 2.0]), Series("b", [0, 1], [2.0, 1.0])))
    assert not [g for g in one.iter(f"{SVG}g") if g.attrib.get("class") == "legend"]
    legend = next(g for g in two.iter(f"{SVG}g") if g.attrib.get("class") == "legend")
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["a", "b"]
    assert [g.attrib["class"] for g in two.iter(f"{SVG}g") if "series" in g.attrib["class"]] == [
        "series s0",
        "series s1",
    ]


def test_bar_chart_draws_one_bar_per_finite_value() -> None:
    chart = _root(
        bar_chart(
            "share",
            labels=["digits", "text", "tabular"],
            values=[0.5, math.nan, 0.25],
            y_label="emission share",
            y_format="percent",
        )
    )
    assert chart.attrib["data-points"] == "2"
    bars = list(chart.iter(f"{SVG}rect"))
    assert [b.find(f"{SVG}title").text for b in bars] == ["digits: 50%", "tabular: 25%"]  # type: ignore[union-attr]
    heights = [float(b.attrib["height"]) for b in bars]
    assert heights[0] == pytest.approx(2 * heights[1], abs=0.2)  # one-decimal pixels
    empty = _root(bar_chart("share", labels=[], values=[], y_label="share"))
    assert empty.attrib["data-points"] == "0"


def _is_nice(step: float) -> bool:
    exponent = math.floor(math.log10(step))
    mantissa = round(step / 10**exponent, 6)
    return mantissa in (1.0, 2.0, 5.0, 10.0)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 1.0, [0.0, 0.5, 1.0]),
        (0.0, 10.0, [0.0, 5.0, 10.0]),
        (0.0, 7.0, [0.0, 2.0, 4.0, 6.0, 8.0]),
        (0.85, 0.95, [0.85, 0.9, 0.95]),
        (-3.0, 2.0, [-4.0, -2.0, 0.0, 2.0]),
        (0.0, 21e15, [0.0, 1e16, 2e16, 3e16]),
        (5.0, 5.0, [2.0, 4.0, 6.0, 8.0]),
        (0.0, 0.0, [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ],
)
def test_nice_ticks_examples(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1e15, allow_nan=False),
)
def test_nice_ticks_are_three_to_five_nice_steps_covering_the_range(lo: float, span: float) -> None:
    hi = lo + span
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 5
    steps = np.diff(ticks)
    slack = 1e-9 * max(abs(lo), abs(hi), float(steps[0]))  # float rounding, not a missed tick
    assert ticks[0] <= lo + slack and ticks[-1] >= hi - slack
    assert steps == pytest.approx(np.full(len(steps), steps[0]), rel=1e-9)
    assert _is_nice(float(steps[0]))


def test_integer_ticks_are_whole_epochs_inside_the_range() -> None:
    assert integer_ticks(0, 4_999) == [0, 1_000, 2_000, 3_000, 4_000]
    assert integer_ticks(0, 10) == [0, 5, 10]
    assert integer_ticks(3, 12) == [4, 6, 8, 10, 12]
    assert integer_ticks(7, 7) == [7]
    assert integer_ticks(0.2, 0.8) == []


@pytest.mark.parametrize(
    ("amount_rao", "text"),
    [
        (0, "0 τ"),
        (12_300_000_000, "12.3 τ"),
        (1_234 * RAO_PER_TAO, "1.23k τ"),
        (1_200 * RAO_PER_TAO, "1.2k τ"),
        (999_700_000_000, "1k τ"),
        (1_200_000, "0.0012 τ"),
        (1, "0.000000001 τ"),
        (-2_500_000_000, "-2.5 τ"),
        (21_000_000 * RAO_PER_TAO, "21M τ"),
    ],
)
def test_tao_text_has_sensible_precision(amount_rao: int, text: str) -> None:
    assert format_value(float(amount_rao), "tao") == text


def test_number_percent_and_tick_label_text() -> None:
    assert format_value(0.25, "percent") == "25%"
    assert format_value(math.nan) == "–"
    assert compact_number(1_234_567) == "1.23M"
    assert compact_number(0.000123) == "0.000123"
    assert tick_labels([0.0, 5e8, 1e9, 1.5e9], "tao") == ["0 τ", "0.5 τ", "1.0 τ", "1.5 τ"]
    assert tick_labels([0.0, 0.5, 1.0], "percent") == ["0%", "50%", "100%"]
    assert tick_labels([0.0, 500.0, 1_000.0]) == ["0", "0.5k", "1.0k"]
    assert tick_labels([0.85, 0.9, 0.95]) == ["0.85", "0.90", "0.95"]


# ---------------------------------------------------------------------------------------------
# the base template and the static assets the charts rely on

EXPLORER = Path(__file__).resolve().parents[1] / "dashboards" / "explorer"


def _page(footer: dict[str, Any] | None) -> str:
    environment = jinja2.Environment(
        loader=jinja2.DictLoader(
            {
                "base.html": (EXPLORER / "templates" / "base.html").read_text(encoding="utf-8"),
                "page.html": (
                    '{% extends "base.html" %}{% block title %}{{ name }}{% endblock %}'
                    '{% block links %}<a class="prefect-link" href="#">run</a>{% endblock %}'
                    "{% block content %}<h1>{{ name }}</h1>{% endblock %}"
                ),
            }
        ),
        autoescape=True,
    )
    return environment.get_template("page.html").render(name=XSS, footer=footer)


def test_the_base_template_has_nav_footer_and_escapes() -> None:
    head_hash = "ab" * 32
    html = _page({"head_batch": 42, "head_hash": head_hash, "epochs": 7})
    for href, text in (("/", "Network"), ("/ledger", "Ledger"), ("/governance", "Governance")):
        assert re.search(rf'<a href="{href}"[^>]*>{text}</a>', html)
    assert '<a class="brand" href="/">taoflow explorer</a>' in html
    assert '<link rel="stylesheet" href="/static/explorer.css">' in html
    assert '<script src="/static/explorer.js" defer></script>' in html
    assert "batch 42" in html and f">{head_hash[:12]}</span>" in html and "read-only" in html
    assert '<a class="prefect-link"' in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert "style=" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/explorer.js" defer>']


def test_the_base_template_renders_without_a_footer() -> None:
    html = _page(None)
    assert "read-only" in html and "ledger head" not in html


def test_the_stylesheet_colours_every_series_class_like_the_palette() -> None:
    css = (EXPLORER / "static" / "explorer.css").read_text(encoding="utf-8")
    for index, colour in enumerate(PALETTE):
        assert f".chart .s{index} {{ --series: {colour.lower()}; }}" in css
    assert "@import" not in css and "http" not in css  # no external fonts or CDN
