"""The subnet's best model in the MLflow model registry: alias ``champion``, loaded without pickle.

One registered model per subnet, ``taoflow-<subnet>`` (see :func:`registered_model_name` for
subnet names MLflow would refuse). Each version's files are a submission
exactly as miners commit it (``model.safetensors`` + ``config.json``, logged under
``champion/`` of the epoch's run) and its tags say where it came from: ``subnet``, ``epoch``,
``uid``, ``hotkey``, ``digest`` (the artifact's content address) and ``score`` (the mean score
of that epoch, ``repr`` of a float).

Invariants:

* the alias ``champion`` only moves to a candidate whose score is strictly higher than the
  current champion's; a candidate with the current champion's digest is already champion (no
  new version, whatever its score this epoch); ties keep the incumbent; a non-finite score
  never wins. A missing or malformed ``score`` tag on the incumbent counts as ``-inf``;
* registration is idempotent per run: a version already created from the same run is reused;
* :func:`discard_run_versions` undoes what a crashed run registered (its versions are deleted)
  and re-elects the best remaining version, so a deleted run never stays champion;
* :func:`load_champion` never unpickles: it downloads the two files, checks their digest
  against the version's ``digest`` tag and hands the bytes to
  :func:`tasks.models.artifacts.load_submission` (reads are bounded by the limits).

Fault model: the registry is a shared database; concurrent registration for the same subnet is
not serialised (the pipeline registers once per epoch, after the ledger commit). MLflow errors
propagate to the caller (``tasks.track`` / ``tasks.track_outbox`` decide what to do with them).
The downloaded files are hostile; a mismatching digest raises :class:`ChampionIntegrityError`,
a rejected artifact raises :class:`tasks.models.artifacts.ArtifactRejected`.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import torch
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from taoflow.tasks.artifact_store import locate
from taoflow.tasks.models.artifacts import ArtifactRejected, artifact_digest, load_submission
from taoflow.tasks.models.families import CONFIG_BYTES_MAX, FamilyLimits

REGISTERED_MODEL_PREFIX: Final = "taoflow-"
CHAMPION_ALIAS: Final = "champion"
CHAMPION_ARTIFACT_DIR: Final = "champion"
MODEL_FILE: Final = "model.safetensors"
CONFIG_FILE: Final = "config.json"
_HEX: Final = frozenset("0123456789abcdef")
_SAFE_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_UNSAFE_CHARS_RE: Final = re.compile(r"[^A-Za-z0-9_.-]")


class ChampionNotFound(LookupError):
    """The subnet has no registered model, or no version carries the ``champion`` alias."""


class ChampionIntegrityError(ValueError):
    """The champion's downloaded files do not hash to the version's ``digest`` tag."""


@dataclass(frozen=True)
class ChampionCandidate:
    """The epoch's best model: who submitted it, its content address, its score and its files."""

    uid: int
    hotkey: str
    digest: str
    score: float
    model_path: Path
    config_path: Path

    def __post_init__(self) -> None:
        if len(self.digest) != 64 or not set(self.digest) <= _HEX:
            raise ValueError(f"not an artifact digest: {self.digest!r}")
        if type(self.uid) is not int or self.uid < 0:
            raise ValueError(f"uid must be a non-negative int, got {self.uid!r}")
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "model_path", Path(self.model_path))
        object.__setattr__(self, "config_path", Path(self.config_path))


@dataclass(frozen=True)
class ChampionDecision:
    """What :func:`register_champion` did: ``version`` is the champion's version afterwards."""

    promoted: bool
    version: str | None
    reason: str


