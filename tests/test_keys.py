"""ed25519 keys: sign/verify round trips, rejection of tampering and malformed input."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from taoflow.ledger.keys import (
    PUBLIC_KEY_CACHE_MAX_ENTRIES,
    SIGNATURE_BYTES,
    Keypair,
    _load_public_key,
    is_account_id,
    verify_signature,
)

MESSAGE = b"set_weights netuid=1 block=42"


@pytest.fixture
def keypair() -> Keypair:
    return Keypair.generate()


def _flip_bit(data: bytes, *, index: int) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def test_sign_verify_round_trip(keypair: Keypair) -> None:
    signature = keypair.sign(MESSAGE)
    assert len(signature) == SIGNATURE_BYTES
    assert verify_signature(public_hex=keypair.public_hex, message=MESSAGE, signature=signature)


def test_signing_is_deterministic(keypair: Keypair) -> None:
    assert keypair.sign(MESSAGE) == keypair.sign(MESSAGE)


def test_empty_message_round_trip(keypair: Keypair) -> None:
    assert verify_signature(public_hex=keypair.public_hex, message=b"", signature=keypair.sign(b""))


def test_public_key_shapes(keypair: Keypair) -> None:
    assert len(keypair.public_bytes) == 32
    assert keypair.public_hex == keypair.public_bytes.hex()
    assert is_account_id(keypair.public_hex)
    assert len(keypair.private_bytes()) == 32


def test_private_bytes_round_trip(keypair: Keypair) -> None:
    again = Keypair.from_private_bytes(keypair.private_bytes())
    assert again.public_hex == keypair.public_hex
    assert again == keypair
    assert again.sign(MESSAGE) == keypair.sign(MESSAGE)


def test_known_answer_rfc8032_test_1() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    pair = Keypair.from_private_bytes(seed)
    assert pair.public_hex == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert pair.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_from_private_bytes_rejects_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Keypair.from_private_bytes(b"\x01" * size)


def test_tampered_message_rejected(keypair: Keypair) -> None:
    signature = keypair.sign(MESSAGE)
    assert not verify_signature(
        public_hex=keypair.public_hex, message=MESSAGE + b"!", signature=signature
    )
    assert not verify_signature(
        public_hex=keypair.public_hex, message=_flip_bit(MESSAGE, index=0), signature=signature
    )


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_tampered_signature_rejected(keypair: Keypair, index: int) -> None:
    signature = _flip_bit(keypair.sign(MESSAGE), index=index)
    assert not verify_signature(public_hex=keypair.public_hex, message=MESSAGE, signature=signature)


def test_other_public_key_rejected(keypair: Keypair) -> None:
    signature = keypair.sign(MESSAGE)
    other = Keypair.generate()
    assert not verify_signature(public_hex=other.public_hex, message=MESSAGE, signature=signature)
    flipped = _flip_bit(keypair.public_bytes, index=5).hex()
    assert not verify_signature(public_hex=flipped, message=MESSAGE, signature=signature)


def test_uppercase_account_id_rejected(keypair: Keypair) -> None:
    signature = keypair.sign(MESSAGE)
    upper = keypair.public_hex.upper()
    assert upper != keypair.public_hex  # a 64-char hex string with no letter is astronomically rare
    assert not is_account_id(upper)
    assert not verify_signature(public_hex=upper, message=MESSAGE, signature=signature)


@pytest.mark.parametrize(
    "public_hex",
    [
        "",
        "ab",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        " " + "0" * 63,
        "0" * 63 + "\n",
        "0x" + "0" * 62,
        "é" * 64,
    ],
)
def test_malformed_public_key_returns_false(keypair: Keypair, public_hex: str) -> None:
    assert not is_account_id(public_hex)
    signature = keypair.sign(MESSAGE)
    assert not verify_signature(public_hex=public_hex, message=MESSAGE, signature=signature)


@pytest.mark.parametrize("size", [0, 1, 63, 65, 128])
def test_wrong_length_signature_returns_false(keypair: Keypair, size: int) -> None:
    signature = (keypair.sign(MESSAGE) * 2)[:size]
    assert not verify_signature(public_hex=keypair.public_hex, message=MESSAGE, signature=signature)


@pytest.mark.parametrize(
    ("public_hex", "message", "signature"),
    [
        (None, MESSAGE, b"\x00" * 64),
        (123, MESSAGE, b"\x00" * 64),
        ("0" * 64, "text, not bytes", b"\x00" * 64),
        ("0" * 64, MESSAGE, "0" * 64),
        ("0" * 64, MESSAGE, None),
        ("0" * 64, None, b"\x00" * 64),
    ],
)
def test_wrong_types_return_false(public_hex: Any, message: Any, signature: Any) -> None:
    assert not verify_signature(public_hex=public_hex, message=message, signature=signature)


def test_non_curve_points_and_zero_signature_return_false(keypair: Keypair) -> None:
    for public_hex in ("f" * 64, "0" * 64, "e" * 64):
        assert not verify_signature(public_hex=public_hex, message=MESSAGE, signature=b"\0" * 64)
        assert not verify_signature(
            public_hex=public_hex, message=MESSAGE, signature=keypair.sign(MESSAGE)
        )


def test_is_account_id_rejects_non_strings() -> None:
    assert not is_account_id(b"0" * 64)  # type: ignore[arg-type]
    assert not is_account_id(None)  # type: ignore[arg-type]
    assert is_account_id("0123456789abcdef" * 4)


def test_public_key_cache_is_bounded() -> None:
    info = _load_public_key.cache_info()
    assert info.maxsize == PUBLIC_KEY_CACHE_MAX_ENTRIES


def test_repr_and_str_hide_the_private_key(keypair: Keypair) -> None:
    private_hex = keypair.private_bytes().hex()
    for text in (repr(keypair), str(keypair), f"{keypair}", f"{keypair!r}"):
        assert private_hex not in text
        assert private_hex.upper() not in text
        assert keypair.public_hex in text


def test_keypair_cannot_be_pickled_but_copies_are_safe(keypair: Keypair) -> None:
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(keypair)
    assert copy.copy(keypair) is keypair
    assert copy.deepcopy({"k": keypair})["k"] is keypair


def test_equality_and_hash_follow_the_public_key(keypair: Keypair) -> None:
    twin = Keypair.from_private_bytes(keypair.private_bytes())
    assert twin == keypair
    assert hash(twin) == hash(keypair)
    assert keypair != Keypair.generate()
    assert keypair != keypair.public_hex
