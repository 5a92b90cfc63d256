"""The explorer in a real headless Chromium, over a copy of the demo network.

Every page loads with no console error, no failed request and nothing fetched from elsewhere;
the numbers it shows are the CLI's (``taoflow ledger supply --json``, ``taoflow metagraph
--json``, ``taoflow ledger log --json``, ``taoflow ledger balance --json``), read from the
``data-rao`` of each ``span.tao`` (exact integer rao); charts draw points; sorting, search and the
pager work; a proposal titled with markup renders as text; given a tracking store, epochs link to
their Prefect flow run and MLflow run. With ``TAOFLOW_SCREENSHOTS=1`` the network, subnet and
neuron pages are also saved to ``docs/screenshots/`` (the README's pictures).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from browser_harness import (
    MLFLOW_UI_URL,
    PREFECT_UI_URL,
    XSS_TITLE,
    Explorer,
    assert_clean,
    serve,
    watch,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

pytestmark = pytest.mark.browser

SUBNET = "digits"
CLI_TIMEOUT_S = 120
CLI_LOG_LIMIT = 100_000
PAGER_PAGE_SIZE = 5
SCREENSHOT_ENV = "TAOFLOW_SCREENSHOTS"
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CSP_REQUIRED = {
    "default-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "style-src": {"'self'"},
}
"""Directives the Content-Security-Policy must hold exactly (others may be added)."""
SUPPLY_FIGURES = {
    "supply-issued": "issued_rao",
    "supply-staked": "stakes_rao",
    "supply-free": "balances_rao",
    "supply-burned": "burned_rao",
    "supply-locked": "locked_rao",
}
SUBNET_CHARTS = ("incentive", "dividends", "emission", "registration_cost")
NEURON_CHARTS = ("score", "incentive", "emission", "stake")
TAO_TEXT = re.compile(r"^(-?[\d,\u2009\u202f ]*\.?\d*)\s*([kKMG]?)\s*τ$")
SUFFIX_SCALE = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}
RAO_PER_TAO = 10**9
LINKS_WAIT_S = 90.0
"""Bound on the explorer's background MLflow lookup (the first pages have no links yet)."""
LINKS_POLL_S = 0.5


# ---- the CLI's numbers --------------------------------------------------------------------------


def taoflow_json(home: Path, *args: str) -> Any:
    """``taoflow ARGS --json --home HOME`` in a subprocess, as a user runs it; its JSON."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", *args, "--json", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@dataclass(frozen=True)
class Network:
    """What the CLI says about the copied demo network."""

    supply: dict[str, int]
    metagraph: list[dict[str, Any]]
    log_tx_ids: list[str]
    """Every ledger entry's tx id, newest first (``taoflow ledger log``)."""


@pytest.fixture(scope="module")
def network(explorer: Explorer) -> Network:
    return Network(
        supply=taoflow_json(explorer.home, "ledger", "supply"),
        metagraph=taoflow_json(explorer.home, "metagraph", "--subnet", SUBNET),
        log_tx_ids=[row["tx_id"] for row in ledger_log(explorer)],
    )


def ledger_log(explorer: Explorer, *options: str) -> list[dict[str, Any]]:
    return list(
        taoflow_json(explorer.home, "ledger", "log", "--limit", str(CLI_LOG_LIMIT), *options)
    )


def top_miner(network: Network) -> dict[str, Any]:
    """The miner that earned most in the last epoch (so its history has something in it)."""
    miners = [row for row in network.metagraph if row["role"] == "miner"]
    assert miners, "the demo network has no miners"
    return max(miners, key=lambda row: (row["emission_rao"], -row["uid"]))


# ---- page helpers -------------------------------------------------------------------------------


def visit(page: Page, explorer: Explorer, path: str) -> Response:
    response = page.goto(explorer.base_url + path)
    assert response is not None, path
    assert response.status == 200, f"{path}: HTTP {response.status}"
    return response


def follow(page: Page, click: Callable[[], None]) -> None:
    """Click something that navigates; wait for the new page to load."""
    before = page.url
    click()
    page.wait_for_url(lambda url: url != before)
    page.wait_for_load_state()


def rows_attr(page: Page, selector: str, attribute: str) -> list[str]:
    return list(
        page.eval_on_selector_all(selector, f"els => els.map(e => e.getAttribute('{attribute}'))")
    )