def champion_from_metagraph(
    metagraph: pa.Table, *, artifacts_root: Path
) -> ChampionCandidate | None:
    """The epoch's best submission as a candidate, or ``None`` if no uid qualifies.

    Qualifies: a stored artifact (``artifact_digest`` set and its files present under
    ``artifacts_root``), no evaluation ``error``, and a finite ``score`` > 0. Highest score
    wins; ties go to the lowest uid.
    """
    needed = ("uid", "hotkey", "score", "artifact_digest", "error")
    if any(column not in metagraph.column_names for column in needed):
        return None
    best: ChampionCandidate | None = None
    rows = zip(*(metagraph.column(c).to_pylist() for c in needed), strict=True)
    for uid, hotkey, score, digest, error in rows:
        if digest is None or error is not None or score is None:
            continue
        if not (math.isfinite(float(score)) and float(score) > 0.0):
            continue
        if best is not None and (float(score), -int(uid)) <= (best.score, -best.uid):
            continue
        try:
            stored = locate(artifacts_root, str(digest))
        except ValueError:  # not a digest: nothing can be stored under it
            continue
        if stored.model_path.is_file() and stored.config_path.is_file():
            best = ChampionCandidate(
                uid=int(uid),
                hotkey=str(hotkey),
                digest=str(digest),
                score=float(score),
                model_path=stored.model_path,
                config_path=stored.config_path,
            )
    return best


def registered_model_name(subnet: str) -> str:
    """``taoflow-<subnet>``; a subnet name MLflow would refuse (``/``, ``:``) or that could not
    be quoted in a filter is spelled with ``_`` for such characters plus 8 hex of its sha256."""
    if _SAFE_NAME_RE.fullmatch(subnet):
        return f"{REGISTERED_MODEL_PREFIX}{subnet}"
    spelled = _UNSAFE_CHARS_RE.sub("_", subnet)[:64]
    suffix = hashlib.sha256(subnet.encode("utf-8")).hexdigest()[:8]
    return f"{REGISTERED_MODEL_PREFIX}{spelled}-{suffix}"


def _error_code(exc: MlflowException) -> str:
    return str(exc.error_code)


