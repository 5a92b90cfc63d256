"""Tables that agree: the metagraph after an epoch, its score column, sorted balances and stakes.

The metagraph rows come from the ledger alone (``taoflow.queries.metagraph``): with ``epoch``,
the state right after the batch that committed it, so stake already holds that epoch's
emission, which is what ``epoch run`` prints and ``metagraph --epoch N`` shows. The epochs here
are the simulator's (real consensus and ledger, synthetic scores): no Prefect, Dask or MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from ledger_helpers import (
    TAO,
    acct,
    commit_signed,
    epoch_batch,
    key,
    network_with_subnet,
    open_network,
)
from rich.console import Console
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.ledger.schema import Kind, Tx
from taoflow.ledger.store import Ledger
from taoflow.queries import NoSuchEpoch, metagraph
from taoflow.render import (
    METAGRAPH_COLUMNS,
    epoch_table,
    metagraph_cell,
    metagraph_table,
    tao_rounded,
)
from taoflow.tasks.simulate import SimulationSpec, simulate
from taoflow.wallet import import_coldkey

SUBNET = "sim"
EPOCHS = 3
runner = CliRunner()
FAST_SCRYPT_N = 2**10
TABLE_WIDTH = 200


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated network of ``EPOCHS`` epochs (6 miners, 3 validators) in a home."""
    root = tmp_path_factory.mktemp("tables") / "home"
    simulate(
        root / "ledger",
        SimulationSpec(subnet=SUBNET, epochs=EPOCHS, miners=6, validators=3, seed=7),
    )
    return root


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def uids_record(ledger: Ledger, epoch: int) -> dict[str, list]:
    return ledger.epoch_records(SUBNET, epoch, names=("uids",))["uids"].to_pydict()


@pytest.mark.parametrize("epoch", range(EPOCHS))
def test_stake_after_an_epoch_is_the_stake_before_plus_its_emission(home: Path, epoch: int) -> None:
    ledger = Ledger.open(home / "ledger")
    rows = metagraph(ledger, subnet=SUBNET, epoch=epoch)
    record = uids_record(ledger, epoch)
    assert sum(record["emission_rao"]) > 0
    assert [r["uid"] for r in rows] == record["uid"]
    # The uids record holds the stake consensus read (before the epoch's emission).
    assert [r["stake_rao"] for r in rows] == [
        before + paid
        for before, paid in zip(record["stake_rao"], record["emission_rao"], strict=True)
    ]
    assert [r["emission_rao"] for r in rows] == record["emission_rao"]
    assert {r["epoch"] for r in rows} == {epoch}


def test_an_earlier_epoch_shows_its_own_state_not_the_current_one(home: Path) -> None:
    ledger = Ledger.open(home / "ledger")
    first = metagraph(ledger, subnet=SUBNET, epoch=0)
    now = metagraph(ledger, subnet=SUBNET)
    state = ledger.state_as_of(ledger.batch_of_epoch(SUBNET, 0) or 0)
    assert [r["stake_rao"] for r in first] == [state.hotkey_stake(r["hotkey"]) for r in first]
    assert [r["stake_rao"] for r in first] != [r["stake_rao"] for r in now]
    assert now == metagraph(ledger, subnet=SUBNET, epoch=EPOCHS - 1)  # nothing after it


def test_score_column_is_the_epochs_mean_score(home: Path) -> None:
    ledger = Ledger.open(home / "ledger")
    for epoch in range(EPOCHS):
        scores = uids_record(ledger, epoch)["score"]
        rows = metagraph(ledger, subnet=SUBNET, epoch=epoch)
        assert [r["score"] for r in rows] == [None if math.isnan(s) else s for s in scores]
        assert {r["role"] for r in rows if r["score"] is None} == {"validator"}
        assert len([r for r in rows if r["score"] is not None]) == 6


