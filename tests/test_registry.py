"""The subnet's champion in the MLflow model registry: moves only to a better model, loads safely.

Real models: two small MLPs trained with ``tasks.miner_kit.train_mlp`` on ``digits`` and saved
with ``save_submission``. Pickle deserialisation is off (``tests/conftest.py``), and
``load_champion`` is run with ``torch.load`` and ``pickle`` booby-trapped.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from test_track import epoch_kwargs, epoch_runs, shared_store
from torch import nn

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.tasks.artifact_store import store as store_artifact
from taoflow.tasks.miner_kit import train_mlp
from taoflow.tasks.models.artifacts import artifact_digest, save_submission
from taoflow.tasks.models.families import FamilyLimits
from taoflow.tasks.registry import (
    CHAMPION_ALIAS,
    ChampionCandidate,
    ChampionIntegrityError,
    ChampionNotFound,
    champion_from_metagraph,
    current_champion,
    discard_run_versions,
    load_champion,
    registered_model_name,
)
from taoflow.tasks.track import STATUS_COMPLETE, STATUS_TAG, log_epoch

LIMITS = FamilyLimits(
    params_max=50_000, bytes_max=400_000, layers_max=4, input_dim=64, num_classes=10
)
_subnet_numbers = itertools.count()


@dataclass(frozen=True)
class Submission:
    model: nn.Module
    model_path: Path
    config_path: Path
    digest: str

    def candidate(self, *, uid: int, score: float) -> ChampionCandidate:
        return ChampionCandidate(
            uid=uid,
            hotkey=f"hotkey-{uid}",
            digest=self.digest,
            score=score,
            model_path=self.model_path,
            config_path=self.config_path,
        )


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Submission, Submission]:
    eval_set = load_evaluation_set("digits")
    made = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP trains faster on one thread
    try:
        trained = [train_mlp(eval_set, hidden_sizes=(16,), epochs=1, seed=seed) for seed in (0, 1)]
    finally:
        torch.set_num_threads(threads)
    for seed, (model, config) in enumerate(trained):
        directory = tmp_path_factory.mktemp(f"submission{seed}")
        model_path, config_path = save_submission(model, config, directory)
        digest = artifact_digest(
            model_bytes=model_path.read_bytes(), config_bytes=config_path.read_bytes()
        )
        made.append(Submission(model, model_path, config_path, digest))
    assert made[0].digest != made[1].digest
    return made[0], made[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return shared_store(tmp_path_factory)  # subnets are unique per test: no interference


@pytest.fixture
def subnet() -> Iterator[str]:
    yield f"registry{next(_subnet_numbers)}"


def log(store: tuple[str, Path], subnet: str, epoch: int, **overrides: Any) -> str:
    uri, artifacts_dir = store
    kwargs = {**epoch_kwargs(subnet, epoch), **overrides}
    return log_epoch(tracking_uri=uri, artifacts_dir=artifacts_dir, **kwargs)


def client_for(store: tuple[str, Path]) -> MlflowClient:
    return MlflowClient(tracking_uri=store[0], registry_uri=store[0])


def champion_version(store: tuple[str, Path], subnet: str) -> str | None:
    found = current_champion(client_for(store), subnet=subnet)
    return None if found is None else str(found.version)


def versions(store: tuple[str, Path], subnet: str) -> list[str]:
    name = registered_model_name(subnet)
    found = client_for(store).search_model_versions(f"name = '{name}'")
    return sorted(str(v.version) for v in found)


def predictions(model: nn.Module) -> np.ndarray:
    features, _ = load_evaluation_set("digits").arrays("test")
    with torch.inference_mode():
        return model(torch.from_numpy(features)).numpy()


def test_champion_alias_moves_only_to_a_better_model(
    store: tuple[str, Path], subnet: str, submissions: tuple[Submission, Submission]
) -> None:
    a, b = submissions
    client = client_for(store)
    first = log(store, subnet, 0, champion=a.candidate(uid=2, score=0.6))
    assert champion_version(store, subnet) == "1"
    mv = client.get_model_version(registered_model_name(subnet), "1")
    assert mv.run_id == first
    assert mv.tags == {
        "subnet": subnet,
        "epoch": "0",
        "uid": "2",
        "hotkey": "hotkey-2",
        "digest": a.digest,
        "score": "0.6",
    }
    assert client.get_run(first).data.tags["taoflow.champion.promoted"] == "true"
    assert {x.path for x in client.list_artifacts(first, "champion")} == {
        "champion/model.safetensors",
        "champion/config.json",
    }

    worse = log(store, subnet, 1, champion=b.candidate(uid=3, score=0.5))
    assert champion_version(store, subnet) == "1"
    assert versions(store, subnet) == ["1"]
    assert client.get_run(worse).data.tags["taoflow.champion.promoted"] == "false"

    log(store, subnet, 2, champion=b.candidate(uid=3, score=0.7))  # better: promoted
    assert champion_version(store, subnet) == "2"
    log(store, subnet, 3, champion=a.candidate(uid=2, score=0.7))  # a tie keeps the incumbent
    assert champion_version(store, subnet) == "2"
    same = log(store, subnet, 4, champion=b.candidate(uid=3, score=0.65))  # same digest
    assert champion_version(store, subnet) == "2"
    assert versions(store, subnet) == ["1", "2"]
    assert client.get_run(same).data.tags["taoflow.champion.reason"] == (
        "candidate is already champion"
    )
    log(store, subnet, 4, champion=a.candidate(uid=2, score=0.99))  # retried epoch: no-op
    assert versions(store, subnet) == ["1", "2"]


def test_load_champion_returns_the_same_model_without_pickle(
    store: tuple[str, Path],
    subnet: str,
    submissions: tuple[Submission, Submission],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = submissions
    log(store, subnet, 0, champion=a.candidate(uid=2, score=0.6))
    log(store, subnet, 1, champion=b.candidate(uid=3, score=0.8))

    def no_unpickling(*args: object, **kwargs: object) -> object:
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    model, tags = load_champion(tracking_uri=store[0], subnet=subnet, limits=LIMITS)
    assert tags["digest"] == b.digest
    assert tags["uid"] == "3"
    assert tags["epoch"] == "1"
    assert float(tags["score"]) == 0.8
    assert tags["model_version"] == "2"
    assert not model.training
    np.testing.assert_array_equal(predictions(model), predictions(b.model))


def test_load_champion_without_one_raises(store: tuple[str, Path], subnet: str) -> None:
    with pytest.raises(ChampionNotFound):
        load_champion(tracking_uri=store[0], subnet=subnet, limits=LIMITS)
    log(store, subnet, 0)  # a run without a champion registers nothing
    with pytest.raises(ChampionNotFound):
        load_champion(tracking_uri=store[0], subnet=subnet, limits=LIMITS)


def test_tampered_champion_files_are_refused(
    store: tuple[str, Path], subnet: str, submissions: tuple[Submission, Submission]
) -> None:
    a, b = submissions
    run_id = log(store, subnet, 0, champion=a.candidate(uid=2, score=0.6))
    stored = Path(store[1]) / subnet / run_id / "artifacts" / "champion" / "model.safetensors"
    assert stored.read_bytes() == a.model_path.read_bytes()
    stored.write_bytes(b.model_path.read_bytes())
    with pytest.raises(ChampionIntegrityError, match="hash to"):
        load_champion(tracking_uri=store[0], subnet=subnet, limits=LIMITS)


def test_a_candidate_whose_files_do_not_match_its_digest_is_refused(
    store: tuple[str, Path], subnet: str, submissions: tuple[Submission, Submission]
) -> None:
    a, b = submissions
    forged = ChampionCandidate(
        uid=2,
        hotkey="hotkey-2",
        digest=b.digest,
        score=0.9,
        model_path=a.model_path,
        config_path=a.config_path,
    )
    with pytest.raises(ChampionIntegrityError):
        log(store, subnet, 0, champion=forged)
    assert champion_version(store, subnet) is None
    assert epoch_runs(store[0], subnet, 0, view=ViewType.ALL) == []  # checked before any run


def test_registration_of_a_crashed_run_is_undone_and_the_champion_reelected(
    store: tuple[str, Path],
    subnet: str,
    submissions: tuple[Submission, Submission],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = submissions
    log(store, subnet, 0, champion=a.candidate(uid=2, score=0.6))

    def crash(self: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
        raise MlflowException("simulated crash after registration")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_terminated", crash)
        with pytest.raises(MlflowException):
            log(store, subnet, 1, champion=b.candidate(uid=3, score=0.9))
    assert champion_version(store, subnet) == "2"  # registered before the crash
    (crashed,) = epoch_runs(store[0], subnet, 1)

    assert discard_run_versions(client_for(store), subnet=subnet, run_id=crashed.info.run_id) == [
        "2"
    ]
    assert champion_version(store, subnet) == "1"  # re-elected from what is left

    run_id = log(store, subnet, 1, champion=b.candidate(uid=3, score=0.9))
    assert versions(store, subnet) == ["1", "3"]
    champion = current_champion(client_for(store), subnet=subnet)
    assert champion is not None
    assert (champion.version, champion.run_id) == (3, run_id)
    assert client_for(store).get_run(run_id).data.tags[STATUS_TAG] == STATUS_COMPLETE
    name = registered_model_name(subnet)
    assert client_for(store).get_registered_model(name).aliases == {CHAMPION_ALIAS: 3}


def test_champion_from_metagraph_picks_the_best_stored_error_free_submission(
    tmp_path: Path, submissions: tuple[Submission, Submission]
) -> None:
    a, b = submissions
    root = tmp_path / "artifacts"
    for sub in (a, b):
        stored = store_artifact(
            root, model_bytes=sub.model_path.read_bytes(), config_bytes=sub.config_path.read_bytes()
        )
        assert stored.digest == sub.digest
    missing = "f" * 64
    rows = [
        # uid, score, digest, error
        (0, None, None, None),  # a validator
        (1, 0.95, a.digest, "timeout: took too long"),  # failed: not eligible
        (2, 0.9, missing, None),  # not in the store
        (3, 0.8, b.digest, None),
        (4, 0.8, a.digest, None),  # same score: the lower uid (3) wins
        (5, float("nan"), a.digest, None),
    ]
    metagraph = pa.Table.from_pylist(
        [
            {"uid": u, "hotkey": f"hotkey-{u}", "score": s, "artifact_digest": d, "error": e}
            for u, s, d, e in rows
        ]
    )
    candidate = champion_from_metagraph(metagraph, artifacts_root=root)
    assert candidate is not None
    assert (candidate.uid, candidate.hotkey, candidate.digest, candidate.score) == (
        3,
        "hotkey-3",
        b.digest,
        0.8,
    )
    assert candidate.model_path.read_bytes() == b.model_path.read_bytes()
    nobody = metagraph.filter(pa.array([u in (0, 1) for u, *_ in rows]))
    assert champion_from_metagraph(nobody, artifacts_root=root) is None


def test_registered_model_names_are_ones_mlflow_accepts() -> None:
    assert registered_model_name("digits") == "taoflow-digits"
    odd = registered_model_name("a/b:c 'd'")
    assert odd.startswith("taoflow-a_b_c__d_-")
    assert not set(odd) & set("/:' ")
    assert registered_model_name("a/b") != registered_model_name("a_b")
