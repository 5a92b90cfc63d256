"""Exact amounts through the CLI: every τ option goes through one parser; a bad amount is one line,
exit 2 and an unchanged ledger; amounts people read are exact τ, accounts are wallet names."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import (
    ALICE_RAO,
    BOB_RAO,
    REGISTRATION_RAO,
    SUBNET_LOCK_RAO,
    cli,
    ledger_files,
    wallet_network,
)

from taoflow.ledger.network import TX_FEE_DEFAULT_RAO
from taoflow.ledger.store import Ledger
from taoflow.names import account_labels

DECIMALS = "τ has at most 9 decimal places (1 rao = 0.000000001 τ)"
NOT_A_NUMBER = (
    "write τ as a decimal number such as 1.5 (digits and one '.', no spaces, commas or hex)"
)
BAD_AMOUNTS = [
    ("0.12345678901234567890", DECIMALS),
    ("1e-10", DECIMALS),
    ("0", "must be more than 0 τ"),
    ("inf", "τ amounts are finite numbers"),
    ("nan", "τ amounts are finite numbers"),
    ("-1", "τ amounts cannot be negative"),
    ("1e400", "above the largest amount the ledger holds, 9,223,372,036.854775807 τ"),
    ("0x10", NOT_A_NUMBER),
    ("1,5", NOT_A_NUMBER),
    (" 1 ", NOT_A_NUMBER),
    ("", "give a number of τ such as 1.5"),
]
AMOUNT_COMMANDS = [
    ("transfer", "--wallet", "alice", "--dest", "bob"),
    ("stake", "add", "--wallet", "alice", "--hotkey", "bob/default"),
    ("stake", "remove", "--wallet", "alice", "--hotkey", "bob/default"),
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wallet_network(tmp_path / "home", monkeypatch)
    return tmp_path / "home"


def account(home: Path, name: str) -> str:
    by_label = {lab: acct for acct, lab in account_labels(home / "wallets").items()}
    return by_label[name]


@pytest.mark.parametrize("command", AMOUNT_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(("amount", "reason"), BAD_AMOUNTS, ids=[a for a, _ in BAD_AMOUNTS])
def test_a_bad_amount_is_one_line_exit_2_and_changes_nothing(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    amount: str,
    reason: str,
) -> None:
    before = ledger_files(home)
    ran = cli(capsys, home, *command, "--amount", amount)
    assert ran.code == 2
    assert ran.err_lines == [f"error: invalid amount {amount!r}: {reason}"]
    assert ran.out == ""
    assert ledger_files(home) == before


def test_more_decimals_are_refused_not_rounded(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(
        capsys, home, "transfer", "--wallet", "alice", "--dest", "bob", "--amount", "0.1234567891"
    )
    assert ran.code == 2 and "at most 9 decimal places" in ran.err
    state = Ledger.open(home / "ledger").state()
    assert state.balance(account(home, "alice")) == ALICE_RAO  # nothing moved, not 0.123456789


def test_an_exact_amount_moves_exactly_and_the_confirmation_names_the_wallet(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(
        capsys, home, "transfer", "--wallet", "alice", "--dest", "bob", "--amount", "0.123456789"
    )
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "sent 0.123456789 τ to bob (batch 4)"
    state = Ledger.open(home / "ledger").state()
    assert state.balance(account(home, "alice")) == ALICE_RAO - 123_456_789 - TX_FEE_DEFAULT_RAO
    bob_before = BOB_RAO - SUBNET_LOCK_RAO - REGISTRATION_RAO - 2 * TX_FEE_DEFAULT_RAO
    assert state.balance(account(home, "bob")) == bob_before + 123_456_789


def test_insufficient_balance_is_tau_and_the_wallet_name(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ledger_files(home)
    ran = cli(capsys, home, "transfer", "--wallet", "alice", "--dest", "bob", "--amount", "50")
    assert ran.code == 1
    assert ran.err_lines == [
        "error: insufficient balance: alice has 41.449300965 τ, needs 50.000000000 τ"
    ]
    assert ledger_files(home) == before


def test_fee_shortfall_is_tau_and_the_wallet_name(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(
        capsys, home, "transfer", "--wallet", "alice", "--dest", "bob", "--amount", "41.449300965"
    )
    assert ran.code == 1
    assert ran.err_lines == [
        "error: insufficient balance for the fee: alice has 41.449300965 τ, needs "
        f"41.449300965 τ + 0.{TX_FEE_DEFAULT_RAO:09d} τ fee"
    ]


def test_stake_confirmations_list_and_unstake_refusal_speak_tau_and_names(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(
        capsys,
        home,
        "stake",
        "add",
        "--wallet",
        "alice",
        "--hotkey",
        "bob/default",
        "--amount",
        "1.5",
    )
    assert ran.code == 0, ran.err
    assert ran.out.strip() == (
        "staked 1.500000000 τ to bob/default (batch 4); it counts from the next epoch"
    )
    listed = cli(capsys, home, "stake", "list")
    row = next(line for line in listed.out.splitlines() if "alice" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:3] == ["alice", "bob/default", "1.500000000"]
    refused = cli(
        capsys,
        home,
        "stake",
        "remove",
        "--wallet",
        "alice",
        "--hotkey",
        "bob/default",
        "--amount",
        "2",
    )
    assert refused.code == 1
    assert refused.err_lines == ["error: cannot unstake 2.000000000 τ: 1.500000000 τ staked"]
    done = cli(
        capsys,
        home,
        "stake",
        "remove",
        "--wallet",
        "alice",
        "--hotkey",
        "bob/default",
        "--amount",
        "0.5",
    )
    assert done.out.strip() == "unstaked 0.500000000 τ from bob/default (batch 5)"