def tao_spans(page: Page, selector: str = "span.tao") -> list[tuple[str, str]]:
    """(data-rao, text) of every ``span.tao`` under ``selector``."""
    return [
        (str(rao), str(text))
        for rao, text in page.eval_on_selector_all(
            selector, "els => els.map(e => [e.getAttribute('data-rao'), e.textContent.trim()])"
        )
    ]


def shown_rao_bounds(text: str) -> tuple[Decimal, Decimal]:
    """The interval of rao that the τ text ``text`` can stand for, given its shown precision."""
    match = TAO_TEXT.match(text)
    assert match, f"not a τ amount: {text!r}"
    digits = re.sub(r"[,\u2009\u202f ]", "", match.group(1))
    value = Decimal(digits)
    scale = SUFFIX_SCALE[match.group(2)] * RAO_PER_TAO
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half_unit = Decimal(10) ** exponent / 2
    return (value - half_unit) * scale, (value + half_unit) * scale


def assert_amounts_honest(page: Page) -> None:
    """Every τ amount carries its exact rao, and its text rounds that rao (nothing made up)."""
    for rao, text in tao_spans(page):
        assert re.fullmatch(r"-?\d+", rao), f"data-rao {rao!r} of {text!r} is not an integer"
        low, high = shown_rao_bounds(text)
        assert low <= Decimal(rao) <= high, f"{text!r} does not show {rao} rao"


def assert_page_frame(page: Page, explorer: Explorer, response: Response) -> None:
    """What every page has: the CSP, the nav links, honest amounts, no errors."""
    policy = response.headers.get("content-security-policy", "")
    directives = {
        name: set(sources)
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }
    for name, sources in CSP_REQUIRED.items():
        assert directives.get(name) == sources, f"CSP {name}: {policy!r}"
    assert "unsafe" not in policy, policy
    assert response.headers.get("content-type", "").startswith("text/html")
    hrefs = set(page.eval_on_selector_all("nav a", "els => els.map(e => e.href)"))
    for path in ("/", "/ledger", "/governance"):
        assert explorer.base_url + path in hrefs, f"nav lacks {path}: {sorted(hrefs)}"
    for kind, ui_url in (("prefect", PREFECT_UI_URL), ("mlflow", MLFLOW_UI_URL)):
        for href in rows_attr(page, f"a.{kind}-link", "href"):
            assert href.startswith(ui_url + "/"), f"{kind} link {href}"
    assert_amounts_honest(page)
    assert_clean(page)


def assert_charts_drawn(page: Page, expected: tuple[str, ...]) -> None:
    """The ``expected`` charts exist and every chart on the page draws points."""
    charts = rows_attr(page, "svg.chart", "data-chart")
    assert set(expected) <= set(charts), f"charts {charts}, expected {expected}"
    for chart in charts:
        svg = page.locator(f'svg.chart[data-chart="{chart}"]')
        points = svg.get_attribute("data-points")
        assert points is not None and int(points) > 0, f"chart {chart}: data-points={points}"
        marks = svg.locator("polyline, path")
        drawn = [
            marks.nth(i)
            for i in range(marks.count())
            if (
                marks.nth(i).get_attribute("points") or marks.nth(i).get_attribute("d") or ""
            ).strip()
        ]
        assert drawn, f"chart {chart} has no polyline/path with points"
        boxes = [mark.bounding_box() for mark in drawn]
        assert any(box and box["width"] > 0 and box["height"] > 0 for box in boxes), chart


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Full-page PNG in ``tmp_path``; also in docs/screenshots/ when TAOFLOW_SCREENSHOTS=1."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(SCREENSHOT_ENV) == "1":
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS_DIR / f"{name}.png")
    return path


def submit_search(page: Page, **fields: str) -> None:
    """Fill ``form#search`` (inputs or selects by name) and submit it."""
    form = page.locator("form#search")
    for name, value in fields.items():
        control = form.locator(f"[name={name}]")
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    follow(page, lambda: form.locator("button[type=submit]").click())


def shown_tx_ids(page: Page) -> list[str]:
    return rows_attr(page, "table#transactions tr[data-tx-id]", "data-tx-id")


# ---- every page ---------------------------------------------------------------------------------


