"""``taoflow wallet`` commands through typer's CliRunner: output, JSON, secrecy and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from taoflow.cli.wallet import wallet_app
from taoflow.wallet import load_hotkey, unlock_coldkey

PASSPHRASE = "cli-test-passphrase"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _invoke(runner: CliRunner, home: Path, *args: str, **env: str) -> Result:
    environment = {"TAOFLOW_HOME": str(home), "TAOFLOW_WALLET_PASSPHRASE": PASSPHRASE, **env}
    return runner.invoke(wallet_app, list(args), env=environment)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_with_passphrase_from_env(runner: CliRunner, home: Path) -> None:
    result = _invoke(runner, home, "create", "--name", "alice", "--hotkey", "h1", "--hotkey", "h2")
    assert result.exit_code == 0, result.output
    root = home / "wallets"
    coldkey = unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert coldkey.public_hex in result.stdout
    for hotkey in ("h1", "h2"):
        pair = load_hotkey(root, wallet="alice", hotkey=hotkey)
        assert pair.public_hex in result.stdout
        assert pair.private_bytes().hex() not in result.output
    assert coldkey.private_bytes().hex() not in result.output
    assert PASSPHRASE not in result.output


def test_create_defaults_to_one_default_hotkey(runner: CliRunner, home: Path) -> None:
    document = _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    assert list(document["hotkeys"]) == ["default"]


def test_home_option_wins_over_env(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    result = _invoke(runner, home, "create", "--name", "alice", "--home", str(other))
    assert result.exit_code == 0, result.output
    assert (other / "wallets" / "alice" / "coldkey.json").is_file()
    assert not (home / "wallets" / "alice").exists()


def test_create_prompts_when_env_is_unset(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(
        wallet_app,
        ["create", "--name", "alice"],
        env={"TAOFLOW_HOME": str(home), "TAOFLOW_WALLET_PASSPHRASE": ""},
        input=f"{PASSPHRASE}\n{PASSPHRASE}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSPHRASE not in result.output  # hidden input is not echoed
    unlock_coldkey(home / "wallets", name="alice", passphrase=PASSPHRASE)


def test_list_json_and_show_json(runner: CliRunner, home: Path) -> None:
    bob = _json(_invoke(runner, home, "create", "--name", "bob", "--json"))
    alice = _json(_invoke(runner, home, "create", "--name", "alice", "--hotkey", "m", "--json"))
    listed = _json(_invoke(runner, home, "list", "--json"))
    assert listed == [alice, bob]
    shown = _json(_invoke(runner, home, "show", "--name", "alice", "--json"))
    assert shown == alice
    assert set(shown) == {"name", "coldkey_public_hex", "hotkeys"}
    assert shown["hotkeys"] == {
        "m": load_hotkey(home / "wallets", wallet="alice", hotkey="m").public_hex
    }


def test_list_json_when_empty(runner: CliRunner, home: Path) -> None:
    assert _json(_invoke(runner, home, "list", "--json")) == []


def test_human_output_is_a_table_with_full_keys(runner: CliRunner, home: Path) -> None:
    info = _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    for args in (("list",), ("show", "--name", "alice")):
        result = _invoke(runner, home, *args)
        assert result.exit_code == 0, result.output
        assert "alice" in result.stdout
        assert info["coldkey_public_hex"] in result.stdout
        assert info["hotkeys"]["default"] in result.stdout


def test_new_hotkey(runner: CliRunner, home: Path) -> None:
    _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    result = _invoke(runner, home, "new-hotkey", "--name", "alice", "--hotkey", "miner-7")
    assert result.exit_code == 0, result.output
    pair = load_hotkey(home / "wallets", wallet="alice", hotkey="miner-7")
    assert pair.public_hex in result.stdout
    assert pair.private_bytes().hex() not in result.output
    shown = _json(_invoke(runner, home, "show", "--name", "alice", "--json"))
    assert shown["hotkeys"]["miner-7"] == pair.public_hex


def _assert_one_line_error(result: Result, *, contains: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert contains in lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (("show", "--name", "ghost"), "no wallet named 'ghost'"),
        (("show", "--name", "../etc"), "invalid wallet name"),
        (("new-hotkey", "--name", "ghost", "--hotkey", "h"), "no wallet named 'ghost'"),
        (("create", "--name", "bad/name"), "invalid wallet name"),
        (("create", "--name", "ok", "--hotkey", ".."), "invalid hotkey name"),
    ],
)
def test_errors_are_one_line_exit_1(
    runner: CliRunner, home: Path, args: tuple[str, ...], contains: str
) -> None:
    _assert_one_line_error(_invoke(runner, home, *args), contains=contains)


def test_create_twice_is_refused_without_prompting(runner: CliRunner, home: Path) -> None:
    _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    result = runner.invoke(
        wallet_app,
        ["create", "--name", "alice"],
        env={"TAOFLOW_HOME": str(home), "TAOFLOW_WALLET_PASSPHRASE": ""},
    )
    _assert_one_line_error(result, contains="already exists")


def test_short_passphrase_is_refused(runner: CliRunner, home: Path) -> None:
    result = _invoke(runner, home, "create", "--name", "alice", TAOFLOW_WALLET_PASSPHRASE="short")
    _assert_one_line_error(result, contains="at least 8 characters")
    assert not (home / "wallets" / "alice").exists()


def test_duplicate_hotkey_is_refused(runner: CliRunner, home: Path) -> None:
    _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    result = _invoke(runner, home, "new-hotkey", "--name", "alice", "--hotkey", "default")
    _assert_one_line_error(result, contains="already has a hotkey named 'default'")


def test_long_error_is_not_wrapped(runner: CliRunner, home: Path) -> None:
    deep_home = home / ("d" * 120)
    result = _invoke(runner, deep_home, "show", "--name", "ghost")
    _assert_one_line_error(result, contains=str(deep_home / "wallets"))


def test_damaged_wallet_is_a_clean_error(runner: CliRunner, home: Path) -> None:
    _json(_invoke(runner, home, "create", "--name", "alice", "--json"))
    (home / "wallets" / "alice" / "coldkeypub.txt").write_text("garbage")
    _assert_one_line_error(_invoke(runner, home, "list"), contains="damaged coldkeypub.txt")


def test_no_args_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(wallet_app, [])
    assert "create" in result.output
    assert "new-hotkey" in result.output
