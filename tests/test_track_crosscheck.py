"""What ``verify --cross-check`` reads back: the epoch runs' batch hashes in MLflow (not the
series run's), and the batch hash in each epoch's Prefect summary as the summary writes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_track import log, shared_store

from taoflow.crosscheck import published_in_mlflow, summary_batch_hash
from taoflow.tasks.summary import markdown_summary

BATCH_HASH = "ab" * 32


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return shared_store(tmp_path_factory)


def test_mlflow_publishes_one_hash_per_epoch_run_and_none_for_the_series_run(
    store: tuple[str, Path],
) -> None:
    for epoch in (0, 1):
        log(store, "crosscheck0", epoch)
    published = {k: v for k, v in published_in_mlflow(store[0]).items() if k[0] == "crosscheck0"}
    assert published == {("crosscheck0", 0): {"batch-00"}, ("crosscheck0", 1): {"batch-01"}}


def test_the_summary_artifact_is_read_back_as_the_summary_writes_it() -> None:
    text = markdown_summary(
        subnet="digits",
        epoch=3,
        block=400,
        emission_rao=100_000_000_000,
        batch_no=5,
        batch_hash=BATCH_HASH,
        metagraph=[],
    )
    assert summary_batch_hash(text) == ("digits", 3, BATCH_HASH)


def test_older_summaries_are_read_and_one_without_a_batch_is_not() -> None:
    older = f"# digits — epoch 2\n\n* ledger batch 4 `{BATCH_HASH}`\n"
    assert summary_batch_hash(older) == ("digits", 2, BATCH_HASH)
    committed_before = markdown_summary(
        subnet="digits",
        epoch=3,
        block=400,
        emission_rao=0,
        batch_no=None,
        batch_hash=None,
        metagraph=[],
    )
    assert summary_batch_hash(committed_before) is None
    assert summary_batch_hash(f"# digits · epoch x\n* ledger batch 4 `{BATCH_HASH}`") is None
