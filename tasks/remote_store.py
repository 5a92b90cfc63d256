"""Remote artifact stores: any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``file:///…``).

The local content-addressed store (``tasks.artifact_store``) stays the evaluation cache; a remote
store is where miners publish and where validators fetch from.

Invariants / fault model: an artifact lives at ``<url>/<digest[:2]>/<digest>/{model.safetensors,
config.json}``; it is uploaded to temporary names and moved into place; a fetched artifact is
read with a byte cap (``FETCH_BYTES_MAX`` per file) and accepted only if its content hashes to the
digest committed on the ledger — a store cannot substitute other bytes. Nothing is deserialised
here.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import fsspec

from tasks.artifact_store import CONFIG_FILE, MODEL_FILE, StoredArtifact, locate, store
from tasks.models.artifacts import artifact_digest

FETCH_BYTES_MAX = 64 * 1024 * 1024
URL_SCHEME_SEPARATOR = "://"


class RemoteArtifactError(RuntimeError):
    """A remote artifact could not be published or fetched; the message says why."""


def artifact_url(store_url: str, digest: str) -> str:
    return f"{store_url.rstrip('/')}/{digest[:2]}/{digest}"


def is_remote_uri(uri: str | None) -> bool:
    return bool(uri) and URL_SCHEME_SEPARATOR in str(uri) and not str(uri).startswith("artifact://")


def publish(store_url: str, *, model_bytes: bytes, config_bytes: bytes) -> str:
    """Upload an artifact by content; return its URL (the uri committed to the ledger)."""
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    base = artifact_url(store_url, digest)
    try:
        fs, root = fsspec.core.url_to_fs(base)
        fs.makedirs(root, exist_ok=True)
        for name, data in ((MODEL_FILE, model_bytes), (CONFIG_FILE, config_bytes)):
            final = f"{root}/{name}"
            if fs.exists(final):
                continue
            tmp = f"{root}/.{name}.{secrets.token_hex(6)}.tmp"
            with fs.open(tmp, "wb") as handle:
                handle.write(data)
            fs.mv(tmp, final)
    except (OSError, ValueError, ImportError) as exc:
        raise RemoteArtifactError(f"cannot publish to {store_url}: {exc}") from exc
    return base


def _read_capped(fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    with fs.open(path, "rb") as handle:
        data: bytes = handle.read(FETCH_BYTES_MAX + 1)
    if len(data) > FETCH_BYTES_MAX:
        raise RemoteArtifactError(f"{path} is larger than {FETCH_BYTES_MAX:,} bytes")
    return data


def fetch(uri: str, *, digest: str, cache_root: Path) -> StoredArtifact:
    """Fetch the artifact at ``uri`` into the local cache, checking it hashes to ``digest``."""
    cached = locate(cache_root, digest)
    if cached.model_path.exists() and cached.config_path.exists():
        return cached
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        model_bytes = _read_capped(fs, f"{root}/{MODEL_FILE}")
        config_bytes = _read_capped(fs, f"{root}/{CONFIG_FILE}")
    except (OSError, ValueError, ImportError) as exc:
        raise RemoteArtifactError(f"cannot fetch {uri}: {exc}") from exc
    if artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes) != digest:
        raise RemoteArtifactError(f"{uri} does not hash to the committed digest {digest[:12]}…")
    return store(cache_root, model_bytes=model_bytes, config_bytes=config_bytes)
