"""From page data to what a template or the JSON twin needs: τ text, charts, plain JSON.

Invariants: amounts are shown from integer rao (``tao`` keeps the exact rao in ``data-rao``
and the exact τ in the title); every string is escaped (``Markup`` only wraps text built
here from escaped parts); charts are drawn from the same page data the JSON twin returns.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

from markupsafe import Markup, escape

from taoflow.dashboards.explorer.charts import Series, line_chart
from taoflow.ledger.payouts import tao_text
from taoflow.ledger.schema import RAO_PER_TAO

if TYPE_CHECKING:
    import jinja2

    from taoflow.dashboards.explorer.app import Explorer

HASH_SHOWN_CHARS: Final = 12
TX_ID_HEAD_CHARS_MAX: Final = 40


def tao_display(amount_rao: int) -> str:
    """τ with sensible precision: 12,345.67 τ · 12.3457 τ · 0.000123 τ (exact text in title)."""
    value = amount_rao / RAO_PER_TAO
    if amount_rao == 0:
        return "0 τ"
    if abs(value) >= 1_000:
        return f"{value:,.2f} τ"
    if abs(value) >= 1:
        return f"{value:,.4f} τ"
    digits = min(9, max(4, 3 - math.floor(math.log10(abs(value)))))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") + " τ"


def tao(amount_rao: Any) -> Markup:
    if amount_rao is None:
        return Markup('<span class="tao muted">–</span>')
    rao = int(amount_rao)  # an int: its digits, τ text and display need no escaping
    return Markup(
        f'<span class="tao" data-rao="{rao}" title="{tao_text(rao)} τ">{tao_display(rao)}</span>'
    )


def short(value: Any) -> Markup:
    text = "" if value is None else str(value)
    if len(text) <= HASH_SHOWN_CHARS + 2:
        return Markup('<span class="hash">{}</span>').format(text)
    shown = text[:HASH_SHOWN_CHARS]
    if "/" in text:  # a path-like id: keep its readable parts, shorten the hash at its end
        head, _, tail = text.rpartition("/")
        shown = f"{head}/{tail[:8]}" if len(head) <= TX_ID_HEAD_CHARS_MAX else shown
    return Markup('<span class="hash" data-full="{}" title="{}">{}…</span>').format(
        text, text, shown
    )


def number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def percent(value: Any) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):.2f}%"


TALLY_BAR_WIDTH: Final = 1000
"""The tally bar's SVG user units across (it scales to its box)."""
TALLY_PARTS: Final = ("for", "against", "abstain")


def tally_bar(tally: Any) -> Markup:
    """A stacked SVG bar of a tally view (``governance_pages.tally_view``): for, against and
    abstain as shares of the total voting power, a mark at the quorum. Numbers only: nothing
    from the ledger's text reaches the markup; no inline style (CSP)."""
    x = 0.0
    rects = []
    for part in TALLY_PARTS:
        width = TALLY_BAR_WIDTH * min(1.0, max(0.0, float(tally[f"{part}_share"])))
        if width > 0:
            rects.append(
                f'<rect class="{part}" x="{x:.2f}" y="0" width="{width:.2f}" height="16"></rect>'
            )
        x += width
    quorum_x = TALLY_BAR_WIDTH * min(1.0, max(0.0, float(tally["quorum_share"])))
    title = (
        f"for {percent(tally['for_share'])}, against {percent(tally['against_share'])}, "
        f"abstain {percent(tally['abstain_share'])} of all voting power; quorum at "
        f"{percent(tally['quorum_share'])}"
    )
    return Markup(
        f'<svg class="tally-bar" viewBox="0 0 {TALLY_BAR_WIDTH} 16" preserveAspectRatio="none" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<rect class="power" x="0" y="0" width="{TALLY_BAR_WIDTH}" height="16"></rect>'
        f'{"".join(rects)}<line class="quorum" x1="{quorum_x:.2f}" x2="{quorum_x:.2f}" y1="0" '
        'y2="16"></line></svg>'
    )