def _registered_aliases(client: MlflowClient, name: str) -> dict[str, str] | None:
    """The registered model's alias → version, or ``None`` if the model does not exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _error_code(exc) == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    return {str(alias): str(version) for alias, version in dict(model.aliases or {}).items()}


def current_champion(client: MlflowClient, *, subnet: str) -> ModelVersion | None:
    """The version the ``champion`` alias points at, or ``None``."""
    name = registered_model_name(subnet)
    aliases = _registered_aliases(client, name)
    if not aliases or CHAMPION_ALIAS not in aliases:
        return None
    return client.get_model_version(name, aliases[CHAMPION_ALIAS])


def _tag_score(version: ModelVersion) -> float:
    try:
        score = float(dict(version.tags or {}).get("score", "-inf"))
    except ValueError:
        return -math.inf
    return score if math.isfinite(score) else -math.inf


def _versions_of_run(client: MlflowClient, *, name: str, run_id: str) -> list[ModelVersion]:
    if not run_id or not set(run_id) <= _HEX:
        raise ValueError(f"not an MLflow run id: {run_id!r}")
    found = client.search_model_versions(f"run_id = '{run_id}'")
    return sorted((v for v in found if v.name == name), key=lambda v: int(v.version))


def register_champion(
    client: MlflowClient,
    *,
    subnet: str,
    epoch: int,
    run_id: str,
    candidate: ChampionCandidate,
) -> ChampionDecision:
    """Register ``candidate`` (already logged under ``champion/`` of ``run_id``) if it wins.

    Creates the registered model ``taoflow-<subnet>`` when missing. Returns what happened.
    """
    name = registered_model_name(subnet)
    if _registered_aliases(client, name) is None:
        client.create_registered_model(
            name, description=f"Best model of subnet {subnet!r} (alias {CHAMPION_ALIAS!r})."
        )
    current = current_champion(client, subnet=subnet)
    if current is not None:
        current_digest = dict(current.tags or {}).get("digest")
        if current_digest == candidate.digest:
            return ChampionDecision(False, str(current.version), "candidate is already champion")
        current_score = _tag_score(current)
        if not candidate.score > current_score:
            return ChampionDecision(
                False,
                str(current.version),
                f"score {candidate.score!r} does not beat champion's {current_score!r}",
            )
    elif not math.isfinite(candidate.score):
        return ChampionDecision(False, None, f"score {candidate.score!r} is not finite")
    existing = _versions_of_run(client, name=name, run_id=run_id)
    if existing:
        version = str(existing[0].version)
    else:
        created = client.create_model_version(
            name,
            f"runs:/{run_id}/{CHAMPION_ARTIFACT_DIR}",
            run_id=run_id,
            tags={
                "subnet": subnet,
                "epoch": str(epoch),
                "uid": str(candidate.uid),
                "hotkey": candidate.hotkey,
                "digest": candidate.digest,
                "score": repr(candidate.score),
            },
            description=f"uid {candidate.uid} at epoch {epoch}, score {candidate.score:.6f}",
        )
        version = str(created.version)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return ChampionDecision(True, version, "promoted")


def discard_run_versions(client: MlflowClient, *, subnet: str, run_id: str) -> list[str]:
    """Delete the versions registered from ``run_id`` and re-elect the champion if it was one.

    Returns the deleted version numbers. The new champion is the remaining version with the
    highest ``score`` tag (the oldest on ties); with none left the alias is absent.
    """
    name = registered_model_name(subnet)
    if _registered_aliases(client, name) is None:
        return []
    doomed = _versions_of_run(client, name=name, run_id=run_id)
    for version in doomed:
        client.delete_model_version(name, str(version.version))
    aliases = _registered_aliases(client, name) or {}
    if doomed and CHAMPION_ALIAS not in aliases:
        remaining = sorted(
            _versions_of_model(client, name=name),
            key=lambda v: (-_tag_score(v), int(v.version)),
        )
        if remaining:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, str(remaining[0].version))
    return [str(v.version) for v in doomed]


def _versions_of_model(client: MlflowClient, *, name: str) -> list[ModelVersion]:
    return list(client.search_model_versions(f"name = '{name}'"))  # names are filter-safe


def _read_bounded(path: Path, *, bytes_max: int, code: str) -> bytes:
    """At most ``bytes_max`` bytes of ``path``; a longer file is rejected without reading it."""
    with path.open("rb") as handle:
        data = handle.read(bytes_max + 1)
    if len(data) > bytes_max:
        raise ArtifactRejected(code, f"{path.name} is larger than {bytes_max} bytes")
    return data


def load_champion(
    *, tracking_uri: str, subnet: str, limits: FamilyLimits
) -> tuple[torch.nn.Module, dict[str, str]]:
    """Download and safely load the subnet's champion; return ``(model, tags)``.

    ``tags`` are the version's tags (``subnet``, ``epoch``, ``uid``, ``hotkey``, ``digest``,
    ``score``) plus ``model_version``. The model is a float32 CPU module in ``eval()`` mode.
    Raises :class:`ChampionNotFound`, :class:`ChampionIntegrityError` or
    :class:`~tasks.models.artifacts.ArtifactRejected`.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    champion = current_champion(client, subnet=subnet)
    if champion is None:
        raise ChampionNotFound(
            f"no {CHAMPION_ALIAS!r} alias on registered model {registered_model_name(subnet)!r}"
        )
    tags = {str(k): str(v) for k, v in dict(champion.tags or {}).items()}
    source = client.get_model_version_download_uri(champion.name, str(champion.version))
    with tempfile.TemporaryDirectory(prefix="taoflow-champion-") as tmp:
        paths = {}
        for file_name in (MODEL_FILE, CONFIG_FILE):
            local = download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/{file_name}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
            paths[file_name] = Path(local)
        model_bytes = _read_bounded(paths[MODEL_FILE], bytes_max=limits.bytes_max, code="too_large")
        config_bytes = _read_bounded(
            paths[CONFIG_FILE], bytes_max=CONFIG_BYTES_MAX, code="bad_config"
        )
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    if digest != tags.get("digest"):
        raise ChampionIntegrityError(
            f"champion v{champion.version} files hash to {digest}, tag says {tags.get('digest')}"
        )
    model = load_submission(model_bytes=model_bytes, config_bytes=config_bytes, limits=limits)
    return model, {**tags, "model_version": str(champion.version)}
