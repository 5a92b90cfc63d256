"""The explorer's routes in-process (no browser): every page and its ``/api`` twin over a copy of
the demo network, numbers against the ledger and the CLI, bad parameters, methods, headers and
escaping.

Invariants of this module: one private copy of ``demo_home`` (plus one proposal with a hostile
title) serves every test but the transfer test, which commits to its own copy; the copy's ledger
directory is fingerprinted before the first request and compared in the module's last test, so
any write by the explorer fails it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import pytest
from explorer_helpers import (
    SUBNET,
    account_of,
    copy_home,
    ledger_digests,
    propose,
    propose_change,
    transfer,
    vote,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from typer.testing import CliRunner

from taoflow.cli.app import app as cli_app
from taoflow.dashboards.explorer.app import ExplorerConfig, create_app
from taoflow.dashboards.explorer.ledger_pages import KINDS, PAGE_SIZE_DEFAULT
from taoflow.dashboards.explorer.pages import Labels
from taoflow.dashboards.explorer.subnet_pages import SORT_COLUMNS
from taoflow.ledger.governance import CHOICE_AGAINST, CHOICE_FOR, PROPOSAL_OPTIONS
from taoflow.ledger.store import Ledger
from taoflow.names import account_labels
from taoflow.queries import metagraph, submission_states
from taoflow.tasks.audit.explain import explain

XSS_TITLE: Final = "<script>alert(1)</script>"
XSS_ESCAPED: Final = "&lt;script&gt;alert(1)&lt;/script&gt;"
XSS_TEXT: Final = '<b onmouseover="alert(2)">why</b>'
VOTERS: Final = (("owner", CHOICE_FOR), ("validator-0", CHOICE_AGAINST))
"""Who votes on the module's proposal, and how (wallets of the demo network)."""
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"
MINER: Final = "miner-3/default"
"""A demo hotkey that every demo epoch records."""
PAGE_SIZE_ALL: Final = 200
"""Large enough for every row of the demo ledger on one page."""
TRANSFER_RAO: Final = 1_234_567_891
OTHER_METHODS: Final = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS")
SUPPLY_TERMS: Final = ("issued", "staked", "free", "burned", "locked")
VERIFY_WAIT_S: Final = 120.0
"""Longest wait for the background verification (a child ``taoflow ledger verify``) to end."""


@dataclass(frozen=True)
class Network:
    """The module's explorer over its copy of the demo network."""

    home: Path
    app: FastAPI
    client: TestClient
    proposal_tx_id: str
    ledger_before: dict[str, str]

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.home / "ledger")

    def account(self, name: str) -> str:
        return account_of(self.home, name)

    def json(self, url: str) -> Any:
        response = self.client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == JSON
        return response.json()

    def html(self, url: str) -> str:
        response = self.client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == HTML
        return response.text


@pytest.fixture(scope="module")
def net(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("explorer-api") / "home")
    proposal_tx_id = propose(home, title=XSS_TITLE, text=XSS_TEXT)
    for wallet, choice in VOTERS:
        vote(home, wallet=wallet, proposal_id=proposal_tx_id, choice=choice)
    before = ledger_digests(home)
    app = create_app(ExplorerConfig(home=home))
    with TestClient(app) as client:
        yield Network(home, app, client, proposal_tx_id, before)