def install_filters(env: jinja2.Environment) -> None:
    env.filters.update(tao=tao, short=short, number=number, percent=percent, tally_bar=tally_bar)
    env.globals["escape"] = escape


def jsonable(value: Any) -> Any:
    """Plain JSON: dataclasses as dicts, NaN/inf as null, ints (rao) kept exact."""
    import dataclasses

    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is list and all(type(v) is int for v in value):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- charts per page -----------------------------------------------------------------------


def _supply_chart(page: dict[str, Any]) -> Markup:
    history = page["supply"]["history"]
    xs = history.get("batch_no", [])
    names = ("staked_rao", "free_rao", "locked_rao", "burned_rao", "issued_rao")
    return line_chart(
        "supply",
        series=[Series(name=n.removesuffix("_rao"), xs=xs, ys=history.get(n, [])) for n in names],
        x_label="batch",
        y_label="τ",
        y_format="tao",
    )


def _top_chart(chart_id: str, series: dict[str, Any], labels: Any, y_label: str) -> Markup:
    return line_chart(
        chart_id,
        series=[
            Series(name=labels.of(hotkey), xs=s["epoch"], ys=s["value"])
            for hotkey, s in series.items()
        ],
        x_label="epoch",
        y_label=y_label,
        y_format="percent",
    )


def _subnet_charts(page: dict[str, Any], explorer: Explorer) -> dict[str, Markup]:
    history = page["history"]
    emission = history["emission"]
    registration = history["registration_cost"]
    return {
        "emission": line_chart(
            "emission",
            series=[
                Series(name=name.removesuffix("_rao"), xs=emission["epoch"], ys=emission[name])
                for name in ("miners_rao", "validators_rao", "owner_rao", "delegators_rao")
            ],
            x_label="epoch",
            y_label="τ per epoch",
            y_format="tao",
        ),
        "incentive": _top_chart("incentive", history["incentive"], explorer.labels, "incentive"),
        "dividends": _top_chart("dividends", history["dividends"], explorer.labels, "dividends"),
        "registration_cost": line_chart(
            "registration_cost",
            series=[
                Series(
                    name="burned to register",
                    xs=registration["batch_no"],
                    ys=registration["burned_rao"],
                )
            ],
            x_label="batch",
            y_label="τ",
            y_format="tao",
        ),
    }


def _neuron_charts(page: dict[str, Any]) -> dict[str, Markup]:
    history = page["history"]
    xs = history["epoch"]

    def chart(chart_id: str, names: tuple[str, ...], y_format: Any, y_label: str) -> Markup:
        series = [
            Series(
                name=n.removesuffix("_rao"),
                xs=xs,
                ys=[math.nan if v is None else v for v in history[n]],
            )
            for n in names
        ]
        return line_chart(
            chart_id, series=series, x_label="epoch", y_label=y_label, y_format=y_format
        )

    return {
        "score": chart("score", ("score",), "number", "mean score"),
        "incentive": chart(
            "incentive", ("incentive", "dividends", "validator_trust"), "percent", "share"
        ),
        "emission": chart("emission", ("emission_rao",), "tao", "τ per epoch"),
        "stake": chart("stake", ("stake_rao",), "tao", "stake the epoch counted"),
    }


def context(template: str, page: dict[str, Any], explorer: Explorer) -> dict[str, Any]:
    """The template's variables: the page, its charts and the UI links."""
    charts: dict[str, Markup] = {}
    if template == "network.html":
        charts = {"supply": _supply_chart(page)}
    elif template == "subnet.html":
        charts = _subnet_charts(page, explorer)
    elif template == "neuron.html":
        charts = _neuron_charts(page)
    extra: dict[str, Any] = {}
    if template == "tx.html":
        payload = page.get("payload")
        extra["payload_text"] = (
            json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
            if isinstance(payload, (dict, list))
            else str(payload)
        )
    return {
        "page": page,
        "charts": charts,
        "links": page.get("links", []),
        "links_enabled": explorer.links.enabled,
        "run_links": explorer.links.for_epoch,
        **extra,
    }
