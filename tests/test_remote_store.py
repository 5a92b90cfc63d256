"""Remote (fsspec) artifact stores: publish, fetch into the local cache, refuse substitutions."""

from __future__ import annotations

from pathlib import Path

import pytest

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.tasks.artifact_store import locate
from taoflow.tasks.gather import EpochContext, NeuronView
from taoflow.tasks.miner_kit import train_mlp
from taoflow.tasks.models.artifacts import artifact_digest, submission_bytes
from taoflow.tasks.remote_store import (
    FetchPolicy,
    RemoteArtifactError,
    fetch,
    is_remote_uri,
    publish,
)


@pytest.fixture(scope="module")
def artifact() -> tuple[bytes, bytes]:
    model, config = train_mlp(load_evaluation_set("digits"), hidden_sizes=(8,), epochs=1, seed=3)
    return submission_bytes(model, config)


def test_publish_then_fetch_round_trip(tmp_path: Path, artifact: tuple[bytes, bytes]) -> None:
    model_bytes, config_bytes = artifact
    url = publish(
        (tmp_path / "remote").as_uri(), model_bytes=model_bytes, config_bytes=config_bytes
    )
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    assert is_remote_uri(url) and url.endswith(digest)
    fetched = fetch(
        url,
        digest=digest,
        cache_root=tmp_path / "cache",
        policy=FetchPolicy(store_urls=((tmp_path / "remote").as_uri(),)),
    )
    assert fetched.model_path.read_bytes() == model_bytes
    assert fetched.config_path.read_bytes() == config_bytes


def test_a_store_cannot_substitute_other_bytes(
    tmp_path: Path, artifact: tuple[bytes, bytes]
) -> None:
    model_bytes, config_bytes = artifact
    url = publish(
        (tmp_path / "remote").as_uri(), model_bytes=model_bytes, config_bytes=config_bytes
    )
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    target = Path(url.removeprefix("file://")) / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(RemoteArtifactError, match="does not hash"):
        fetch(
            url,
            digest=digest,
            cache_root=tmp_path / "cache",
            policy=FetchPolicy(store_urls=((tmp_path / "remote").as_uri(),)),
        )
    assert not locate(tmp_path / "cache", digest).model_path.exists()


def test_evaluation_fetches_remote_artifacts(tmp_path: Path, artifact: tuple[bytes, bytes]) -> None:
    from taoflow.tasks.evaluate.stage import plan_jobs

    model_bytes, config_bytes = artifact
    url = publish(
        (tmp_path / "remote").as_uri(), model_bytes=model_bytes, config_bytes=config_bytes
    )
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    neurons = (
        NeuronView(
            uid=0,
            hotkey="h0",
            coldkey="c0",
            role="miner",
            registered_block=0,
            stake_rao=0,
            artifact_digest=digest,
            artifact_uri=url,
        ),
        NeuronView(
            uid=1,
            hotkey="h1",
            coldkey="c1",
            role="miner",
            registered_block=0,
            stake_rao=0,
            artifact_digest="ab" * 32,
            artifact_uri=url + "-missing",
        ),
    )
    ctx = EpochContext(
        subnet="s",
        epoch=0,
        block=1,
        tempo_blocks=1,
        emission_rao=0,
        parent_hash="0" * 64,
        seed_hex="00",
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload({"tempo_blocks": 100}),
        neurons=neurons,
    )
    policy = FetchPolicy(store_urls=((tmp_path / "remote").as_uri(),))
    jobs, errors = plan_jobs(ctx, artifacts_root=tmp_path / "cache", fetch_policy=policy)
    assert [job.uid for job in jobs] == [0]
    assert Path(jobs[0].model_path).read_bytes() == model_bytes
    assert errors[1] == (
        f"unreadable: artifact uri does not name the committed digest in its store: {url}-missing"
    )
    assert sorted(errors) == [1]