def test_permit_column_is_the_epochs_new_permits(home: Path) -> None:
    ledger = Ledger.open(home / "ledger")
    record = uids_record(ledger, EPOCHS - 1)
    assert [r["permit"] for r in metagraph(ledger, subnet=SUBNET)] == record["permit"]


def test_metagraph_cli_json_agrees_with_the_epoch_view(home: Path) -> None:
    ledger = Ledger.open(home / "ledger")
    code, out = cli(home, "metagraph", "--subnet", SUBNET, "--json")
    assert code == 0
    assert json.loads(out) == metagraph(ledger, subnet=SUBNET, epoch=EPOCHS - 1)
    code, out = cli(home, "metagraph", "--subnet", SUBNET, "--epoch", "0", "--json")
    assert code == 0
    assert json.loads(out) == metagraph(ledger, subnet=SUBNET, epoch=0)
    assert [r["stake_rao"] for r in json.loads(out)] != [
        r["stake_rao"] for r in metagraph(ledger, subnet=SUBNET)
    ]


def test_metagraph_of_an_epoch_that_does_not_exist_is_one_line(home: Path) -> None:
    with pytest.raises(NoSuchEpoch):
        metagraph(Ledger.open(home / "ledger"), subnet=SUBNET, epoch=EPOCHS)
    code, out = cli(home, "metagraph", "--subnet", SUBNET, "--epoch", str(EPOCHS))
    assert code == 1
    assert out.strip() == f"error: epoch {EPOCHS} of subnet '{SUBNET}' is not in the ledger"


def rendered(table: object) -> list[str]:
    console = Console(width=TABLE_WIDTH, record=True, color_system=None)
    console.print(table)
    return console.export_text().splitlines()


def test_epoch_run_and_metagraph_print_the_same_table(home: Path) -> None:
    ledger = Ledger.open(home / "ledger")
    last = EPOCHS - 1
    rows = metagraph(ledger, subnet=SUBNET, epoch=last)
    result = SimpleNamespace(subnet=SUBNET, epoch=last, batch_no=9, emission_rao=123 * TAO)
    after_run = rendered(epoch_table(rows, result=result))
    code, out = cli(home, "metagraph", "--subnet", SUBNET)
    assert code == 0
    shown = [line.rstrip() for line in out.splitlines()]
    assert shown[0].strip() == after_run[0].strip() == f"{SUBNET} — after epoch {last}"
    assert after_run[-1].strip() == "batch 9 · emission 123.000000000 τ"
    body = [line.rstrip() for line in after_run[1:-1]]
    assert body == shown[1 : 1 + len(body)]
    headers = [header for _, header in METAGRAPH_COLUMNS]
    assert headers == [
        "UID",
        "Hotkey",
        "Stake τ",
        "Score",
        "VTrust",
        "Consensus",
        "Incentive",
        "Dividends",
        "Emission τ",
        "Permit",
    ]
    assert all(header in body[1] for header in headers)


def test_metagraph_after_later_batches_says_so(tmp_path: Path) -> None:
    ledger = network_with_subnet(tmp_path)
    ledger.commit(epoch_batch(ledger.state(), "sn", block=100, validator_share=(0, 1)))
    code, out = cli(tmp_path, "metagraph", "--subnet", "sn")
    assert code == 0 and out.splitlines()[0].strip() == "sn — after epoch 0"
    for n in range(2):
        commit_signed(
            ledger,
            Tx(f"t/{n}", Kind.TRANSFER, coldkey=acct("dave"), dest=acct("bob"), amount_rao=TAO),
        )
    code, out = cli(tmp_path, "metagraph", "--subnet", "sn")
    assert code == 0 and out.splitlines()[0].strip() == "sn — now (2 batch(es) after epoch 0)"
    code, out = cli(tmp_path, "metagraph", "--subnet", "sn", "--epoch", "0")
    assert code == 0 and out.splitlines()[0].strip() == "sn — after epoch 0"


