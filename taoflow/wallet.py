"""Wallets on disk: one passphrase-encrypted coldkey and any number of hotkeys per wallet.

Layout under a wallets root (the CLI uses ``<home>/wallets``)::

    <root>/<wallet>/coldkey.json        encrypted coldkey (0600)
    <root>/<wallet>/coldkeypub.txt      coldkey account id, public (0644)
    <root>/<wallet>/hotkeys/<hk>.json   hotkey, unencrypted like btcli's default (0600)

``coldkey.json`` holds ``version``, ``kdf`` ("scrypt") with ``n``, ``r``, ``p`` and a random 16-byte
``salt``, ``cipher`` ("chacha20poly1305") with a random 12-byte ``nonce``, the ``ciphertext`` of the
32-byte private seed (with its 16-byte tag) and ``public_hex``. The additional authenticated data
binds the format version, the public key and the wallet name, so a coldkey file that is edited,
or copied into another wallet's directory, fails to decrypt.

Invariants:
- Wallet and hotkey names match ``ledger.names.NAME_RE`` (``[A-Za-z0-9_-]{1,64}``); anything
  else (path separators, ``..``, empty, too long) raises ``WalletError`` before the filesystem
  is touched.
- Nothing is ever overwritten: creating a wallet or hotkey that exists raises ``WalletError``.
- Every file is written atomically (temporary file, fsync, link into place, fsync of the
  directory); a new wallet is assembled in a hidden temporary directory and renamed into place,
  so a crash leaves either the whole wallet or nothing under its name.
- Secret files are mode 0600, directories this module creates are mode 0700.
- Like ssh, a secret is never used from a file (coldkey, hotkey) or a wallet directory that grants
  any permission to group or others: the error names the path, its mode and the ``chmod`` to run.
- No passphrase or private key is ever written in clear, except hotkey seeds (by design), and none
  is ever included in an exception message, a ``repr`` or a log line. The one exception is the
  public ``DEMO_PASSPHRASE``: a wrong-passphrase message names it when it is what unlocks the
  wallet (``wrong_passphrase_message``), so a demo wallet's remedy is exact.
- A coldkey passphrase has at least ``PASSPHRASE_MIN_CHARS`` characters and is NFC-normalised
  before key derivation, so the same passphrase typed on different systems derives the same key.

Fault model: files under the root may be damaged, truncated, swapped between wallets or edited by
an attacker without the passphrase. Every such fault surfaces as ``WalletError``; a loaded key is
always checked against the public key stored next to it. Reading a file never allocates more than
``KEY_FILE_MAX_BYTES`` and scrypt parameters are bounded, so a hostile file cannot exhaust memory.
An attacker who can write the hotkey files owns the hotkeys; that is the btcli trade-off.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from taoflow.ledger.keys import PRIVATE_KEY_BYTES, Keypair, is_account_id
from taoflow.ledger.names import NAME_RE, name_problem

COLDKEY_FILE = "coldkey.json"
COLDKEYPUB_FILE = "coldkeypub.txt"
HOTKEYS_DIR = "hotkeys"
HOTKEY_SUFFIX = ".json"

COLDKEY_FORMAT_VERSION = 1
KDF_NAME = "scrypt"
CIPHER_NAME = "chacha20poly1305"
SCRYPT_N_DEFAULT = 2**15
SCRYPT_N_MIN = 2**10
SCRYPT_N_MAX = 2**20
SCRYPT_R_DEFAULT = 8
SCRYPT_P_DEFAULT = 1
SCRYPT_P_MAX = 16
SCRYPT_MEMORY_MAX_BYTES = 2**30
"""scrypt needs ``128 · n · r`` bytes; files asking for more are rejected as damaged."""
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
AEAD_TAG_BYTES = 16
KEY_FILE_MAX_BYTES = 64 * 1024

PASSPHRASE_MIN_CHARS = 8
PASSPHRASE_ENV = "TAOFLOW_WALLET_PASSPHRASE"
DEMO_PASSPHRASE = "taoflow-demo-network"
"""The demo network's coldkeys are encrypted with this passphrase unless ``PASSPHRASE_ENV`` is set
when the demo creates them. It protects nothing real: the demo's TAO is local."""
DEFAULT_HOTKEYS: tuple[str, ...] = ("default",)

DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
GROUP_OTHER_BITS = 0o077
"""A secret file, or a directory on the way to one, with any of these bits is refused."""
READ_BITS = 0o044
WRITE_BITS = 0o022

WRONG_PASSPHRASE_MESSAGE = "wrong passphrase or damaged coldkey file"

_NAME_RE = NAME_RE
_TEMP_PREFIX = ".tmp-"
_NO_HARD_LINKS_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


class WalletError(Exception):
    """Any failure to create, read or unlock a wallet. The message is safe to show to users."""


@dataclass(frozen=True)
class WalletInfo:
    """The public face of a wallet: its name, coldkey account id and hotkey account ids."""

    name: str
    coldkey_public_hex: str
    hotkeys: dict[str, str]
    """Hotkey name → account id, in name order."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (public material only)."""
        return {
            "name": self.name,
            "coldkey_public_hex": self.coldkey_public_hex,
            "hotkeys": dict(self.hotkeys),
        }


# ---------------------------------------------------------------------------------------------
# Names and paths


def check_name(value: str, *, kind: str) -> str:
    """Return ``value`` if it is a valid wallet or hotkey name, else raise ``WalletError``."""
    problem = name_problem(value, kind=kind)
    if problem is not None:
        raise WalletError(problem)
    return value


def _private_mode_problem(path: Path, *, what: str) -> str | None:
    """Why ``path`` is too open to hold (or lead to) a secret, like ssh refuses a key file.

    Any permission bit for group or others is refused, with the ``chmod`` that fixes it.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None  # a missing file is reported by the reader, with its own message
    open_bits = mode & GROUP_OTHER_BITS
    if not open_bits:
        return None
    if open_bits & READ_BITS:
        access = "readable"
    elif open_bits & WRITE_BITS:
        access = "writable"
    else:
        access = "accessible"
    owner_only = DIR_MODE if path.is_dir() else SECRET_FILE_MODE
    return (
        f"{what} {path} is {access} by others (mode {mode:04o}): run `chmod {owner_only:o} {path}`"
    )


def _require_private(*paths_and_whats: tuple[Path, str]) -> None:
    """Raise ``WalletError`` for the first of ``paths_and_whats`` that is too open."""
    for path, what in paths_and_whats:
        problem = _private_mode_problem(path, what=what)
        if problem is not None:
            raise WalletError(problem)


def _wallet_dir(root: Path, name: str) -> Path:
    return Path(root) / check_name(name, kind="wallet")


def _hotkey_path(wallet_dir: Path, hotkey: str) -> Path:
    return wallet_dir / HOTKEYS_DIR / f"{check_name(hotkey, kind='hotkey')}{HOTKEY_SUFFIX}"


def _check_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str) or len(passphrase) < PASSPHRASE_MIN_CHARS:
        raise WalletError(f"the passphrase must have at least {PASSPHRASE_MIN_CHARS} characters")


def _check_scrypt_n(scrypt_n: int) -> None:
    is_power_of_two = isinstance(scrypt_n, int) and scrypt_n > 1 and scrypt_n & (scrypt_n - 1) == 0
    if not is_power_of_two or not SCRYPT_N_MIN <= scrypt_n <= SCRYPT_N_MAX:
        raise WalletError(
            f"scrypt_n must be a power of two between {SCRYPT_N_MIN} and {SCRYPT_N_MAX}"
        )


def _private_key_from(private_bytes: bytes) -> Keypair:
    try:
        return Keypair.from_private_bytes(private_bytes)
    except ValueError:
        raise WalletError(f"a private key must be exactly {PRIVATE_KEY_BYTES} bytes") from None


# ---------------------------------------------------------------------------------------------
# Atomic filesystem primitives


@contextlib.contextmanager
def _filesystem_errors(action: str) -> Iterator[None]:
    """Turn an ``OSError`` while doing ``action`` into a one-line ``WalletError``."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        raise WalletError(f"cannot {action}: {reason}{where}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dir(path: Path) -> None:
    """Create ``path`` (mode 0700); its parent must exist. ``FileExistsError`` if it exists."""
    path.mkdir(mode=DIR_MODE)
    path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask


def _ensure_root(root: Path) -> None:
    if root.is_dir():
        return
    if root.exists():
        raise WalletError(f"wallets root {str(root)!r} is not a directory")
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        _make_dir(root)


def _write_new_file(path: Path, data: bytes, *, mode: int) -> None:
    """Atomically create ``path`` with ``data``; ``WalletError`` when it already exists."""
    temp = path.with_name(f"{_TEMP_PREFIX}{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        already_exists = WalletError(f"{str(path)!r} already exists; refusing to overwrite it")
        try:
            # link() never replaces an existing file: an atomic create-if-absent.
            os.link(temp, path)
        except FileExistsError:
            raise already_exists from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS_ERRNOS:
                raise
            # Filesystems without hard links: check, then rename (a narrow race, still atomic).
            if path.exists() or path.is_symlink():
                raise already_exists from None
            os.rename(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(path.parent)


def _read_small_file(path: Path, *, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(KEY_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise WalletError(f"{what} not found at {str(path)!r}") from None
    except OSError as exc:
        raise WalletError(f"cannot read {what} at {str(path)!r}: {exc.strerror}") from None
    if len(data) > KEY_FILE_MAX_BYTES:
        raise WalletError(f"{what} at {str(path)!r} is too large to be a key file")
    return data


def _read_json_object(path: Path, *, what: str) -> dict[str, Any]:
    data = _read_small_file(path, what=what)
    try:
        loaded = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WalletError(f"{what} at {str(path)!r} is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise WalletError(f"{what} at {str(path)!r} is not a JSON object")
    return loaded


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Coldkey encryption


def _normalise_passphrase(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _coldkey_aad(*, version: int, public_hex: str, wallet: str) -> bytes:
    bound = {"public_hex": public_hex, "version": version, "wallet": wallet}
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"))
    return b"taoflow-coldkey\x00" + canonical.encode("utf-8")


def _derive_key(
    passphrase: str, *, salt: bytes, scrypt_n: int, scrypt_r: int, scrypt_p: int
) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=scrypt_n, r=scrypt_r, p=scrypt_p)
    return kdf.derive(_normalise_passphrase(passphrase))


def _encrypt_coldkey(
    keypair: Keypair, *, wallet: str, passphrase: str, scrypt_n: int
) -> dict[str, Any]:
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    key = _derive_key(
        passphrase,
        salt=salt,
        scrypt_n=scrypt_n,
        scrypt_r=SCRYPT_R_DEFAULT,
        scrypt_p=SCRYPT_P_DEFAULT,
    )
    aad = _coldkey_aad(version=COLDKEY_FORMAT_VERSION, public_hex=keypair.public_hex, wallet=wallet)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, keypair.private_bytes(), aad)
    return {
        "version": COLDKEY_FORMAT_VERSION,
        "kdf": KDF_NAME,
        "n": scrypt_n,
        "r": SCRYPT_R_DEFAULT,
        "p": SCRYPT_P_DEFAULT,
        "salt": salt.hex(),
        "cipher": CIPHER_NAME,
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
        "public_hex": keypair.public_hex,
    }


def _hex_field(document: Mapping[str, Any], field: str, *, size_bytes: int) -> bytes:
    value = document.get(field)
    if not isinstance(value, str) or len(value) != 2 * size_bytes:
        raise ValueError(f"field {field!r} must be {size_bytes} bytes of hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"field {field!r} is not hex") from None


def _int_field(document: Mapping[str, Any], field: str) -> int:
    value = document.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field {field!r} must be an integer")
    return value


def _decrypt_coldkey(document: Mapping[str, Any], *, wallet: str, passphrase: str) -> Keypair:
    """The coldkey in ``document``.

    Raises ``ValueError`` for a malformed file and ``InvalidTag`` for a wrong passphrase or
    altered authenticated contents.
    """
    version = _int_field(document, "version")
    if version != COLDKEY_FORMAT_VERSION:
        raise ValueError(f"unsupported coldkey format version {version}")
    if document.get("kdf") != KDF_NAME or document.get("cipher") != CIPHER_NAME:
        raise ValueError(f"only kdf {KDF_NAME!r} with cipher {CIPHER_NAME!r} is supported")
    scrypt_n, scrypt_r, scrypt_p = (_int_field(document, f) for f in ("n", "r", "p"))
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1) or scrypt_n > SCRYPT_N_MAX:
        raise ValueError("scrypt n must be a power of two within bounds")
    if scrypt_r < 1 or 128 * scrypt_n * scrypt_r > SCRYPT_MEMORY_MAX_BYTES:
        raise ValueError("scrypt parameters ask for too much memory")
    if not 1 <= scrypt_p <= SCRYPT_P_MAX:
        raise ValueError("scrypt p is out of bounds")
    public_hex = document.get("public_hex")
    if not isinstance(public_hex, str) or not is_account_id(public_hex):
        raise ValueError("field 'public_hex' is not an account id")
    salt = _hex_field(document, "salt", size_bytes=SALT_BYTES)
    nonce = _hex_field(document, "nonce", size_bytes=NONCE_BYTES)
    ciphertext = _hex_field(document, "ciphertext", size_bytes=PRIVATE_KEY_BYTES + AEAD_TAG_BYTES)

    key = _derive_key(
        passphrase, salt=salt, scrypt_n=scrypt_n, scrypt_r=scrypt_r, scrypt_p=scrypt_p
    )
    aad = _coldkey_aad(version=version, public_hex=public_hex, wallet=wallet)
    private_bytes = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    keypair = Keypair.from_private_bytes(private_bytes)
    if keypair.public_hex != public_hex:
        raise InvalidTag  # authenticated, yet inconsistent: treat exactly like a failed tag
    return keypair


# ---------------------------------------------------------------------------------------------
# Reading wallets


def _read_coldkeypub(wallet_dir: Path, *, name: str) -> str:
    raw = _read_small_file(wallet_dir / COLDKEYPUB_FILE, what=f"coldkey public key of {name!r}")
    try:
        public_hex = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        public_hex = ""
    if not is_account_id(public_hex):
        raise WalletError(f"wallet {name!r} has a damaged {COLDKEYPUB_FILE}")
    return public_hex


def _read_hotkey_document(path: Path, *, wallet: str, hotkey: str) -> dict[str, Any]:
    document = _read_json_object(path, what=f"hotkey {hotkey!r} of wallet {wallet!r}")
    public_hex = document.get("public_hex")
    if not isinstance(public_hex, str) or not is_account_id(public_hex):
        raise WalletError(f"hotkey {hotkey!r} of wallet {wallet!r} has a damaged public key")
    return document


def _hotkeys_of(wallet_dir: Path, *, wallet: str) -> dict[str, str]:
    hotkeys_dir = wallet_dir / HOTKEYS_DIR
    if not hotkeys_dir.is_dir():
        return {}
    found: dict[str, str] = {}
    for path in sorted(hotkeys_dir.iterdir()):
        hotkey = path.name.removesuffix(HOTKEY_SUFFIX)
        if path.suffix != HOTKEY_SUFFIX or _NAME_RE.fullmatch(hotkey) is None:
            continue  # temporary files and foreign files are not hotkeys
        if not path.is_file():
            continue
        document = _read_hotkey_document(path, wallet=wallet, hotkey=hotkey)
        found[hotkey] = document["public_hex"]
    return dict(sorted(found.items()))


def _is_wallet_dir(path: Path) -> bool:
    return (
        _NAME_RE.fullmatch(path.name) is not None
        and path.is_dir()
        and ((path / COLDKEYPUB_FILE).is_file() or (path / COLDKEY_FILE).is_file())
    )


def wallet_info(root: Path, *, name: str) -> WalletInfo:
    """The public keys of wallet ``name``; ``WalletError`` when it is missing or damaged.

    When both ``coldkeypub.txt`` and ``coldkey.json`` are present, their public keys must agree.
    """
    wallet_dir = _wallet_dir(root, name)
    if not _is_wallet_dir(wallet_dir):
        raise WalletError(f"no wallet named {name!r} under {str(root)!r}")
    coldkey_path = wallet_dir / COLDKEY_FILE
    coldkey_public_hex: str | None = None
    if coldkey_path.is_file():
        document = _read_json_object(coldkey_path, what=f"coldkey of {name!r}")
        stored = document.get("public_hex")
        if not isinstance(stored, str) or not is_account_id(stored):
            raise WalletError(f"wallet {name!r} has a damaged {COLDKEY_FILE}")
        coldkey_public_hex = stored
    if (wallet_dir / COLDKEYPUB_FILE).is_file():
        public_hex = _read_coldkeypub(wallet_dir, name=name)
        if coldkey_public_hex is not None and public_hex != coldkey_public_hex:
            raise WalletError(
                f"wallet {name!r} is inconsistent: {COLDKEYPUB_FILE} and {COLDKEY_FILE} "
                "name different keys"
            )
        coldkey_public_hex = public_hex
    if coldkey_public_hex is None:  # pragma: no cover - excluded by _is_wallet_dir
        raise WalletError(f"no wallet named {name!r} under {str(root)!r}")
    return WalletInfo(
        name=name,
        coldkey_public_hex=coldkey_public_hex,
        hotkeys=_hotkeys_of(wallet_dir, wallet=name),
    )


def list_wallets(root: Path) -> list[WalletInfo]:
    """Every wallet under ``root``, sorted by name; ``[]`` when ``root`` does not exist.

    Directories that are not wallets (no coldkey files, or a name that is not a wallet name) are
    ignored; a wallet that is damaged raises ``WalletError`` rather than silently disappearing.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    return [
        wallet_info(root, name=path.name)
        for path in sorted(root.iterdir(), key=lambda p: p.name)
        if _is_wallet_dir(path)
    ]


def unlock_coldkey(root: Path, *, name: str, passphrase: str) -> Keypair:
    """Decrypt the coldkey of wallet ``name``.

    Raises ``WalletError(WRONG_PASSPHRASE_MESSAGE)`` for a wrong passphrase or a file whose
    authenticated contents were changed (including a coldkey file moved from another wallet), and
    a ``WalletError`` naming the damage when the file is not a coldkey file at all.
    """
    _, coldkey_path = _signing_coldkey_path(root, name)
    if not isinstance(passphrase, str):
        raise WalletError(WRONG_PASSPHRASE_MESSAGE)
    document = _read_json_object(coldkey_path, what=f"coldkey of {name!r}")
    try:
        return _decrypt_coldkey(document, wallet=name, passphrase=passphrase)
    except InvalidTag:
        raise WalletError(WRONG_PASSPHRASE_MESSAGE) from None
    except ValueError as exc:
        raise WalletError(f"damaged coldkey file of wallet {name!r}: {exc}") from None


def _signing_coldkey_path(root: Path, name: str) -> tuple[Path, Path]:
    """(wallet directory, coldkey file) of a wallet that can sign, else ``WalletError``."""
    wallet_dir = _wallet_dir(root, name)
    coldkey_path = wallet_dir / COLDKEY_FILE
    if not coldkey_path.is_file():
        if _is_wallet_dir(wallet_dir):
            raise WalletError(f"wallet {name!r} holds only a public coldkey; it cannot sign")
        raise WalletError(f"no wallet named {name!r} under {str(root)!r}")
    _require_private((wallet_dir, "wallet directory"), (coldkey_path, "coldkey file"))
    return wallet_dir, coldkey_path


def unlock_coldkey_for_command(root: Path, *, name: str, env_var: str = PASSPHRASE_ENV) -> Keypair:
    """The coldkey of ``name``, unlocked with ``$env_var`` or a hidden prompt (one attempt).

    The wallet is checked before anyone is asked for a passphrase. A wrong passphrase raises a
    ``WalletError`` that says where the passphrase came from and what to do instead
    (``wrong_passphrase_message``).
    """
    _signing_coldkey_path(root, name)
    from_env = bool(os.environ.get(env_var))
    passphrase = passphrase_from_env_or_prompt(env_var=env_var, confirm=False)
    try:
        return unlock_coldkey(root, name=name, passphrase=passphrase)
    except WalletError as exc:
        if str(exc) != WRONG_PASSPHRASE_MESSAGE:
            raise
        message = wrong_passphrase_message(
            root, name=name, tried=passphrase, from_env=from_env, env_var=env_var
        )
        raise WalletError(message) from None


def wrong_passphrase_message(
    root: Path, *, name: str, tried: str, from_env: bool, env_var: str = PASSPHRASE_ENV
) -> str:
    """Why ``tried`` did not unlock wallet ``name`` and the exact remedy, as one line.

    A wallet that the demo network created while ``env_var`` was unset is locked with
    ``DEMO_PASSPHRASE``: that is checked (one key derivation) and named with the command to use.
    """
    head = f"wrong passphrase for wallet {name!r} (or a damaged coldkey file)"
    if tried != DEMO_PASSPHRASE:
        try:
            unlock_coldkey(root, name=name, passphrase=DEMO_PASSPHRASE)
        except WalletError:
            pass
        else:
            source = f"${env_var} is set and was used" if from_env else "the typed one was used"
            return (
                f"{head}: the demo network created this wallet with its own passphrase "
                f"{DEMO_PASSPHRASE!r} ({env_var} was unset when the demo ran), but {source}; "
                f"run the command with {env_var}={DEMO_PASSPHRASE}"
            )
    demo_note = f"a wallet the demo made while {env_var} was set uses the value it had then"
    if from_env:
        return (
            f"{head}: the passphrase came from ${env_var}, which is used for every wallet; "
            f"set it to this wallet's passphrase, or unset it to be asked ({demo_note})"
        )
    return f"{head}: {demo_note}"


def load_hotkey(root: Path, *, wallet: str, hotkey: str) -> Keypair:
    """The hotkey ``hotkey`` of ``wallet``, checked against its stored public key."""
    wallet_dir = _wallet_dir(root, wallet)
    path = _hotkey_path(wallet_dir, hotkey)
    if not _is_wallet_dir(wallet_dir):
        raise WalletError(f"no wallet named {wallet!r} under {str(root)!r}")
    if not path.is_file():
        raise WalletError(f"wallet {wallet!r} has no hotkey named {hotkey!r}")
    _require_private(
        (wallet_dir, "wallet directory"), (path.parent, "hotkeys directory"), (path, "hotkey file")
    )
    document = _read_hotkey_document(path, wallet=wallet, hotkey=hotkey)
    private_hex = document.get("private_hex")
    damaged = WalletError(f"hotkey {hotkey!r} of wallet {wallet!r} is damaged")
    if not isinstance(private_hex, str) or len(private_hex) != 2 * PRIVATE_KEY_BYTES:
        raise damaged
    try:
        keypair = Keypair.from_private_bytes(bytes.fromhex(private_hex))
    except ValueError:
        raise damaged from None
    if keypair.public_hex != document["public_hex"]:
        raise damaged
    return keypair


# ---------------------------------------------------------------------------------------------
# Creating wallets


def _new_wallet(
    root: Path,
    *,
    name: str,
    coldkey: Keypair,
    passphrase: str,
    hotkeys: Mapping[str, Keypair],
    scrypt_n: int,
) -> WalletInfo:
    """Assemble a complete wallet in a hidden directory, then rename it into place."""
    root = Path(root)
    target = _wallet_dir(root, name)
    for hotkey in hotkeys:
        check_name(hotkey, kind="hotkey")
    _check_passphrase(passphrase)
    _check_scrypt_n(scrypt_n)
    if target.exists() or target.is_symlink():
        raise WalletError(f"wallet {name!r} already exists; refusing to overwrite it")

    document = _encrypt_coldkey(coldkey, wallet=name, passphrase=passphrase, scrypt_n=scrypt_n)
    with _filesystem_errors(f"create wallet {name!r}"):
        _assemble_wallet(root, target, coldkey=coldkey, document=document, hotkeys=hotkeys)
    return wallet_info(root, name=name)


def _assemble_wallet(
    root: Path,
    target: Path,
    *,
    coldkey: Keypair,
    document: Mapping[str, Any],
    hotkeys: Mapping[str, Keypair],
) -> None:
    name = target.name
    _ensure_root(root)
    staging = root / f"{_TEMP_PREFIX}{name}.{secrets.token_hex(8)}"
    _make_dir(staging)
    try:
        _write_new_file(staging / COLDKEY_FILE, _json_bytes(document), mode=SECRET_FILE_MODE)
        _write_new_file(
            staging / COLDKEYPUB_FILE, f"{coldkey.public_hex}\n".encode(), mode=PUBLIC_FILE_MODE
        )
        _make_dir(staging / HOTKEYS_DIR)
        for hotkey, keypair in hotkeys.items():
            _write_hotkey_file(_hotkey_path(staging, hotkey), keypair)
        _fsync_dir(staging)
        if target.exists() or target.is_symlink():
            raise WalletError(f"wallet {name!r} already exists; refusing to overwrite it")
        try:
            staging.rename(target)
        except OSError:
            raise WalletError(f"wallet {name!r} already exists; refusing to overwrite it") from None
        _fsync_dir(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_hotkey_file(path: Path, keypair: Keypair) -> None:
    document = {"public_hex": keypair.public_hex, "private_hex": keypair.private_bytes().hex()}
    _write_new_file(path, _json_bytes(document), mode=SECRET_FILE_MODE)


def create_wallet(
    root: Path,
    *,
    name: str,
    passphrase: str,
    hotkeys: Sequence[str] = DEFAULT_HOTKEYS,
    scrypt_n: int = SCRYPT_N_DEFAULT,
) -> WalletInfo:
    """Create wallet ``name`` with a fresh coldkey (encrypted with ``passphrase``) and hotkeys.

    Refuses to overwrite an existing wallet, duplicate hotkey names, invalid names and
    passphrases shorter than ``PASSPHRASE_MIN_CHARS`` characters.
    """
    if isinstance(hotkeys, str):
        raise WalletError("hotkeys must be a sequence of names, not a single string")
    if len(set(hotkeys)) != len(hotkeys):
        raise WalletError("hotkey names must be unique")
    return _new_wallet(
        root,
        name=name,
        coldkey=Keypair.generate(),
        passphrase=passphrase,
        hotkeys={hotkey: Keypair.generate() for hotkey in hotkeys},
        scrypt_n=scrypt_n,
    )


def import_coldkey(
    root: Path,
    *,
    name: str,
    private_bytes: bytes,
    passphrase: str,
    scrypt_n: int = SCRYPT_N_DEFAULT,
) -> WalletInfo:
    """Create wallet ``name`` (without hotkeys) around an existing 32-byte coldkey seed."""
    return _new_wallet(
        root,
        name=name,
        coldkey=_private_key_from(private_bytes),
        passphrase=passphrase,
        hotkeys={},
        scrypt_n=scrypt_n,
    )


def import_hotkey(root: Path, *, wallet: str, hotkey: str, private_bytes: bytes) -> str:
    """Add hotkey ``hotkey`` with the given 32-byte seed to ``wallet``; returns its account id."""
    wallet_dir = _wallet_dir(root, wallet)
    path = _hotkey_path(wallet_dir, hotkey)
    keypair = _private_key_from(private_bytes)
    if not _is_wallet_dir(wallet_dir):
        raise WalletError(f"no wallet named {wallet!r} under {str(root)!r}")
    already_exists = WalletError(f"wallet {wallet!r} already has a hotkey named {hotkey!r}")
    if path.exists() or path.is_symlink():
        raise already_exists
    with _filesystem_errors(f"write hotkey {hotkey!r} of wallet {wallet!r}"):
        hotkeys_dir = wallet_dir / HOTKEYS_DIR
        if not hotkeys_dir.is_dir():
            with contextlib.suppress(FileExistsError):
                _make_dir(hotkeys_dir)
        try:
            _write_hotkey_file(path, keypair)
        except WalletError:
            raise already_exists from None
    return keypair.public_hex


def create_hotkey(root: Path, *, wallet: str, hotkey: str) -> str:
    """Add a fresh hotkey ``hotkey`` to ``wallet``; returns its account id."""
    return import_hotkey(
        root, wallet=wallet, hotkey=hotkey, private_bytes=Keypair.generate().private_bytes()
    )


# ---------------------------------------------------------------------------------------------
# Passphrase input


def passphrase_from_env_or_prompt(*, env_var: str = PASSPHRASE_ENV, confirm: bool) -> str:
    """The coldkey passphrase: ``$env_var`` when set and non-empty, else a hidden prompt.

    With ``confirm`` the prompt asks twice. The passphrase is never echoed, printed or logged.
    """
    from_env = os.environ.get(env_var)
    if from_env:
        return from_env
    entered = typer.prompt(
        "Coldkey passphrase", hide_input=True, confirmation_prompt=confirm, type=str
    )
    return str(entered)