def page_paths(explorer: Explorer, network: Network) -> dict[str, str]:
    hotkey = top_miner(network)["hotkey"]
    return {
        "network": "/",
        "subnet": f"/subnet/{SUBNET}",
        "neuron": f"/subnet/{SUBNET}/neuron/{hotkey}",
        "ledger": "/ledger",
        "transaction": f"/ledger/tx/{quote(explorer.proposal_tx_id, safe='/')}",
        "governance": "/governance",
    }


@pytest.mark.parametrize(
    "name", ["network", "subnet", "neuron", "ledger", "transaction", "governance"]
)
def test_every_page_loads_clean(
    page: Page, explorer: Explorer, network: Network, name: str
) -> None:
    path = page_paths(explorer, network)[name]
    response = visit(page, explorer, path)
    page.wait_for_load_state("networkidle")
    assert page.locator("main, body").first.inner_text().strip(), f"{path} shows nothing"
    assert_page_frame(page, explorer, response)


# ---- network ------------------------------------------------------------------------------------


def test_network_page_shows_the_cli_supply_and_draws_it(
    page: Page, explorer: Explorer, network: Network, tmp_path: Path
) -> None:
    response = visit(page, explorer, "/")
    for test_id, key in SUPPLY_FIGURES.items():
        figure = page.locator(f'[data-testid="{test_id}"] span.tao')
        assert figure.count() == 1, f"{test_id}: {figure.count()} τ amounts"
        assert figure.get_attribute("data-rao") == str(network.supply[key]), test_id
    assert rows_attr(page, "table#subnets tr[data-subnet]", "data-subnet") == [SUBNET]
    assert page.locator("#verify").inner_text().strip(), "no verify status"
    assert_charts_drawn(page, ("supply",))
    screenshot(page, tmp_path, "network")
    assert_page_frame(page, explorer, response)


# ---- subnet -------------------------------------------------------------------------------------


def metagraph_cells(page: Page) -> list[dict[str, str]]:
    """uid, stake and emission (data-rao) of each metagraph row, in page order."""
    return list(
        page.eval_on_selector_all(
            "table#metagraph tr[data-uid]",
            """rows => rows.map(r => ({
                uid: r.getAttribute('data-uid'),
                stake_rao: r.querySelector('td[data-col="stake_rao"] span.tao')
                    ?.getAttribute('data-rao'),
                emission_rao: r.querySelector('td[data-col="emission_rao"] span.tao')
                    ?.getAttribute('data-rao'),
            }))""",
        )
    )


def test_subnet_page_shows_the_cli_metagraph_and_its_history(
    page: Page, explorer: Explorer, network: Network, tmp_path: Path
) -> None:
    response = visit(page, explorer, f"/subnet/{SUBNET}")
    shown = {row["uid"]: row for row in metagraph_cells(page)}
    assert len(shown) == len(metagraph_cells(page)), "a uid is shown twice"
    expected = {
        str(row["uid"]): {
            "uid": str(row["uid"]),
            "stake_rao": str(row["stake_rao"]),
            "emission_rao": str(row["emission_rao"]),
        }
        for row in network.metagraph
    }
    assert shown == expected
    assert page.locator("table#hyperparameters tr td").count() > 0
    states = page.locator('table#submissions td[data-col="state"]').all_inner_texts()
    assert len(states) >= sum(row["role"] == "miner" for row in network.metagraph)
    assert all(state.strip() for state in states), states
    assert page.locator('table#submissions td[data-col="reason"]').count() == len(states)
    assert_charts_drawn(page, SUBNET_CHARTS)
    screenshot(page, tmp_path, "subnet")
    assert_page_frame(page, explorer, response)


def shown_stakes(page: Page) -> list[int]:
    return [int(row["stake_rao"]) for row in metagraph_cells(page)]


def test_metagraph_sorts_by_stake_both_ways(
    page: Page, explorer: Explorer, network: Network
) -> None:
    visit(page, explorer, f"/subnet/{SUBNET}")
    before = shown_stakes(page)
    assert before != sorted(before, reverse=True), "the demo's uid order is already by stake"
    follow(page, lambda: page.locator('th a[data-sort="stake_rao"]').click())
    descending = shown_stakes(page)
    assert descending == sorted(before, reverse=True)
    follow(page, lambda: page.locator('th a[data-sort="stake_rao"]').click())
    assert shown_stakes(page) == sorted(before)
    assert sorted(row["uid"] for row in metagraph_cells(page)) == sorted(
        str(row["uid"]) for row in network.metagraph
    )
    assert_clean(page)