class Parsed(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script> element."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_bodies.append(data)

    def rao_after(self, attribute: str, value: str) -> int:
        """``data-rao`` of the first amount inside the only element whose ``attribute`` is
        ``value`` (the first amount after it in page order)."""
        (start,) = [i for i, (_, attrs) in enumerate(self.tags) if attrs.get(attribute) == value]
        return next(int(str(a["data-rao"])) for _, a in self.tags[start:] if "data-rao" in a)

    def values(self, attribute: str, *, tag: str | None = None) -> list[str]:
        """The value of ``attribute`` on every (``tag``) element that has it, in page order."""
        return [
            attrs[attribute] or ""
            for name, attrs in self.tags
            if attribute in attrs and (tag is None or name == tag)
        ]


def table_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every committed row, newest first (the ledger page's order)."""
    rows = ledger.table().to_pylist()
    return sorted(rows, key=lambda r: (-r["batch_no"], -r["row_no"]))


def tx_ids(page: dict[str, Any]) -> list[str]:
    return [row["tx_id"] for row in page["transactions"]]


def roundtrip(value: Any) -> Any:
    """``value`` as the JSON twin sends it (NaN and infinities become null, tuples lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.loads(json.dumps(plain(value), allow_nan=False))


# ---- every route answers ------------------------------------------------------------------


def page_urls(net: Network) -> list[str]:
    hotkey = net.account(MINER)
    epoch_tx = next(r["tx_id"] for r in table_rows(net.ledger) if r["kind"] == "emission_incentive")
    return [
        "/",
        f"/subnet/{SUBNET}",
        f"/subnet/{SUBNET}?sort=stake_rao&order=desc",
        f"/subnet/{SUBNET}/neuron/{hotkey}",
        f"/subnet/{SUBNET}/neuron/{hotkey}?epoch=0",
        "/ledger",
        f"/ledger?kind=register&page_size=5&page=1&account=owner&as_of_epoch=0&subnet={SUBNET}",
        f"/ledger/tx/{epoch_tx}",
        f"/ledger/tx/{net.proposal_tx_id}",
        "/governance",
        f"/governance/proposal/{net.proposal_tx_id}",
    ]


def test_every_page_and_its_json_twin_answer_200(net: Network) -> None:
    for url in page_urls(net):
        net.html(url)
        twin = "/api/network" if url == "/" else "/api" + url
        body = net.json(twin)
        assert isinstance(body, dict) and body


def test_static_files_are_served_with_their_types(net: Network) -> None:
    css = net.client.get("/static/explorer.css")
    js = net.client.get("/static/explorer.js")
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_head_answers_like_get_without_a_body(net: Network) -> None:
    for url in ("/", "/api/network", "/ledger", f"/api/subnet/{SUBNET}"):
        response = net.client.head(url)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-type"] == (JSON if url.startswith("/api") else HTML)


# ---- the network page ---------------------------------------------------------------------


def test_network_supply_equals_the_ledger_state_and_the_cli(net: Network) -> None:
    supply = net.json("/api/network")["supply"]
    state = net.ledger.state().supply()
    assert {
        "issued_rao": supply["issued_rao"],
        "burned_rao": supply["burned_rao"],
        "balances_rao": supply["free_rao"],
        "stakes_rao": supply["staked_rao"],
        "locked_rao": supply["locked_rao"],
    } == {
        key: state[key]
        for key in ("issued_rao", "burned_rao", "balances_rao", "stakes_rao", "locked_rao")
    }
    result = CliRunner().invoke(cli_app, ["ledger", "supply", "--json", "--home", str(net.home)])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)
    assert (cli["issued_rao"], cli["burned_rao"]) == (supply["issued_rao"], supply["burned_rao"])
    assert (cli["balances_rao"], cli["stakes_rao"], cli["locked_rao"]) == (
        supply["free_rao"],
        supply["staked_rao"],
        supply["locked_rao"],
    )
    assert supply["identity_holds"] is True and cli["identity_holds"] is True


def test_supply_history_ends_at_the_state_and_every_point_holds_the_identity(net: Network) -> None:
    supply = net.json("/api/network")["supply"]
    history = supply["history"]
    batches = len(net.ledger.records())
    assert history["batch_no"] == list(range(1, batches + 1))
    assert supply["history_matches_state"] is True
    last = {name: values[-1] for name, values in history.items()}
    assert (last["issued_rao"], last["staked_rao"], last["free_rao"]) == (
        supply["issued_rao"],
        supply["staked_rao"],
        supply["free_rao"],
    )
    assert (last["burned_rao"], last["locked_rao"]) == (supply["burned_rao"], supply["locked_rao"])
    for i in range(batches):
        issued, burned = history["issued_rao"][i], history["burned_rao"][i]
        held = history["free_rao"][i] + history["staked_rao"][i] + history["locked_rao"][i]
        assert issued - burned == held, f"batch {history['batch_no'][i]}"
    for i, batch_no in enumerate(history["batch_no"]):
        state = net.ledger.state_as_of(batch_no).supply()
        assert history["issued_rao"][i] == state["issued_rao"]
        assert history["staked_rao"][i] == state["stakes_rao"]


def test_network_lists_the_subnet_with_its_last_epoch_batch(net: Network) -> None:
    page = net.json("/api/network")
    state = net.ledger.state()
    (row,) = page["subnets"]
    last_epoch = state.last_epoch[SUBNET]
    batch_no = net.ledger.batch_of_epoch(SUBNET, last_epoch)
    assert batch_no is not None
    assert (row["name"], row["last_epoch"], row["last_batch_no"]) == (SUBNET, last_epoch, batch_no)
    assert row["last_batch_hash"] == net.ledger.records()[batch_no - 1].batch_hash
    assert row["uids"] == len(state.neurons[SUBNET]) and row["owner_label"] == "owner"
    assert row["registration_cost_rao"] == state.registration_cost(SUBNET)
    html = Parsed(net.html("/"))
    assert html.values("data-subnet", tag="tr") == [SUBNET]
    for term in SUPPLY_TERMS:
        assert html.rao_after("data-testid", f"supply-{term}") == page["supply"][f"{term}_rao"]
    assert html.values("data-chart", tag="svg") == ["supply"]


# ---- the subnet page ----------------------------------------------------------------------


def test_metagraph_rows_equal_the_cli_metagraph(net: Network) -> None:
    page = net.json(f"/api/subnet/{SUBNET}")
    expected = roundtrip(metagraph(net.ledger, subnet=SUBNET))
    labels = account_labels(net.home / "wallets")
    rows = page["metagraph"]
    assert [{k: v for k, v in row.items() if k != "label"} for row in rows] == expected
    assert [row["label"] for row in rows] == [labels[row["hotkey"]] for row in expected]
    assert page["last_epoch"] == net.ledger.state().last_epoch[SUBNET]
    html = Parsed(net.html(f"/subnet/{SUBNET}"))
    assert html.values("data-uid", tag="tr") == [str(row["uid"]) for row in expected]


def _sort_key(row: dict[str, Any], column: str) -> Any:
    return row["label"] if column == "hotkey" else row[column]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("column", SORT_COLUMNS)
def test_sorting_the_metagraph_orders_every_row(net: Network, column: str, order: str) -> None:
    page = net.json(f"/api/subnet/{SUBNET}?sort={column}&order={order}")
    rows = page["metagraph"]
    assert (page["sort"], page["order"]) == (column, order)
    assert sorted(row["uid"] for row in rows) == list(
        range(len(net.ledger.state().neurons[SUBNET]))
    )
    present = [_sort_key(r, column) for r in rows if _sort_key(r, column) is not None]
    missing = [r for r in rows if _sort_key(r, column) is None]
    assert [_sort_key(r, column) for r in rows] == present + [None] * len(missing)
    assert present == sorted(present, reverse=order == "desc")
    html = Parsed(net.html(f"/subnet/{SUBNET}?sort={column}&order={order}"))
    assert html.values("data-uid", tag="tr") == [str(r["uid"]) for r in rows]


def test_stake_descending_breaks_ties_by_uid(net: Network) -> None:
    rows = net.json(f"/api/subnet/{SUBNET}?sort=stake_rao&order=desc")["metagraph"]
    expected = sorted(
        metagraph(net.ledger, subnet=SUBNET), key=lambda r: (-r["stake_rao"], r["uid"])
    )
    assert [r["uid"] for r in rows] == [r["uid"] for r in expected]


def test_subnet_histories_are_the_ledger_rows(net: Network) -> None:
    page = net.json(f"/api/subnet/{SUBNET}")
    ledger = net.ledger
    last = ledger.state().last_epoch[SUBNET]
    table = ledger.table().to_pylist()
    emission = page["history"]["emission"]
    assert emission["epoch"] == list(range(last + 1))
    for i, epoch in enumerate(emission["epoch"]):
        paid = [r for r in table if r["subnet"] == SUBNET and r["epoch"] == epoch]
        for column, kind in (
            ("owner_rao", "emission_owner"),
            ("miners_rao", "emission_incentive"),
            ("validators_rao", "emission_dividend"),
            ("delegators_rao", "emission_delegator"),
        ):
            assert emission[column][i] == sum(r["amount_rao"] for r in paid if r["kind"] == kind)
    registrations = [r for r in table if r["kind"] == "register" and r["subnet"] == SUBNET]
    assert page["history"]["registration_cost"] == {
        "batch_no": [r["batch_no"] for r in registrations],
        "burned_rao": [r["amount_rao"] for r in registrations],
    }
    incentive = page["history"]["incentive"]
    assert incentive, "no incentive series"
    for hotkey, series in incentive.items():
        recorded = [
            ledger.epoch_records(SUBNET, e, names=("uids",))["uids"].to_pylist()
            for e in series["epoch"]
        ]
        values = [next(r["incentive"] for r in rows if r["hotkey"] == hotkey) for rows in recorded]
        assert series["value"] == values


def test_subnet_json_amounts_are_exact_integers(net: Network) -> None:
    page = net.json(f"/api/subnet/{SUBNET}")
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key.endswith("_rao") and value is not None:
            found.append(key)
            assert type(value) is int, f"{key} = {value!r}"

    walk(page)
    assert {"stake_rao", "emission_rao", "registration_cost_rao", "burned_rao"} <= set(found)
    assert {"owner_rao", "miners_rao", "validators_rao"} <= set(found)


def test_subnet_hyperparameters_and_submissions(net: Network) -> None:
    page = net.json(f"/api/subnet/{SUBNET}")
    config = net.ledger.state().subnets[SUBNET].config
    assert page["hyperparameters"]["emission_share"] == config.emission_share
    expected = submission_states(net.ledger, subnet=SUBNET)
    expected.sort(key=lambda r: (-r["block"], r["uid"]))
    shown = [{k: v for k, v in row.items() if k != "label"} for row in page["submissions"]]
    commits = [r for r in net.ledger.table().to_pylist() if r["kind"] == "submission_commit"]
    assert shown == roundtrip(expected) and len(expected) == len(commits)
    assert {row["state"] for row in expected} == {"evaluated"}
    html = Parsed(net.html(f"/subnet/{SUBNET}"))
    for column in ("state", "reason"):
        cells = [a for t, a in html.tags if t == "td" and a.get("data-col") == column]
        assert len(cells) == len(expected), column
    charts = html.values("data-chart", tag="svg")
    assert sorted(charts) == ["dividends", "emission", "incentive", "registration_cost"]


# ---- the neuron page ----------------------------------------------------------------------


def test_neuron_history_equals_every_uids_record(net: Network) -> None:
    hotkey = net.account(MINER)
    page = net.json(f"/api/subnet/{SUBNET}/neuron/{hotkey}")
    ledger = net.ledger
    last = ledger.state().last_epoch[SUBNET]
    expected: dict[str, list[Any]] = {k: [] for k in page["history"]}
    for epoch in range(last + 1):
        rows = ledger.epoch_records(SUBNET, epoch, names=("uids",))["uids"].to_pylist()
        (row,) = [r for r in rows if r["hotkey"] == hotkey]
        for key in expected:
            value = epoch if key == "epoch" else row[key]
            expected[key].append(None if isinstance(value, float) and math.isnan(value) else value)
    assert page["history"] == expected
    assert set(expected) == {
        "epoch",
        "uid",
        "score",
        "incentive",
        "dividends",
        "validator_trust",
        "emission_rao",
        "stake_rao",
        "error",
    }
    assert (page["hotkey"], page["label"], page["uid"]) == (
        hotkey,
        MINER,
        ledger.state().uid_of(subnet=SUBNET, hotkey=hotkey),
    )
    assert page["stake_rao"] == ledger.state().hotkey_stake(hotkey)


@pytest.mark.parametrize("epoch", [None, 0])
def test_neuron_explain_equals_the_audit_explain(net: Network, epoch: int | None) -> None:
    hotkey = net.account(MINER)
    query = "" if epoch is None else f"?epoch={epoch}"
    page = net.json(f"/api/subnet/{SUBNET}/neuron/{hotkey}{query}")
    chosen = net.ledger.state().last_epoch[SUBNET] if epoch is None else epoch
    assert page["explain_epoch"] == chosen
    names = account_labels(net.home / "wallets")  # the page names accounts as the CLI does
    expected = explain(
        net.ledger, subnet=SUBNET, hotkey=hotkey, epoch=chosen, labels=names
    ).to_dict()
    assert page["explain"] == roundtrip(expected)
    assert page["explain"]["coldkey"]["name"] == MINER.split("/")[0]
    assert page["explain"]["epoch"] == chosen and page["explain"]["ok"] is True
    html = Parsed(net.html(f"/subnet/{SUBNET}/neuron/{hotkey}{query}"))
    assert html.values("id", tag="section").count("explain") == 1
    assert sorted(html.values("data-chart", tag="svg")) == [
        "emission",
        "incentive",
        "score",
        "stake",
    ]


# ---- the ledger page ----------------------------------------------------------------------


def test_ledger_first_page_is_the_newest_rows(net: Network) -> None:
    page = net.json("/api/ledger")
    rows = table_rows(net.ledger)
    assert tx_ids(page) == [r["tx_id"] for r in rows[:PAGE_SIZE_DEFAULT]]
    assert page["has_next"] is (len(rows) > PAGE_SIZE_DEFAULT)
    records = net.ledger.records()
    assert [b["batch_no"] for b in page["batches"]] == [r.batch_no for r in reversed(records)]
    assert [b["batch_hash"] for b in page["batches"]] == [r.batch_hash for r in reversed(records)]
    html = Parsed(net.html("/ledger"))
    assert html.values("data-tx-id", tag="tr") == tx_ids(page)
    assert html.values("data-batch", tag="tr") == [str(r.batch_no) for r in reversed(records)]


def test_ledger_pages_cover_every_row_once(net: Network) -> None:
    rows = [r["tx_id"] for r in table_rows(net.ledger)]
    size = 7
    seen: list[str] = []
    for page_no in range(math.ceil(len(rows) / size)):
        page = net.json(f"/api/ledger?page={page_no}&page_size={size}")
        assert page["has_next"] is (page_no < math.ceil(len(rows) / size) - 1)
        seen += tx_ids(page)
    assert seen == rows
    beyond = net.json(f"/api/ledger?page={len(rows)}&page_size={size}")
    assert (beyond["transactions"], beyond["has_next"]) == ([], False)
    html = Parsed(net.html(f"/ledger?page=1&page_size={size}"))
    assert sorted(html.values("rel", tag="a")) == ["next", "prev"]
    html = Parsed(net.html(f"/ledger?page=0&page_size={size}"))
    assert html.values("rel", tag="a") == ["next"]


def test_ledger_search_by_exact_id_and_by_prefix(net: Network) -> None:
    page = net.json(f"/api/ledger?q={net.proposal_tx_id}")
    assert tx_ids(page) == [net.proposal_tx_id]
    prefix = f"epoch/{SUBNET}/1/"
    assert len(prefix) >= 8
    page = net.json(f"/api/ledger?q={prefix}&page_size={PAGE_SIZE_ALL}")
    expected = [r["tx_id"] for r in table_rows(net.ledger) if r["tx_id"].startswith(prefix)]
    assert tx_ids(page) == expected and len(expected) > 1
    short = f"epoch/{SUBNET[0]}"  # under 8 characters: exact ids only
    assert len(short) < 8 and tx_ids(net.json(f"/api/ledger?q={short}")) == []
    assert tx_ids(net.json(f"/api/ledger?q={'a' * 256}")) == []


def test_ledger_search_by_account_id_and_wallet_name(net: Network) -> None:
    owner = net.account("owner")
    by_id = net.json(f"/api/ledger?account={owner}&page_size={PAGE_SIZE_ALL}")
    by_name = net.json(f"/api/ledger?account=owner&page_size={PAGE_SIZE_ALL}")
    expected = [
        r["tx_id"]
        for r in table_rows(net.ledger)
        if owner in (r["coldkey"], r["hotkey"], r["dest"])
    ]
    assert tx_ids(by_id) == expected and tx_ids(by_name) == expected
    assert net.proposal_tx_id in expected
    assert by_name["query"]["account"] == owner


@pytest.mark.parametrize("kind", ["register", "emission_incentive", "proposal", "epoch"])
def test_ledger_search_by_kind(net: Network, kind: str) -> None:
    assert kind in KINDS
    page = net.json(f"/api/ledger?kind={kind}&page_size={PAGE_SIZE_ALL}")
    expected = [r["tx_id"] for r in table_rows(net.ledger) if r["kind"] == kind]
    assert tx_ids(page) == expected
    assert {row["kind"] for row in page["transactions"]} <= {kind}


def test_balances_as_of_epoch_zero_are_the_state_at_its_batch(net: Network) -> None:
    ledger = net.ledger
    batch_no = ledger.batch_of_epoch(SUBNET, 0)
    assert batch_no is not None
    page = net.json(f"/api/ledger?as_of_epoch=0&subnet={SUBNET}&page_size={PAGE_SIZE_ALL}")
    then = ledger.state_as_of(batch_no).balances
    expected = sorted(((k, v) for k, v in then.items() if v), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["coldkey"], r["balance_rao"]) for r in page["balances"]["rows"]] == expected
    assert page["balances"]["sum_rao"] == sum(then.values())
    assert page["balances"]["total"] == len(expected)
    now = net.json("/api/ledger")["balances"]["rows"]
    assert [(r["coldkey"], r["balance_rao"]) for r in now] != expected
    assert page["as_of_batch"] == batch_no
    rows = [r["tx_id"] for r in table_rows(ledger) if r["batch_no"] <= batch_no]
    assert tx_ids(page) == rows
    html = Parsed(net.html(f"/ledger?as_of_epoch=0&subnet={SUBNET}"))
    balances = [a["data-rao"] for t, a in html.tags if t == "span" and "data-rao" in a]
    assert str(expected[0][1]) in balances


def test_transaction_page_of_an_epoch_entry_with_slashes(net: Network) -> None:
    rows = table_rows(net.ledger)
    row = next(r for r in rows if r["kind"] == "emission_incentive")
    assert row["tx_id"].count("/") >= 3
    page = net.json(f"/api/ledger/tx/{row['tx_id']}")
    assert (page["tx_id"], page["kind"], page["amount_rao"]) == (
        row["tx_id"],
        row["kind"],
        row["amount_rao"],
    )
    assert (page["batch_no"], page["row_no"]) == (row["batch_no"], row["row_no"])
    assert page["batch_hash"] == net.ledger.records()[row["batch_no"] - 1].batch_hash
    html = net.html(f"/ledger/tx/{row['tx_id']}")
    assert row["tx_id"] in html and f'data-rao="{row["amount_rao"]}"' in html


# ---- governance and escaping --------------------------------------------------------------


def test_a_script_title_renders_as_text_and_the_json_keeps_it_raw(net: Network) -> None:
    page = net.json("/api/governance")
    (proposal,) = page["proposals"]
    assert (proposal["id"], proposal["title"]) == (net.proposal_tx_id, XSS_TITLE)
    assert (proposal["kind"], proposal["text"]) == ("signal", XSS_TEXT)
    assert proposal["proposer_label"] == "owner" and page["total"] == 1
    for url in ("/governance", f"/governance/proposal/{net.proposal_tx_id}"):
        html = net.html(url)
        assert XSS_ESCAPED in html, url
        assert XSS_TITLE not in html and "<b onmouseover" not in html
        parsed = Parsed(html)
        assert parsed.script_bodies == [] and "b" not in [t for t, _ in parsed.tags]
    assert Parsed(net.html("/governance")).values("data-proposal", tag="tr") == [net.proposal_tx_id]
    tx_html = net.html(f"/ledger/tx/{net.proposal_tx_id}")
    assert XSS_TITLE not in tx_html and "<b onmouseover" not in tx_html


def test_the_tally_is_the_ledgers_stake_weighted_tally(net: Network) -> None:
    state = net.ledger.state()
    record = state.proposals[net.proposal_tx_id]
    expected = state.proposal_tally(net.proposal_tx_id)
    params = state.governance
    (proposal,) = net.json("/api/governance")["proposals"]
    detail = net.json(f"/api/governance/proposal/{net.proposal_tx_id}")["proposal"]
    voters = detail.pop("voters")
    assert detail == proposal
    tally = proposal["tally"]
    assert {name: tally[name] for name in expected.to_payload()} == expected.to_payload()
    assert proposal["options"] == list(PROPOSAL_OPTIONS)
    assert proposal["votes"] == [expected.for_rao, expected.against_rao, expected.abstain_rao]
    # the two voters cast their own power (owner for, validator-0 against); nobody abstained
    owner, validator = net.account("owner"), net.account("validator-0")
    assert tally["for_rao"] == record.power.power_rao(owner) > 0
    assert tally["against_rao"] >= record.power.power_rao(validator) > 0
    assert tally["abstain_rao"] == 0 and tally["voters"] == len(VOTERS)
    assert sorted((v["label"], v["choice"], v["power_rao"]) for v in voters) == sorted(
        [
            ("owner", "for", record.power.power_rao(owner)),
            ("validator-0", "against", record.power.power_rao(validator)),
        ]
    )
    detail_html = net.html(f"/governance/proposal/{net.proposal_tx_id}")
    assert Parsed(detail_html).values("data-voter", tag="tr") == [v["coldkey"] for v in voters]
    assert tally["turnout_rao"] == tally["for_rao"] + tally["against_rao"]
    assert tally["total_rao"] == record.power.total_rao
    assert tally["turnout_share"] == tally["turnout_rao"] / tally["total_rao"]
    assert (tally["quorum_ppm"], tally["pass_ppm"]) == (params.quorum_ppm, params.pass_ppm)
    assert tally["final"] is False  # still open: the votes so far
    assert (proposal["status"], proposal["deposit"]) == ("open", "locked")
    assert proposal["deposit_rao"] == params.deposit_min_rao
    assert (proposal["opens_block"], proposal["closes_block"]) == (
        record.opens_block,
        record.opens_block + params.voting_blocks_min,
    )
    assert proposal["changes"] == [] and proposal["backtest"] is None
    assert proposal["activation"] == {"state": "none", "effective_from": [], "problem": ""}
    html = net.html("/governance")
    for part in ("for", "against"):
        assert f'<rect class="{part}"' in html
    assert f'data-rao="{tally["for_rao"]}"' in html and f'data-rao="{tally["against_rao"]}"' in html


def test_an_unknown_proposal_is_a_404(net: Network) -> None:
    response = net.client.get("/api/governance/proposal/proposal/none")
    assert response.status_code == 404
    assert response.json() == {"error": "no proposal 'proposal/none' in the ledger"}


# ---- a transaction committed while the explorer runs ---------------------------------------


def test_a_new_transfer_shows_up_after_a_refresh(demo_home: Path, tmp_path: Path) -> None:
    home = copy_home(demo_home, tmp_path / "home")
    app = create_app(ExplorerConfig(home=home))
    client = TestClient(app)
    tx_id = transfer(home, source="owner", dest="miner-0", amount_rao=TRANSFER_RAO)
    app.state.explorer.data.refresh(force=True)
    found = client.get(f"/api/ledger/tx/{tx_id}").json()
    owner, miner = account_of(home, "owner"), account_of(home, "miner-0")
    assert (found["kind"], found["coldkey"], found["dest"]) == ("transfer", owner, miner)
    assert found["amount_rao"] == TRANSFER_RAO
    assert found["batch_no"] == len(Ledger(home / "ledger").records())
    for query in (f"q={tx_id}", f"q={tx_id[:12]}", "account=miner-0", "kind=transfer"):
        page = client.get(f"/api/ledger?{query}").json()
        assert tx_ids(page)[0] == tx_id, query
    assert tx_ids(client.get("/api/ledger?kind=transfer").json()) == [tx_id]
    supply = client.get("/api/network").json()["supply"]
    state = Ledger(home / "ledger").state().supply()
    assert (supply["burned_rao"], supply["free_rao"]) == (
        state["burned_rao"],
        state["balances_rao"],
    )
    assert supply["history_matches_state"] is True


def test_a_backtest_is_checked_against_its_hash_and_its_change(
    demo_home: Path, tmp_path: Path
) -> None:
    from taoflow.settings import Settings
    from taoflow.tasks.governance.backtest import run_backtest, store_backtest, summary_lines

    home = copy_home(demo_home, tmp_path / "home")
    change = {"yuma": {"kappa_u16": 39_321}}
    backtest = run_backtest(Ledger(home / "ledger"), subnet=SUBNET, values=change, epochs=2)
    report = store_backtest(Settings(home=home).governance_backtests_dir, backtest)
    sha = backtest.sha256
    honest = propose_change(home, title="Lower kappa", changes=change, backtest_sha256=sha)
    other = {"yuma": {"kappa_u16": 30_000}}
    misnamed = propose_change(home, title="Other kappa", changes=other, backtest_sha256=sha)
    app = create_app(ExplorerConfig(home=home))
    client = TestClient(app)
    before = ledger_digests(home), report.read_bytes()

    def backtest_of(proposal_id: str) -> Any:
        return client.get(f"/api/governance/proposal/{proposal_id}").json()["proposal"]["backtest"]

    found = backtest_of(honest)
    assert (found["sha256"], found["sha_short"]) == (sha, sha[:12])
    assert (found["stored"], found["matches"], found["describes_change"]) == (True, True, True)
    names = app.state.explorer.labels.names  # hotkeys by the home's wallet names
    assert found["summary_lines"] == summary_lines(backtest, labels=names)
    assert found["problem"] == ""
    assert found["links"] == []  # no tracking store configured
    html = client.get(f"/governance/proposal/{honest}").text
    assert f'data-full="{sha}"' in html and "matches" in html
    wrong = backtest_of(misnamed)
    assert (wrong["matches"], wrong["describes_change"]) == (True, False)
    assert wrong["problem"].startswith(f"backtest report {sha[:12]} describes the change ")
    assert (ledger_digests(home), report.read_bytes()) == before  # the explorer wrote nothing
    report.chmod(0o644)
    report.write_bytes(report.read_bytes() + b"tampered")
    changed = backtest_of(honest)
    assert (changed["stored"], changed["matches"], changed["summary_lines"]) == (True, False, [])
    assert changed["problem"] == (
        f"backtest report {sha[:12]} does not match its hash: the file was changed"
    )
    report.unlink()
    gone = backtest_of(honest)
    assert (gone["stored"], gone["matches"]) == (False, False)
    assert gone["problem"].startswith(f"no backtest report {sha[:12]} in ")


def test_a_backtest_links_to_its_mlflow_run_once_looked_up(tmp_path: Path) -> None:
    from taoflow.dashboards.explorer.links import EpochLinks
    from taoflow.tasks.track import create_subnet_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sha = "ab" * 32
    tags = {"taoflow.kind": "backtest", "taoflow.backtest_sha256": sha}
    client, run_id = create_subnet_run(
        tracking_uri=uri,
        artifacts_dir=tmp_path / "mlruns",
        subnet=SUBNET,
        run_name="backtest",
        tags=tags,
    )
    experiment_id = client.get_run(run_id).info.experiment_id
    links = EpochLinks(
        prefect_ui_url=None, mlflow_ui_url="http://127.0.0.1:5000", mlflow_tracking_uri=uri
    )
    links.look_up_now(SUBNET)
    (link,) = links.for_backtest(SUBNET, sha)
    assert (link.kind, link.label) == ("mlflow", f"MLflow run · backtest {sha[:12]}")
    assert link.url.startswith(f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}")
    assert links.for_backtest(SUBNET, "cd" * 32) == []
    assert links.for_epoch(SUBNET, 0) == []  # a backtest run is no epoch's run


# ---- bad parameters and unknown things ----------------------------------------------------

BAD_PARAMETERS: Final = [
    ("/?x=1", "unknown parameter 'x' (this page takes no parameters)"),
    ("/governance?page=1", "unknown parameter 'page' (this page takes no parameters)"),
    ("/ledger?kind=register&kind=transfer", "parameter 'kind' given more than once"),
    ("/ledger?page_size=0", "page_size must be between 1 and 200, got 0"),
    ("/ledger?page_size=201", "page_size must be between 1 and 200, got 201"),
    ("/ledger?page=-1", "page must be a whole number between 0 and 100000"),
    ("/ledger?page=abc", "page must be a whole number between 0 and 100000"),
    (f"/ledger?page={10**30}", "page must be a whole number between 0 and 100000"),
    ("/ledger?kind=mint", f"kind must be one of {', '.join(KINDS)}, not 'mint'"),
    (
        f"/subnet/{SUBNET}?sort=nope",
        f"sort must be one of {', '.join(SORT_COLUMNS)}, not 'nope'",
    ),
    (f"/subnet/{SUBNET}?order=sideways", "order must be asc or desc, not 'sideways'"),
    (f"/subnet/{SUBNET}?limit=3", "unknown parameter 'limit' (this page takes order, sort)"),
    (
        f"/subnet/{SUBNET}/neuron/HOTKEY?epoch=x",
        "epoch must be a whole number between 0 and 4611686018427387904",
    ),
    (
        "/ledger?as_of_epoch=0",
        "as_of_epoch and subnet go together (balances as of a subnet's epoch)",
    ),
    (
        f"/ledger?subnet={SUBNET}",
        "as_of_epoch and subnet go together (balances as of a subnet's epoch)",
    ),
    (
        "/ledger?account=nobody",
        "account must be a 64-hex account id or a local wallet name, not 'nobody'",
    ),
    (f"/ledger?q={'a' * 257}", "q is longer than 256 characters"),
    ("/ledger?q=a%20b", "q must be printable ASCII without spaces"),
    ("/ledger/tx/a%20b", "a transaction id is 1–256 printable characters without spaces"),
]

NOT_FOUND: Final = [
    ("/subnet/nope", "no subnet 'nope' in this ledger"),
    (
        f"/subnet/{SUBNET}/neuron/{'0' * 64}",
        f"hotkey {'0' * 16}… has never been a neuron of subnet '{SUBNET}'",
    ),
    (
        f"/subnet/{SUBNET}/neuron/HOTKEY?epoch=99",
        f"hotkey HOTKEY16… has no record in epoch 99 of '{SUBNET}'",
    ),
    ("/ledger/tx/transfer/nope", "no transaction 'transfer/nope' in this ledger"),
    (f"/ledger?as_of_epoch=99&subnet={SUBNET}", f"epoch 99 of '{SUBNET}' is not in the ledger"),
    ("/ledger?as_of_epoch=0&subnet=nope", "no subnet 'nope' in this ledger"),
]


def _resolve(net: Network, path: str, message: str) -> tuple[str, str]:
    hotkey = net.account(MINER)
    return path.replace("HOTKEY", hotkey), message.replace("HOTKEY16", hotkey[:16])


def _html_error(text: str) -> str:
    start = text.index('<p class="error">') + len('<p class="error">')
    return text[start : text.index("</p>", start)]


def _check_error(net: Network, path: str, message: str, status: int) -> None:
    """``path`` (an HTML page) and its ``/api`` twin both answer ``status`` with ``message``."""
    api = "/api/network" + path[1:] if path.startswith("/?") else "/api" + path
    response = net.client.get(api)
    assert (response.status_code, response.headers["content-type"]) == (status, JSON)
    assert response.json() == {"error": message}
    assert "\n" not in response.text
    response = net.client.get(path)
    assert (response.status_code, response.headers["content-type"]) == (status, HTML)
    assert _html_error(response.text) == str(escape(message))
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("path", "message"), BAD_PARAMETERS)
def test_a_bad_parameter_is_a_400_with_one_line(net: Network, path: str, message: str) -> None:
    _check_error(net, *_resolve(net, path, message), 400)


@pytest.mark.parametrize(("path", "message"), NOT_FOUND)
def test_an_unknown_thing_is_a_404_with_one_line(net: Network, path: str, message: str) -> None:
    _check_error(net, *_resolve(net, path, message), 404)


def test_an_unknown_path_is_a_404(net: Network) -> None:
    response = net.client.get("/api/nothing")
    assert (response.status_code, response.json()) == (404, {"error": "no page at /api/nothing"})
    response = net.client.get("/nothing")
    assert response.status_code == 404 and _html_error(response.text) == "no page at /nothing"


# ---- methods and headers ------------------------------------------------------------------


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_every_other_method_is_a_405(net: Network, method: str) -> None:
    hotkey = net.account(MINER)
    for url in (
        "/",
        "/api/network",
        f"/subnet/{SUBNET}/neuron/{hotkey}",
        "/api/ledger?kind=transfer",
        f"/api/ledger/tx/{net.proposal_tx_id}",
        "/governance",
        "/static/explorer.css",
        "/nothing",
    ):
        response = net.client.request(method, url, content=b'{"title": "x"}')
        assert response.status_code == 405, url
        assert response.headers["allow"] == "GET, HEAD"
        assert response.json() == {"error": f"{method} not allowed: the explorer is read-only"}


def test_every_response_sends_the_security_headers(net: Network) -> None:
    for url in ("/", "/api/network", "/ledger?page=abc", "/nothing", "/static/explorer.js"):
        headers = net.client.get(url).headers
        policy = headers["content-security-policy"]
        directives = {d.strip().split(" ")[0]: d.strip() for d in policy.split(";")}
        assert directives["default-src"] == "default-src 'self'"
        assert directives["style-src"] == "style-src 'self'"
        assert directives["img-src"] == "img-src 'self' data:"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script_style_or_handlers(net: Network) -> None:
    for url in [*page_urls(net), "/ledger?page=abc", "/nothing"]:
        response = net.client.get(url)
        parsed = Parsed(response.text)
        assert parsed.script_bodies == [], url
        scripts = parsed.values("src", tag="script")
        assert scripts == ["/static/explorer.js"], url
        assert len(scripts) == len([t for t, _ in parsed.tags if t == "script"]), url
        assert "style" not in [t for t, _ in parsed.tags], url
        for tag, attrs in parsed.tags:
            assert "style" not in attrs, f"{url}: <{tag} style=…>"
            handlers = [a for a in attrs if a.startswith("on")]
            assert handlers == [], f"{url}: <{tag} {handlers}>"
            for name in ("href", "src"):
                value = attrs.get(name) or ""
                assert not value.lower().startswith("javascript:"), url
        nav = [a.get("href") for t, a in parsed.tags if t == "a"]
        assert {"/", "/ledger", "/governance"} <= set(nav), url


def test_labels_shorten_unknown_accounts() -> None:
    labels = Labels({"a" * 64: "alice"})
    assert labels.of("a" * 64) == "alice"
    assert labels.of("b" * 64) == "bbbbbbbb…"
    assert (labels.of(""), labels.of(None), labels.of("short")) == ("", "", "short")


# ---- last: nothing was written ------------------------------------------------------------


def test_zz_the_explorer_never_wrote_the_ledger(net: Network) -> None:
    """Runs last in this module (pytest keeps file order): every request above was read-only."""
    verifier = net.app.state.explorer.verifier
    verifier.finished.wait(timeout=VERIFY_WAIT_S)
    assert ledger_digests(net.home) == net.ledger_before
