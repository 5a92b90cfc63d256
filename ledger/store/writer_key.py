"""The network's writer key on disk: the ed25519 key that signs every committed batch.

Invariants / fault model:
- The key file holds exactly the 32-byte private seed, mode 0600, written to a temporary name,
  fsynced and renamed into place, so a crash leaves either no key or a whole key.
- A key file that group or others can read or write is refused (like ssh), with the ``chmod``
  that fixes it; a file of the wrong size is refused. Neither is ever overwritten.
- The key lives outside the ledger directory: whoever can rewrite the ledger's files cannot
  sign a batch without it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from taoflow.ledger.keys import PRIVATE_KEY_BYTES, Keypair
from taoflow.ledger.store.segments import fsync_dir

KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700


class WriterKeyError(RuntimeError):
    """The writer key file cannot be used; the message says why and what to run."""


def load_writer_key(path: Path) -> Keypair:
    """The writer key stored at ``path`` (checked: owner-only mode, exact size)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise WriterKeyError(f"writer key {path} does not exist") from None
    if mode & 0o077:
        raise WriterKeyError(
            f"writer key {path} is accessible by others (mode {mode:04o}): run `chmod 600 {path}`"
        )
    raw = path.read_bytes()
    if len(raw) != PRIVATE_KEY_BYTES:
        raise WriterKeyError(f"writer key {path} is damaged ({len(raw)} bytes, expected 32)")
    return Keypair.from_private_bytes(raw)


def load_or_create_writer_key(
    path: Path, *, new_key: Callable[[], Keypair] = Keypair.generate
) -> Keypair:
    """The writer key at ``path``, created from ``new_key()`` (0600, durably) if there is none."""
    path = Path(path)
    if path.exists():
        return load_writer_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=KEY_DIR_MODE)
    keypair = new_key()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)
        os.write(fd, keypair.private_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process created meanwhile
    except FileExistsError:
        return load_writer_key(path)
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return load_writer_key(path)