def recorded_flow_runs(tracking_uri: str) -> set[str]:
    """Prefect flow-run ids that the demo's MLflow epoch runs of ``SUBNET`` are tagged with."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(f"subnet-{SUBNET}")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    return {run.data.tags.get("taoflow.prefect_flow_run_id", "") for run in runs} - {""}


def test_subnet_page_links_its_epochs_to_prefect_and_mlflow(page: Page, explorer: Explorer) -> None:
    from taoflow.dashboards.explorer.app import ExplorerConfig, create_app

    tracking_uri = f"sqlite:///{explorer.home / 'mlflow.db'}"
    config = ExplorerConfig(
        home=explorer.home,
        prefect_ui_url=PREFECT_UI_URL,
        mlflow_ui_url=MLFLOW_UI_URL,
        mlflow_tracking_uri=tracking_uri,
    )
    with serve(create_app(config)) as base_url:
        linked = dataclasses.replace(explorer, base_url=base_url)
        watch(page, base_url)  # this page now watches the second server
        visit(page, linked, f"/subnet/{SUBNET}")
        deadline_s = time.monotonic() + LINKS_WAIT_S
        while page.locator("a.prefect-link").count() == 0 and time.monotonic() < deadline_s:
            page.wait_for_timeout(LINKS_POLL_S * 1000)
            page.reload()
        prefect = rows_attr(page, "a.prefect-link", "href")
        mlflow = rows_attr(page, "a.mlflow-link", "href")
        assert_clean(page)
    assert prefect, f"no Prefect link within {LINKS_WAIT_S:.0f} s"
    flow_runs = {href.rsplit("/", 1)[-1] for href in prefect}
    assert flow_runs <= recorded_flow_runs(tracking_uri)
    assert all(href.startswith(f"{PREFECT_UI_URL}/runs/flow-run/") for href in prefect)
    assert mlflow and all(href.startswith(f"{MLFLOW_UI_URL}/") for href in mlflow)


# ---- neuron -------------------------------------------------------------------------------------


def test_neuron_page_from_the_metagraph_link(
    page: Page, explorer: Explorer, network: Network, tmp_path: Path
) -> None:
    miner = top_miner(network)
    visit(page, explorer, f"/subnet/{SUBNET}")
    link = page.locator(f'table#metagraph tr[data-uid="{miner["uid"]}"] a[href*="/neuron/"]')
    assert link.count() == 1
    with page.expect_navigation() as navigation:
        link.click()
    response = navigation.value
    assert response is not None and response.status == 200
    assert f"/subnet/{SUBNET}/neuron/" in page.url
    assert miner["hotkey"][:8] in page.locator("body").inner_text()
    assert str(miner["stake_rao"]) in {rao for rao, _ in tao_spans(page)}, "stake now"
    assert_charts_drawn(page, NEURON_CHARTS)
    assert page.locator("table#submissions tr td").count() > 0
    assert page.locator("section#explain").inner_text().strip(), "empty explain section"
    screenshot(page, tmp_path, "neuron")
    assert_page_frame(page, explorer, response)


# ---- ledger -------------------------------------------------------------------------------------


def test_ledger_search_by_tx_id_shows_exactly_that_transaction(
    page: Page, explorer: Explorer
) -> None:
    visit(page, explorer, "/ledger")
    listed = shown_tx_ids(page)
    assert len(listed) > 1
    wanted = listed[-1]
    submit_search(page, q=wanted)
    assert shown_tx_ids(page) == [wanted]
    assert_clean(page)


def test_ledger_search_by_account_shows_only_its_transactions(
    page: Page, explorer: Explorer, network: Network
) -> None:
    account = top_miner(network)["hotkey"]
    expected = [row["tx_id"] for row in ledger_log(explorer, "--account", account)]
    assert 0 < len(expected) < len(network.log_tx_ids)
    visit(page, explorer, "/ledger")
    submit_search(page, account=account)
    assert sorted(shown_tx_ids(page)) == sorted(expected)
    assert_clean(page)


def test_ledger_kind_filter(page: Page, explorer: Explorer) -> None:
    expected = [row["tx_id"] for row in ledger_log(explorer, "--kind", "add_stake")]
    assert expected, "the demo network has no add_stake entries"
    visit(page, explorer, "/ledger")
    submit_search(page, kind="add_stake")
    assert sorted(shown_tx_ids(page)) == sorted(expected)
    assert_clean(page)


def test_ledger_pager_walks_the_log_newest_first(
    page: Page, explorer: Explorer, network: Network
) -> None:
    newest = network.log_tx_ids[: 2 * PAGER_PAGE_SIZE]
    visit(page, explorer, f"/ledger?page_size={PAGER_PAGE_SIZE}")
    first = shown_tx_ids(page)
    assert first == newest[:PAGER_PAGE_SIZE]
    assert page.locator("a[rel=prev]").count() == 0
    follow(page, lambda: page.locator("a[rel=next]").first.click())
    assert shown_tx_ids(page) == newest[PAGER_PAGE_SIZE:]
    follow(page, lambda: page.locator("a[rel=prev]").first.click())
    assert shown_tx_ids(page) == first
    assert_clean(page)


def shown_balances(page: Page) -> dict[str, str]:
    """coldkey → data-rao of each row of ``table#balances``."""
    return dict(
        page.eval_on_selector_all(
            "table#balances tr[data-coldkey]",
            """rows => rows.map(r => [r.getAttribute('data-coldkey'),
                r.querySelector('span.tao')?.getAttribute('data-rao')])""",
        )
    )


