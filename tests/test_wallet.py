"""Wallet storage: layout, encryption, tamper detection, permissions and name safety."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from taoflow import wallet as wallet_module
from taoflow.ledger.keys import Keypair, verify_signature
from taoflow.wallet import (
    COLDKEY_FILE,
    COLDKEYPUB_FILE,
    HOTKEYS_DIR,
    WRONG_PASSPHRASE_MESSAGE,
    WalletError,
    WalletInfo,
    create_hotkey,
    create_wallet,
    import_coldkey,
    import_hotkey,
    list_wallets,
    load_hotkey,
    passphrase_from_env_or_prompt,
    unlock_coldkey,
    wallet_info,
)

FAST_N = 2**10
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "home" / "wallets"


def _create(root: Path, name: str = "alice", **kwargs: Any) -> WalletInfo:
    kwargs.setdefault("passphrase", PASSPHRASE)
    kwargs.setdefault("scrypt_n", FAST_N)
    return create_wallet(root, name=name, **kwargs)


def _coldkey_document(root: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / name / COLDKEY_FILE).read_text())
    return loaded


def _write_coldkey_document(root: Path, name: str, document: dict[str, Any]) -> None:
    (root / name / COLDKEY_FILE).write_text(json.dumps(document))


# --- create / list / show ---


def test_create_then_show_and_list(root: Path) -> None:
    info = _create(root, hotkeys=("default", "miner-1"))
    assert info.name == "alice"
    assert list(info.hotkeys) == ["default", "miner-1"]
    assert wallet_info(root, name="alice") == info
    assert list_wallets(root) == [info]
    assert (root / "alice" / COLDKEYPUB_FILE).read_text().strip() == info.coldkey_public_hex
    assert info.to_json() == {
        "name": "alice",
        "coldkey_public_hex": info.coldkey_public_hex,
        "hotkeys": info.hotkeys,
    }


def test_default_hotkey_is_created(root: Path) -> None:
    assert list(_create(root).hotkeys) == ["default"]


def test_wallet_without_hotkeys(root: Path) -> None:
    assert _create(root, hotkeys=()).hotkeys == {}


def test_unlocked_coldkey_and_loaded_hotkeys_match_public_keys(root: Path) -> None:
    info = _create(root, hotkeys=("default", "validator"))
    coldkey = unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert coldkey.public_hex == info.coldkey_public_hex
    signature = coldkey.sign(b"transfer")
    assert verify_signature(
        public_hex=info.coldkey_public_hex, message=b"transfer", signature=signature
    )
    for hotkey, public_hex in info.hotkeys.items():
        assert load_hotkey(root, wallet="alice", hotkey=hotkey).public_hex == public_hex


def test_keys_are_fresh_per_wallet(root: Path) -> None:
    alice = _create(root, "alice")
    bob = _create(root, "bob")
    publics = {alice.coldkey_public_hex, bob.coldkey_public_hex}
    publics |= set(alice.hotkeys.values()) | set(bob.hotkeys.values())
    assert len(publics) == 4


def test_list_is_sorted_and_ignores_non_wallets(root: Path) -> None:
    _create(root, "zed")
    _create(root, "amy")
    (root / "not-a-wallet").mkdir()
    (root / ".hidden").mkdir()
    (root / "bad name").mkdir()
    (root / "bad name" / COLDKEYPUB_FILE).write_text("0" * 64)
    (root / "stray.txt").write_text("hello")
    assert [info.name for info in list_wallets(root)] == ["amy", "zed"]


def test_list_of_missing_root_is_empty(tmp_path: Path) -> None:
    assert list_wallets(tmp_path / "nowhere") == []


def test_show_missing_wallet(root: Path) -> None:
    _create(root)
    with pytest.raises(WalletError, match="no wallet named 'bob'"):
        wallet_info(root, name="bob")


def test_new_hotkey_appears_in_info(root: Path) -> None:
    _create(root)
    public_hex = create_hotkey(root, wallet="alice", hotkey="miner-2")
    assert wallet_info(root, name="alice").hotkeys["miner-2"] == public_hex
    assert load_hotkey(root, wallet="alice", hotkey="miner-2").public_hex == public_hex


def test_hotkey_for_missing_wallet_refused(root: Path) -> None:
    with pytest.raises(WalletError, match="no wallet named"):
        create_hotkey(root, wallet="ghost", hotkey="default")
    assert not (root / "ghost").exists()


def test_load_missing_hotkey(root: Path) -> None:
    _create(root)
    with pytest.raises(WalletError, match="no hotkey named 'nope'"):
        load_hotkey(root, wallet="alice", hotkey="nope")


def test_no_temporary_files_are_left_behind(root: Path) -> None:
    _create(root, hotkeys=("a", "b"))
    create_hotkey(root, wallet="alice", hotkey="c")
    names = [path.name for path in root.rglob("*")]
    assert not [name for name in names if name.startswith(".tmp-")]
    assert sorted(names) == sorted(
        ["alice", COLDKEY_FILE, COLDKEYPUB_FILE, HOTKEYS_DIR, "a.json", "b.json", "c.json"]
    )


# --- deterministic import ---


def test_import_is_deterministic(tmp_path: Path) -> None:
    cold_seed = bytes(range(32))
    hot_seed = bytes(range(32, 64))
    results = []
    for run in ("one", "two"):
        root = tmp_path / run
        info = import_coldkey(
            root, name="owner", private_bytes=cold_seed, passphrase=PASSPHRASE, scrypt_n=FAST_N
        )
        assert info.hotkeys == {}
        hot = import_hotkey(root, wallet="owner", hotkey="default", private_bytes=hot_seed)
        results.append((info.coldkey_public_hex, hot))
    assert results[0] == results[1]
    assert results[0][0] == Keypair.from_private_bytes(cold_seed).public_hex
    assert results[0][1] == Keypair.from_private_bytes(hot_seed).public_hex
    coldkey = unlock_coldkey(tmp_path / "one", name="owner", passphrase=PASSPHRASE)
    assert coldkey.private_bytes() == cold_seed


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_import_rejects_wrong_seed_length(root: Path, size: int) -> None:
    with pytest.raises(WalletError, match="32 bytes"):
        import_coldkey(
            root, name="x", private_bytes=b"\x01" * size, passphrase=PASSPHRASE, scrypt_n=FAST_N
        )
    _create(root)
    with pytest.raises(WalletError, match="32 bytes"):
        import_hotkey(root, wallet="alice", hotkey="h", private_bytes=b"\x01" * size)
    assert not (root / "x").exists()
    assert "h" not in wallet_info(root, name="alice").hotkeys


# --- passphrases and encryption ---


def test_wrong_passphrase(root: Path) -> None:
    _create(root)
    with pytest.raises(WalletError) as excinfo:
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE + "x")
    assert str(excinfo.value) == WRONG_PASSPHRASE_MESSAGE


def test_unicode_passphrase_is_normalised(root: Path) -> None:
    composed = "caf\u00e9-passphrase"
    decomposed = "cafe\u0301-passphrase"
    _create(root, passphrase=composed)
    coldkey = unlock_coldkey(root, name="alice", passphrase=decomposed)
    assert coldkey.public_hex == wallet_info(root, name="alice").coldkey_public_hex


@pytest.mark.parametrize("passphrase", ["", "short", "7-chars"])
def test_short_passphrase_refused(root: Path, passphrase: str) -> None:
    with pytest.raises(WalletError, match="at least 8 characters"):
        _create(root, passphrase=passphrase)
    assert not root.exists() or not any(root.iterdir())


def test_coldkey_file_format(root: Path) -> None:
    info = _create(root)
    document = _coldkey_document(root, "alice")
    assert document["version"] == 1
    assert document["kdf"] == "scrypt"
    assert (document["n"], document["r"], document["p"]) == (FAST_N, 8, 1)
    assert len(bytes.fromhex(document["salt"])) == 16
    assert document["cipher"] == "chacha20poly1305"
    assert len(bytes.fromhex(document["nonce"])) == 12
    assert len(bytes.fromhex(document["ciphertext"])) == 32 + 16
    assert document["public_hex"] == info.coldkey_public_hex


def test_salt_and_nonce_are_random(tmp_path: Path) -> None:
    seed = bytes(32)
    documents = []
    for run in ("one", "two"):
        import_coldkey(
            tmp_path / run, name="w", private_bytes=seed, passphrase=PASSPHRASE, scrypt_n=FAST_N
        )
        documents.append(_coldkey_document(tmp_path / run, "w"))
    for field in ("salt", "nonce", "ciphertext"):
        assert documents[0][field] != documents[1][field]


@pytest.mark.parametrize("index", [0, 40, 95])
def test_tampered_ciphertext(root: Path, index: int) -> None:
    _create(root)
    document = _coldkey_document(root, "alice")
    ciphertext = document["ciphertext"]
    flipped = "1" if ciphertext[index] == "0" else "0"
    document["ciphertext"] = ciphertext[:index] + flipped + ciphertext[index + 1 :]
    _write_coldkey_document(root, "alice", document)
    with pytest.raises(WalletError) as excinfo:
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert str(excinfo.value) == WRONG_PASSPHRASE_MESSAGE


@pytest.mark.parametrize("field", ["salt", "nonce"])
def test_tampered_salt_or_nonce(root: Path, field: str) -> None:
    _create(root)
    document = _coldkey_document(root, "alice")
    document[field] = ("0" if document[field][0] != "0" else "1") + document[field][1:]
    _write_coldkey_document(root, "alice", document)
    with pytest.raises(WalletError, match=WRONG_PASSPHRASE_MESSAGE):
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


def test_swapped_public_key_fails_to_decrypt(root: Path) -> None:
    _create(root)
    document = _coldkey_document(root, "alice")
    document["public_hex"] = Keypair.generate().public_hex
    _write_coldkey_document(root, "alice", document)
    with pytest.raises(WalletError, match=WRONG_PASSPHRASE_MESSAGE):
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    with pytest.raises(WalletError, match="inconsistent"):
        wallet_info(root, name="alice")


def test_coldkey_copied_into_another_wallet_fails(root: Path) -> None:
    _create(root, "alice")
    _create(root, "bob")
    (root / "bob" / COLDKEY_FILE).write_bytes((root / "alice" / COLDKEY_FILE).read_bytes())
    (root / "bob" / COLDKEYPUB_FILE).write_bytes((root / "alice" / COLDKEYPUB_FILE).read_bytes())
    with pytest.raises(WalletError) as excinfo:
        unlock_coldkey(root, name="bob", passphrase=PASSPHRASE)
    assert str(excinfo.value) == WRONG_PASSPHRASE_MESSAGE
    # The original still opens.
    unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 2}, "version"),
        ({"version": "1"}, "version"),
        ({"kdf": "pbkdf2"}, "kdf"),
        ({"cipher": "aes-gcm"}, "cipher"),
        ({"n": 3}, "power of two"),
        ({"n": 2**40}, "power of two"),
        ({"r": 2**20}, "memory"),
        ({"p": 0}, "scrypt p"),
        ({"salt": "zz" * 16}, "not hex"),
        ({"nonce": "00"}, "nonce"),
        ({"ciphertext": "00" * 10}, "ciphertext"),
        ({"public_hex": "ABC"}, "public_hex"),
    ],
)
def test_structurally_damaged_coldkey(root: Path, change: dict[str, Any], match: str) -> None:
    _create(root)
    document = _coldkey_document(root, "alice")
    document.update(change)
    _write_coldkey_document(root, "alice", document)
    with pytest.raises(WalletError, match="damaged coldkey file") as excinfo:
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert match in str(excinfo.value)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"\xff\xfe", b"x" * (65 * 1024)])
def test_unparseable_coldkey_file(root: Path, content: bytes) -> None:
    _create(root)
    (root / "alice" / COLDKEY_FILE).write_bytes(content)
    with pytest.raises(WalletError, match="coldkey of 'alice'"):
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


def test_public_only_wallet_cannot_unlock(root: Path) -> None:
    _create(root)
    (root / "alice" / COLDKEY_FILE).unlink()
    assert wallet_info(root, name="alice").coldkey_public_hex
    with pytest.raises(WalletError, match="only a public coldkey"):
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


def test_unlock_missing_wallet(root: Path) -> None:
    with pytest.raises(WalletError, match="no wallet named 'ghost'"):
        unlock_coldkey(root, name="ghost", passphrase=PASSPHRASE)


def test_damaged_coldkeypub(root: Path) -> None:
    _create(root)
    (root / "alice" / COLDKEYPUB_FILE).write_text("not a key\n")
    with pytest.raises(WalletError, match=r"damaged coldkeypub\.txt"):
        wallet_info(root, name="alice")
    with pytest.raises(WalletError, match=r"damaged coldkeypub\.txt"):
        list_wallets(root)


def test_tampered_hotkey_detected(root: Path) -> None:
    _create(root)
    path = root / "alice" / HOTKEYS_DIR / "default.json"
    document = json.loads(path.read_text())
    document["public_hex"] = Keypair.generate().public_hex
    path.write_text(json.dumps(document))
    with pytest.raises(WalletError, match="hotkey 'default' of wallet 'alice' is damaged"):
        load_hotkey(root, wallet="alice", hotkey="default")


@pytest.mark.parametrize("private_hex", [None, "", "00" * 31, "zz" * 32, 7])
def test_malformed_hotkey_private_key(root: Path, private_hex: Any) -> None:
    _create(root)
    path = root / "alice" / HOTKEYS_DIR / "default.json"
    document = json.loads(path.read_text())
    document["private_hex"] = private_hex
    path.write_text(json.dumps(document))
    with pytest.raises(WalletError, match="is damaged"):
        load_hotkey(root, wallet="alice", hotkey="default")


def test_scrypt_n_bounds(root: Path) -> None:
    for scrypt_n in (2**9, 2**21, 3000, 0, -1):
        with pytest.raises(WalletError, match="scrypt_n"):
            _create(root, scrypt_n=scrypt_n)
    assert not (root / "alice").exists()


# --- overwrite protection and names ---


def test_overwrite_refused(root: Path) -> None:
    original = _create(root)
    with pytest.raises(WalletError, match="already exists"):
        _create(root)
    with pytest.raises(WalletError, match="already exists"):
        import_coldkey(
            root, name="alice", private_bytes=bytes(32), passphrase=PASSPHRASE, scrypt_n=FAST_N
        )
    assert wallet_info(root, name="alice") == original
    unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


def test_existing_non_wallet_directory_is_not_overwritten(root: Path) -> None:
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "notes.txt").write_text("mine")
    with pytest.raises(WalletError, match="already exists"):
        _create(root)
    assert (root / "alice" / "notes.txt").read_text() == "mine"


def test_hotkey_overwrite_refused(root: Path) -> None:
    info = _create(root)
    with pytest.raises(WalletError, match="already has a hotkey named 'default'"):
        create_hotkey(root, wallet="alice", hotkey="default")
    with pytest.raises(WalletError, match="already has a hotkey named 'default'"):
        import_hotkey(root, wallet="alice", hotkey="default", private_bytes=bytes(32))
    assert load_hotkey(root, wallet="alice", hotkey="default").public_hex == info.hotkeys["default"]


def test_duplicate_hotkey_names_refused(root: Path) -> None:
    with pytest.raises(WalletError, match="unique"):
        _create(root, hotkeys=("a", "a"))
    with pytest.raises(WalletError, match="not a single string"):
        _create(root, hotkeys="default")


BAD_NAMES = [
    "",
    ".",
    "..",
    "../evil",
    "a/b",
    "a\\b",
    "/abs",
    "a b",
    "x" * 65,
    "caf\u00e9",
    "a\x00b",
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_wallet_names_refused(root: Path, bad: str) -> None:
    with pytest.raises(WalletError, match="invalid wallet name"):
        _create(root, bad)
    with pytest.raises(WalletError, match="invalid wallet name"):
        wallet_info(root, name=bad)
    with pytest.raises(WalletError, match="invalid wallet name"):
        unlock_coldkey(root, name=bad, passphrase=PASSPHRASE)
    with pytest.raises(WalletError, match="invalid wallet name"):
        load_hotkey(root, wallet=bad, hotkey="default")
    assert not root.parent.exists() or [p.name for p in root.parent.iterdir()] in ([], ["wallets"])


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_hotkey_names_refused(root: Path, bad: str) -> None:
    with pytest.raises(WalletError, match="invalid hotkey name"):
        _create(root, "fresh", hotkeys=(bad,))
    assert not (root / "fresh").exists()
    _create(root)
    with pytest.raises(WalletError, match="invalid hotkey name"):
        create_hotkey(root, wallet="alice", hotkey=bad)
    with pytest.raises(WalletError, match="invalid hotkey name"):
        load_hotkey(root, wallet="alice", hotkey=bad)
    assert list(wallet_info(root, name="alice").hotkeys) == ["default"]


def test_longest_valid_name_accepted(root: Path) -> None:
    name = "A_b-9" + "z" * 59
    assert _create(root, name, hotkeys=(name,)).hotkeys.keys() == {name}


# --- file permissions and secrecy ---


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_permissions(root: Path) -> None:
    _create(root, hotkeys=("default", "m1"))
    create_hotkey(root, wallet="alice", hotkey="m2")
    wallet_dir = root / "alice"
    assert _mode(root) == 0o700
    assert _mode(wallet_dir) == 0o700
    assert _mode(wallet_dir / HOTKEYS_DIR) == 0o700
    assert _mode(wallet_dir / COLDKEY_FILE) == 0o600
    assert _mode(wallet_dir / COLDKEYPUB_FILE) == 0o644
    for hotkey in ("default", "m1", "m2"):
        assert _mode(wallet_dir / HOTKEYS_DIR / f"{hotkey}.json") == 0o600


def test_permissions_do_not_depend_on_umask(root: Path) -> None:
    import os

    previous = os.umask(0o000)
    try:
        _create(root)
    finally:
        os.umask(previous)
    assert _mode(root / "alice" / COLDKEY_FILE) == 0o600
    assert _mode(root / "alice") == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_coldkey_readable_by_others_is_refused_with_the_chmod(root: Path, mode: int) -> None:
    _create(root)
    path = root / "alice" / COLDKEY_FILE
    path.chmod(mode)
    with pytest.raises(WalletError) as caught:
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert str(caught.value) == (
        f"coldkey file {path} is readable by others (mode {mode:04o}): run `chmod 600 {path}`"
    )
    path.chmod(0o600)
    assert unlock_coldkey(root, name="alice", passphrase=PASSPHRASE).public_hex


def test_coldkey_writable_by_others_is_refused(root: Path) -> None:
    _create(root)
    path = root / "alice" / COLDKEY_FILE
    path.chmod(0o620)
    with pytest.raises(WalletError, match=r"is writable by others \(mode 0620\): run `chmod 600 "):
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)


def test_open_wallet_directory_is_refused_for_both_keys(root: Path) -> None:
    _create(root)
    wallet_dir = root / "alice"
    wallet_dir.chmod(0o755)
    expected = (
        f"wallet directory {wallet_dir} is readable by others (mode 0755): "
        f"run `chmod 700 {wallet_dir}`"
    )
    with pytest.raises(WalletError) as caught:
        unlock_coldkey(root, name="alice", passphrase=PASSPHRASE)
    assert str(caught.value) == expected
    with pytest.raises(WalletError) as caught_hotkey:
        load_hotkey(root, wallet="alice", hotkey="default")
    assert str(caught_hotkey.value) == expected
    assert wallet_info(root, name="alice").name == "alice"  # public keys stay readable


def test_hotkey_readable_by_others_is_refused(root: Path) -> None:
    _create(root)
    path = root / "alice" / HOTKEYS_DIR / "default.json"
    path.chmod(0o644)
    with pytest.raises(WalletError) as caught:
        load_hotkey(root, wallet="alice", hotkey="default")
    assert str(caught.value) == (
        f"hotkey file {path} is readable by others (mode 0644): run `chmod 600 {path}`"
    )


def test_passphrase_and_coldkey_never_stored_in_clear(root: Path) -> None:
    passphrase = "unique-passphrase-1234567"
    _create(root, passphrase=passphrase, hotkeys=("default", "m1"))
    coldkey_private = unlock_coldkey(root, name="alice", passphrase=passphrase).private_bytes()
    needles = [
        passphrase.encode(),
        passphrase.encode().hex().encode(),
        coldkey_private,
        coldkey_private.hex().encode(),
    ]
    files = [path for path in root.rglob("*") if path.is_file()]
    assert len(files) == 4
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"secret material found in {path}"


def test_hotkey_file_contents(root: Path) -> None:
    info = _create(root)
    document = json.loads((root / "alice" / HOTKEYS_DIR / "default.json").read_text())
    assert set(document) == {"public_hex", "private_hex"}
    assert document["public_hex"] == info.hotkeys["default"]
    pair = Keypair.from_private_bytes(bytes.fromhex(document["private_hex"]))
    assert pair.public_hex == info.hotkeys["default"]


def test_errors_never_mention_the_passphrase(root: Path) -> None:
    _create(root)
    attempt = "a-wrong-but-long-passphrase"
    with pytest.raises(WalletError) as excinfo:
        unlock_coldkey(root, name="alice", passphrase=attempt)
    assert attempt not in str(excinfo.value)
    assert attempt not in repr(excinfo.value)


# --- passphrase input ---


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASS", "from-the-env")

    def no_prompt(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("must not prompt when the env var is set")

    monkeypatch.setattr(wallet_module.typer, "prompt", no_prompt)
    assert passphrase_from_env_or_prompt(env_var="MY_PASS", confirm=True) == "from-the-env"


@pytest.mark.parametrize("confirm", [True, False])
def test_passphrase_prompt_is_hidden(monkeypatch: pytest.MonkeyPatch, confirm: bool) -> None:
    monkeypatch.setenv("MY_PASS", "")  # empty counts as unset
    seen: dict[str, Any] = {}

    def fake_prompt(text: str, **kwargs: Any) -> str:
        seen.update(kwargs)
        return "typed-passphrase"

    monkeypatch.setattr(wallet_module.typer, "prompt", fake_prompt)
    assert passphrase_from_env_or_prompt(env_var="MY_PASS", confirm=confirm) == "typed-passphrase"
    assert seen["hide_input"] is True
    assert seen["confirmation_prompt"] is confirm
