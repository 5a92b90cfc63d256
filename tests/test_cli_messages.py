"""Messages a person reads: every error is one line (usage errors included), no rich boxes, no
markup taken from user text, accounts named by wallet, and a wrong passphrase says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import PASSPHRASE, cli, ledger_files, wallet_network

from taoflow.names import account_labels, name_accounts
from taoflow.wallet import (
    DEMO_PASSPHRASE,
    PASSPHRASE_ENV,
    SCRYPT_N_MIN,
    WalletError,
    create_wallet,
    wrong_passphrase_message,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wallet_network(tmp_path / "home", monkeypatch)
    return tmp_path / "home"


# ---- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("transfer", "--dest", "bob", "--amount", "1"),
            "error: Missing option '--wallet' / '-w'. Try 'taoflow transfer --help'.",
        ),
        (
            ("transfer", "--wallet", "a", "--dest", "b", "--amount", "1", "--bogus"),
            "error: No such option: --bogus. Try 'taoflow transfer --help'.",
        ),
        (("bogus",), "error: No such command 'bogus'. Try 'taoflow --help'."),
        (
            ("stake", "tak"),
            "error: No such command 'tak'. Did you mean 'take'? Try 'taoflow stake --help'.",
        ),
        (
            ("stake", "take", "--wallet", "a", "--percent", "abc"),
            "error: Invalid value for '--percent': Input should be a valid number, unable to "
            "parse string as a number. Try 'taoflow stake take --help'.",
        ),
        (
            ("ledger", "balance", "--as-of-epoch", "x"),
            "error: Invalid value for '--as-of-epoch': Input should be a valid integer, unable "
            "to parse string as an integer. Try 'taoflow ledger balance --help'.",
        ),
    ],
    ids=["missing option", "unknown option", "unknown command", "typo", "bad float", "bad int"],
)
def test_a_usage_error_is_exactly_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], line: str
) -> None:
    ran = cli(capsys, tmp_path, *args)
    assert (ran.code, ran.err_lines, ran.out) == (2, [line], "")
    assert list(tmp_path.iterdir()) == []


def test_the_installed_entry_point_prints_one_line_not_a_box(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "taoflow.cli", "transfer", "--home", str(tmp_path)],
        env={**env, "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr == "error: Missing option '--wallet' / '-w'. Try 'taoflow transfer --help'.\n"
    )
    assert proc.stdout == ""


def test_help_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = cli(capsys, tmp_path, "transfer", "--help")
    assert ran.code == 0 and "--amount" in ran.out and ran.err == ""


# ---- the commands' own errors -------------------------------------------------------------------


def test_user_text_is_not_markup_and_a_long_error_is_not_wrapped(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = "[bold]x" + "y" * 200
    before = ledger_files(home)
    ran = cli(capsys, home, "transfer", "--wallet", "alice", "--dest", dest, "--amount", "1")
    assert ran.code == 1
    assert ran.err_lines == [
        f"error: {dest!r} is neither an account id nor a local wallet (or wallet/hotkey)"
    ]
    assert ledger_files(home) == before


def test_a_ledger_refusal_names_known_accounts_and_leaves_others_as_ids(home: Path) -> None:
    labels = account_labels(home / "wallets")
    alice = next(acct for acct, lab in labels.items() if lab == "alice")
    stranger = "ab" * 32
    message = f"hotkey {stranger!r} and {alice!r}; bare {alice}; digest {'cd' * 32}"
    assert name_accounts(message, labels) == (
        f"hotkey {stranger!r} and alice; bare alice; digest {'cd' * 32}"
    )


# ---- passphrases --------------------------------------------------------------------------------


def test_demo_wallet_with_another_passphrase_in_the_env_gets_the_exact_remedy(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wallets = home / "wallets"
    create_wallet(wallets, name="owner", passphrase=DEMO_PASSPHRASE, scrypt_n=SCRYPT_N_MIN)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)  # set for the user's own new wallet
    before = ledger_files(home)
    ran = cli(capsys, home, "transfer", "--wallet", "owner", "--dest", "bob", "--amount", "1")
    assert ran.code == 1
    assert ran.err_lines == [
        "error: wrong passphrase for wallet 'owner' (or a damaged coldkey file): the demo "
        "network created this wallet with its own passphrase 'taoflow-demo-network' "
        "(TAOFLOW_WALLET_PASSPHRASE was unset when the demo ran), but "
        "$TAOFLOW_WALLET_PASSPHRASE is set and was used; run the command with "
        "TAOFLOW_WALLET_PASSPHRASE=taoflow-demo-network"
    ]
    assert ledger_files(home) == before
    monkeypatch.setenv(PASSPHRASE_ENV, DEMO_PASSPHRASE)  # the remedy works
    ran = cli(capsys, home, "transfer", "--wallet", "owner", "--dest", "bob", "--amount", "1")
    assert ran.code == 1 and "insufficient balance: owner has 0.000000000 τ" in ran.err


def test_own_wallet_with_a_wrong_env_passphrase_says_where_it_came_from(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase")
    ran = cli(capsys, home, "transfer", "--wallet", "alice", "--dest", "bob", "--amount", "1")
    assert ran.code == 1
    assert ran.err_lines == [
        "error: wrong passphrase for wallet 'alice' (or a damaged coldkey file): the passphrase "
        "came from $TAOFLOW_WALLET_PASSPHRASE, which is used for every wallet; set it to this "
        "wallet's passphrase, or unset it to be asked (a wallet the demo made while "
        "TAOFLOW_WALLET_PASSPHRASE was set uses the value it had then)"
    ]


def test_a_typed_wrong_passphrase_on_a_demo_wallet_names_the_demo_passphrase(
    tmp_path: Path,
) -> None:
    create_wallet(tmp_path, name="owner", passphrase=DEMO_PASSPHRASE, scrypt_n=SCRYPT_N_MIN)
    create_wallet(tmp_path, name="mine", passphrase=PASSPHRASE, scrypt_n=SCRYPT_N_MIN)
    demo = wrong_passphrase_message(tmp_path, name="owner", tried="typo typo", from_env=False)
    assert demo.endswith(
        "(TAOFLOW_WALLET_PASSPHRASE was unset when the demo ran), but the typed one was used; "
        "run the command with TAOFLOW_WALLET_PASSPHRASE=taoflow-demo-network"
    )
    mine = wrong_passphrase_message(tmp_path, name="mine", tried="typo typo", from_env=False)
    assert mine == (
        "wrong passphrase for wallet 'mine' (or a damaged coldkey file): a wallet the demo made "
        "while TAOFLOW_WALLET_PASSPHRASE was set uses the value it had then"
    )


def test_a_missing_wallet_is_named_before_any_passphrase_is_asked(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)

    def no_prompt(**_: object) -> str:
        raise WalletError("prompted")

    monkeypatch.setattr("taoflow.wallet.passphrase_from_env_or_prompt", no_prompt)
    ran = cli(capsys, home, "transfer", "--wallet", "nobody", "--dest", "bob", "--amount", "1")
    assert ran.code == 1
    assert ran.err_lines == [f"error: no wallet named 'nobody' under {str(home / 'wallets')!r}"]
