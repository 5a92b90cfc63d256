"""The evaluate stage: one evaluation per model, scored per hosted validator on its own rows.

The reference is the previous design, computed here by hand: for every hosted validator, each
model evaluated alone on exactly that validator's rows.  The stage must give the same floats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.network import subnet_config
from taoflow.tasks import artifact_store
from taoflow.tasks.evaluate.runner import EvalJob, evaluate_job
from taoflow.tasks.evaluate.sampling import derive_seed
from taoflow.tasks.evaluate.stage import (
    evaluate_epoch,
    family_limits,
    validator_positions,
    validator_samples,
)
from taoflow.tasks.gather import EpochContext, NeuronView
from taoflow.tasks.models import ModelConfig, build_model, submission_bytes


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def _neuron(uid: int, role: str, **kwargs: object) -> NeuronView:
    return NeuronView(
        uid=uid,
        hotkey=f"{uid:064x}",
        coldkey=f"{uid + 1000:064x}",
        role=role,
        registered_block=0,
        stake_rao=1_000 if role == "validator" else 0,
        artifact_digest=None,
        artifact_uri=None,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpochContext, Path]:
    """3 validators (one not hosted), 8 stored MLPs, a garbage one, one missing, one without."""
    root = tmp_path_factory.mktemp("artifacts")
    eval_set = load_evaluation_set("digits")
    config = subnet_config(eval_set, sample_size=120, validator_sample_size=50)
    neurons = [
        _neuron(0, "validator"),
        _neuron(1, "validator"),
        _neuron(2, "validator", validator_settings={"hosted": False}),
    ]
    for uid in range(3, 11):
        model_config = ModelConfig("mlp", 64, ((8,), (16,))[uid % 2], 10)
        torch.manual_seed(uid)
        model_bytes, config_bytes = submission_bytes(build_model(model_config), model_config)
        stored = artifact_store.store(root, model_bytes=model_bytes, config_bytes=config_bytes)
        neurons.append(dataclasses.replace(_neuron(uid, "miner"), artifact_digest=stored.digest))
    garbage = artifact_store.store(root, model_bytes=b"junk", config_bytes=b"{}")
    neurons.append(dataclasses.replace(_neuron(11, "miner"), artifact_digest=garbage.digest))
    neurons.append(dataclasses.replace(_neuron(12, "miner"), artifact_digest="ab" * 32))
    neurons.append(_neuron(13, "miner"))  # nothing submitted: not scored
    ctx = EpochContext(
        subnet="digits",
        epoch=3,
        block=400,
        tempo_blocks=100,
        emission_rao=10**9,
        parent_hash="00" * 32,
        seed_hex=derive_seed("head", "digits", 3).hex(),
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload(config),
        neurons=tuple(neurons),
    )
    return ctx, root


def test_scores_equal_per_validator_evaluation_of_each_model(
    world: tuple[EpochContext, Path], client: Client
) -> None:
    ctx, root = world
    outcome = evaluate_epoch(ctx, client=client, artifacts_root=root)

    eval_set = load_evaluation_set("digits")
    features, labels = eval_set.arrays("test")
    limits = family_limits(ctx.config, eval_set=eval_set)
    expected: dict[int, dict[int, float]] = {}
    for validator, rows in validator_samples(ctx, population=len(labels)).items():
        row: dict[int, float] = {12: 0.0}
        for neuron in ctx.neurons[3:12]:
            assert neuron.artifact_digest is not None
            stored = artifact_store.locate(root, neuron.artifact_digest)
            job = EvalJob(neuron.uid, str(stored.model_path), str(stored.config_path))
            result = evaluate_job(job, features=features[rows], labels=labels[rows], limits=limits)
            row[neuron.uid] = result.score
        expected[validator] = dict(sorted(row.items()))

    assert outcome.scores == expected
    assert sorted(outcome.scores) == [0, 1]  # validator 2 is not hosted
    assert outcome.scores[0] != outcome.scores[1]  # their subsamples differ
    assert outcome.sample_size == 50
    assert sorted(outcome.errors) == [11, 12]
    assert outcome.errors[11].startswith("bad_config:")
    assert "not in the store" in outcome.errors[12]
    assert all(13 not in row for row in outcome.scores.values())


def test_validator_positions_index_the_epoch_sample(world: tuple[EpochContext, Path]) -> None:
    ctx, _ = world
    epoch_rows, positions = validator_positions(ctx, population=360)
    assert epoch_rows.shape == (120,) and np.all(np.diff(epoch_rows) > 0)
    samples = validator_samples(ctx, population=360)
    assert sorted(positions) == sorted(samples) == [0, 1]
    for uid, picks in positions.items():
        assert picks.shape == (50,) and picks.max() < 120
        assert np.array_equal(epoch_rows[picks], samples[uid])


def test_without_hosted_validators_nothing_is_evaluated(
    world: tuple[EpochContext, Path], client: Client
) -> None:
    ctx, root = world
    external_only = dataclasses.replace(
        ctx,
        neurons=tuple(
            dataclasses.replace(n, validator_settings={"hosted": False})
            if n.role == "validator"
            else n
            for n in ctx.neurons
        ),
    )
    outcome = evaluate_epoch(external_only, client=client, artifacts_root=root)
    assert outcome.scores == {} and outcome.sample_size == 0
    assert sorted(outcome.errors) == [12]  # only what planning found: nothing was evaluated