def test_ledger_batches_and_balances_as_of_an_epoch(page: Page, explorer: Explorer) -> None:
    from taoflow.ledger.store import Ledger

    records = Ledger.open(explorer.home / "ledger").records()
    balances = {
        epoch: {
            row["coldkey"]: str(row["balance_rao"])
            for row in taoflow_json(explorer.home, "ledger", "balance", "--as-of-epoch", epoch)
        }
        for epoch in ("0", "1")
    }
    assert balances["0"] != balances["1"], "no balance changed in epoch 1 of the demo"
    visit(page, explorer, "/ledger")
    batches = rows_attr(page, "table#batches tr[data-batch]", "data-batch")
    assert sorted(map(int, batches)) == [record.batch_no for record in records]
    for epoch, expected in balances.items():
        visit(page, explorer, f"/ledger?as_of_epoch={epoch}&subnet={SUBNET}")
        assert shown_balances(page) == expected, f"balances as of epoch {epoch}"
    assert_clean(page)


def test_transaction_page_shows_the_ledger_row(page: Page, explorer: Explorer) -> None:
    row = next(r for r in ledger_log(explorer, "--kind", "emission_incentive"))
    response = visit(page, explorer, f"/ledger/tx/{quote(row['tx_id'], safe='/')}")
    assert row["tx_id"] in page.locator("body").inner_text()
    assert str(row["amount_rao"]) in {rao for rao, _ in tao_spans(page)}
    assert_page_frame(page, explorer, response)


# ---- governance ---------------------------------------------------------------------------------


def assert_no_injected_markup(page: Page) -> None:
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    sources = rows_attr(page, "script", "src")
    assert all(src and src.startswith("/static/") for src in sources), sources
    assert page.locator('img[src="x"]').count() == 0


def test_hostile_proposal_title_renders_as_text(page: Page, explorer: Explorer) -> None:
    response = visit(page, explorer, "/governance")
    page.wait_for_load_state("networkidle")
    row = page.locator(f'table#proposals tr[data-proposal="{explorer.proposal_tx_id}"]')
    assert row.count() == 1
    assert row.locator("td.title").inner_text() == XSS_TITLE
    assert row.locator("svg.tally-bar").count() == 1  # the stake-weighted tally, drawn
    assert row.locator("[data-status]").get_attribute("data-status") == "open"
    assert_no_injected_markup(page)
    visit(page, explorer, f"/governance/proposal/{quote(explorer.proposal_tx_id, safe='/')}")
    page.wait_for_load_state("networkidle")
    assert page.locator("table#proposal td.title").inner_text() == XSS_TITLE
    assert_no_injected_markup(page)
    visit(page, explorer, f"/ledger/tx/{quote(explorer.proposal_tx_id, safe='/')}")
    page.wait_for_load_state("networkidle")
    assert_no_injected_markup(page)
    assert_page_frame(page, explorer, response)
