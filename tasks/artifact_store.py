"""Content-addressed artifact store for miners' submissions (safetensors + JSON config).

Invariants: an artifact is stored under its digest (``artifact_digest`` of model and config
bytes) and never changes afterwards; a write goes to a temporary directory and is renamed into
place, so a reader never sees half an artifact; storing the same bytes twice is a no-op.
Nothing here deserialises the bytes: validation happens in ``tasks.models.artifacts``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from taoflow.tasks.models.artifacts import artifact_digest

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
URI_SCHEME = "artifact://"


@dataclass(frozen=True)
class StoredArtifact:
    digest: str
    model_path: Path
    config_path: Path

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}{self.digest}"


def artifact_dir(root: Path, digest: str) -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not an artifact digest: {digest!r}")
    return Path(root) / digest[:2] / digest


def locate(root: Path, digest: str) -> StoredArtifact:
    """Where the artifact ``digest`` lives (it may not exist)."""
    directory = artifact_dir(root, digest)
    return StoredArtifact(digest, directory / MODEL_FILE, directory / CONFIG_FILE)


def store(root: Path, *, model_bytes: bytes, config_bytes: bytes) -> StoredArtifact:
    """Store an artifact by content; return where it lives."""
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    target = locate(root, digest)
    if target.model_path.exists() and target.config_path.exists():
        return target
    parent = target.model_path.parent.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        for name, data in ((MODEL_FILE, model_bytes), (CONFIG_FILE, config_bytes)):
            with (staging / name).open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        try:
            os.rename(staging, target.model_path.parent)
        except OSError:
            if not target.model_path.exists():  # not a concurrent identical store
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