def test_cells_show_exact_amounts_rounded_for_display() -> None:
    assert tao_rounded(12_299_999_999, decimals=6) == "12.300000"
    assert tao_rounded(1_234_567_890_123, decimals=4) == "1,234.5679"
    assert tao_rounded(2_500_000_000, decimals=0) == "2"  # half to even
    assert tao_rounded(3_500_000_000, decimals=0) == "4"
    assert tao_rounded(7, decimals=9) == "0.000000007"
    assert metagraph_cell("stake_rao", 10_041 * TAO) == "10,041.0000"
    assert metagraph_cell("score", None) == "—"
    assert metagraph_cell("permit", True) == "✓"
    assert metagraph_cell("permit", False) == ""
    table = rendered(metagraph_table([], title="empty"))
    assert table[0].strip() == "empty"


# --- ledger balance and stakes: largest first, then by name ---------------------------------


def named_wallets(home: Path, names: dict[str, str]) -> None:
    """Local wallets for the test accounts: ``names`` maps test key name → wallet name."""
    for test_key, wallet in names.items():
        import_coldkey(
            home / "wallets",
            name=wallet,
            private_bytes=key(test_key).private_bytes(),
            passphrase="tables-test-passphrase",
            scrypt_n=FAST_SCRYPT_N,
        )


def tie_names() -> dict[str, str]:
    """Wallet names for carol and dave whose order is the opposite of their ids' order."""
    first, second = sorted(("carol", "dave"), key=acct)
    return {first: "zoe", second: "adam"}


def test_ledger_balance_is_sorted_by_balance_then_name(tmp_path: Path) -> None:
    ledger = open_network(tmp_path)  # alice, bob, carol, dave funded alike
    commit_signed(
        ledger,
        Tx("t/alice", Kind.TRANSFER, coldkey=acct("alice"), dest=acct("bob"), amount_rao=5 * TAO),
    )
    names = tie_names()
    named_wallets(tmp_path, names)
    code, out = cli(tmp_path, "ledger", "balance", "--json")
    assert code == 0
    rows = json.loads(out)
    balances = [r["balance_rao"] for r in rows]
    assert balances == sorted(balances, reverse=True)
    state = Ledger(tmp_path / "ledger").state()
    assert {r["coldkey"]: r["balance_rao"] for r in rows} == {
        k: v for k, v in state.balances.items() if v
    }
    carol, dave = state.balances[acct("carol")], state.balances[acct("dave")]
    assert carol == dave  # equal balances: the wallet names decide
    tied = [r["coldkey"] for r in rows if r["balance_rao"] == carol]
    by_name = {wallet: acct(test_key) for test_key, wallet in names.items()}
    assert tied == [by_name["adam"], by_name["zoe"]]
    code, out = cli(tmp_path, "ledger", "balance")
    assert code == 0
    lines = [line for line in out.splitlines() if "adam" in line or "zoe" in line]
    assert [("adam" in line) for line in lines] == [True, False]
    assert out.index("adam") < out.index("zoe")


def test_ledger_stakes_are_sorted_by_stake_then_name(tmp_path: Path) -> None:
    ledger = network_with_subnet(tmp_path)
    names = tie_names()
    for who, amount in (("dave", 3), ("carol", 3), ("bob", 7), ("alice", 1)):
        commit_signed(
            ledger,
            Tx(
                f"stake/{who}",
                Kind.ADD_STAKE,
                coldkey=acct(who),
                hotkey=acct("carol-hot"),
                amount_rao=amount * TAO,
            ),
        )
    named_wallets(tmp_path, names)
    code, out = cli(tmp_path, "ledger", "stakes", "--json")
    assert code == 0
    by_name = {wallet: acct(test_key) for test_key, wallet in names.items()}
    assert [(r["coldkey"], r["stake_rao"]) for r in json.loads(out)] == [
        (acct("bob"), 7 * TAO),
        (by_name["adam"], 3 * TAO),
        (by_name["zoe"], 3 * TAO),
        (acct("alice"), TAO),
    ]
