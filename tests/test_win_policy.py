"""Hosted validators' ``win_policy: "bootstrap"``: significance-tested pairwise wins.

A newer model beats an older one only if the paired bootstrap percentile interval of its
accuracy advantage on the validator's rows lies above zero; everything here is seeded, so each
assertion is an exact outcome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taoflow.tasks import weights as weights_module
from taoflow.tasks.weights import (
    BOOTSTRAP_RESAMPLES_MAX,
    U16_MAX,
    EpochCorrectness,
    InvalidValidatorPolicy,
    ValidatorPolicy,
    ValidatorRows,
    advantage_interval,
    bootstrap_seed,
    bootstrap_win_rates,
    bootstrap_wins,
    interval_ranks,
    resample_indices,
    resampled_hits,
    scores_to_weights,
)

if TYPE_CHECKING:
    from taoflow.tasks.evaluate.stage import EvaluationOutcome
    from taoflow.tasks.gather import EpochContext

World = tuple["EpochContext", "EvaluationOutcome", Path]

BOOTSTRAP = ValidatorPolicy(temperature=0.1, win_policy="bootstrap")
SEED = bootstrap_seed(seed_hex="ab" * 32, hotkey="validator-0")
ROWS = 500


def _model(*, accuracy: float, rows: int = ROWS) -> np.ndarray:
    """Correct on the first ``accuracy · rows`` rows, wrong on the rest."""
    correct = np.zeros(rows, dtype=np.bool_)
    correct[: round(accuracy * rows)] = True
    return correct


def _improved(base: np.ndarray, *, fixed_rows: int) -> np.ndarray:
    """``base`` with its first ``fixed_rows`` wrong rows now right."""
    better = base.copy()
    better[np.flatnonzero(~base)[:fixed_rows]] = True
    return better


def _weights(correct: dict[int, np.ndarray], blocks: dict[int, int]) -> dict[int, int]:
    scores = {uid: float(vector.mean()) for uid, vector in correct.items()}
    return scores_to_weights(
        scores,
        commit_blocks=blocks,
        current_block=max(blocks.values()),
        policy=BOOTSTRAP,
        rows=ValidatorRows(correct=correct, seed=SEED),
    )


def test_a_clear_ten_percent_improvement_on_500_rows_wins() -> None:
    old = _model(accuracy=0.8)
    new = _improved(old, fixed_rows=50)  # +10 %
    low, high = advantage_interval(new, old, seed=SEED, policy=BOOTSTRAP)
    assert 0.0 < low < 0.1 < high
    weights = _weights({1: old, 2: new}, {1: 100, 2: 900})
    assert weights[2] == U16_MAX
    assert weights[1] == int(np.exp(-1 / 0.1) * U16_MAX)


def test_a_two_tenths_of_a_percent_improvement_does_not_win() -> None:
    old = _model(accuracy=0.8)
    new = _improved(old, fixed_rows=1)  # +0.2 %
    low, _ = advantage_interval(new, old, seed=SEED, policy=BOOTSTRAP)
    assert low == 0.0
    assert _weights({1: old, 2: new}, {1: 100, 2: 900}) == {
        1: U16_MAX,
        2: int(np.exp(-1 / 0.1) * U16_MAX),
    }
    # The ε policy on the same scores rewards the later model: its lower loss beats 0.5 % of ε.
    epsilon = scores_to_weights(
        {1: float(old.mean()), 2: float(new.mean())},
        commit_blocks={1: 100, 2: 900},
        current_block=900,
        policy=dataclasses.replace(BOOTSTRAP, win_policy="epsilon"),
    )
    assert epsilon[2] == U16_MAX


def test_identical_models_the_older_keeps_the_top_weight() -> None:
    old = _model(accuracy=0.9)
    rates = bootstrap_win_rates(
        [7, 3],
        rows=ValidatorRows(correct={3: old.copy(), 7: old}, seed=SEED),
        commit_blocks={7: 10, 3: 20},
        policy=BOOTSTRAP,
    )
    assert rates == {3: 0.0, 7: 1.0}  # uid 7 committed first
    same_block = bootstrap_win_rates(
        [7, 3],
        rows=ValidatorRows(correct={3: old.copy(), 7: old}, seed=SEED),
        commit_blocks={7: 10, 3: 10},
        policy=BOOTSTRAP,
    )
    assert same_block == {3: 1.0, 7: 0.0}  # then the lower uid


def test_an_older_model_significantly_worse_loses_and_a_same_block_one_too() -> None:
    weak = _model(accuracy=0.6)
    strong = _improved(weak, fixed_rows=100)
    rows = ValidatorRows(correct={1: weak, 2: strong}, seed=SEED)
    blocks = {1: 0, 2: 50}
    assert bootstrap_wins(uid_a=2, uid_b=1, rows=rows, commit_blocks=blocks, policy=BOOTSTRAP)
    assert not bootstrap_wins(uid_a=1, uid_b=2, rows=rows, commit_blocks=blocks, policy=BOOTSTRAP)
    tied = {1: 5, 2: 5}
    assert bootstrap_wins(uid_a=2, uid_b=1, rows=rows, commit_blocks=tied, policy=BOOTSTRAP)
    assert not bootstrap_wins(uid_a=1, uid_b=2, rows=rows, commit_blocks=tied, policy=BOOTSTRAP)


def test_same_seed_same_weights_and_the_seed_matters() -> None:
    rng = np.random.default_rng(5)
    correct = {uid: rng.random(200) < 0.7 + 0.02 * uid for uid in range(6)}
    blocks = {uid: 100 * uid for uid in range(6)}
    first = _weights(correct, blocks)
    again = _weights({uid: v.copy() for uid, v in reversed(correct.items())}, blocks)
    assert first == again
    intervals = {
        advantage_interval(correct[5], correct[0], seed=seed, policy=BOOTSTRAP)
        for seed in (SEED, bootstrap_seed(seed_hex="ab" * 32, hotkey="validator-1"))
    }
    assert len(intervals) == 2
    assert bootstrap_seed(seed_hex="a", hotkey="bc") != bootstrap_seed(seed_hex="ab", hotkey="c")


def test_interval_is_the_inverted_cdf_percentile_interval_of_the_resampled_differences() -> None:
    old = _model(accuracy=0.7, rows=300)
    new = _improved(old, fixed_rows=12)
    hits = resampled_hits(np.stack([new, old]), seed=SEED, resamples=1_000)
    differences = (hits[:, 0] - hits[:, 1]) / 300
    expected = np.quantile(differences, [0.025, 0.975], method="inverted_cdf")
    assert advantage_interval(new, old, seed=SEED, policy=BOOTSTRAP) == tuple(expected.tolist())
    assert interval_ranks(BOOTSTRAP) == (24, 974)
    # every resample holds as many rows as the sample, drawn from it with replacement
    assert hits[:, 1].min() >= 0 and hits[:, 1].max() <= 300
    picked = np.concatenate(list(resample_indices(seed=SEED, rows=300, resamples=1_000)))
    assert picked.shape == (1_000, 300)
    assert picked.min() == 0 and picked.max() == 299
    assert np.array_equal(hits[:, 1], old[picked].sum(axis=1))


def test_resampled_rows_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = np.concatenate(list(resample_indices(seed=SEED, rows=50, resamples=300)))
    monkeypatch.setattr(weights_module, "BOOTSTRAP_CHUNK_ELEMENTS_MAX", 50 * 7)
    chunks = list(resample_indices(seed=SEED, rows=50, resamples=300))
    assert [len(chunk) for chunk in chunks] == [7] * 42 + [6]
    assert np.array_equal(np.concatenate(chunks), whole)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.3, 0.95), st.integers(0, 3)), min_size=2, max_size=7),
    st.integers(0, 2**32),
)
def test_vectorised_bootstrap_win_rates_equal_the_pairwise_definition(
    models: list[tuple[float, int]], draw_seed: int
) -> None:
    policy = ValidatorPolicy(win_policy="bootstrap", bootstrap_resamples=200)
    rng = np.random.default_rng(draw_seed)
    base = rng.random(60)
    correct = {uid: base < accuracy for uid, (accuracy, _) in enumerate(models)}
    blocks = {uid: block for uid, (_, block) in enumerate(models)}
    rows = ValidatorRows(correct=correct, seed=draw_seed.to_bytes(8, "big"))
    rates = bootstrap_win_rates(list(correct), rows=rows, commit_blocks=blocks, policy=policy)
    for a in correct:
        won = [
            bootstrap_wins(uid_a=a, uid_b=b, rows=rows, commit_blocks=blocks, policy=policy)
            for b in correct
            if b != a
        ]
        assert rates[a] == sum(won) / (len(correct) - 1)


def test_rejected_uids_get_zero_and_a_lone_model_needs_no_resampling() -> None:
    old = _model(accuracy=0.8)
    weights = scores_to_weights(
        {1: 0.8, 2: 0.0},
        commit_blocks={1: 0, 2: 5},
        current_block=10,
        policy=BOOTSTRAP,
        rejected=frozenset({2}),
        rows=ValidatorRows(correct={1: old}, seed=SEED),
    )
    assert weights == {1: U16_MAX, 2: 0}


def test_bootstrap_without_rows_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidValidatorPolicy) as refused:
        scores_to_weights(
            {1: 0.8, 2: 0.9}, commit_blocks={1: 0, 2: 5}, current_block=10, policy=BOOTSTRAP
        )
    assert str(refused.value) == (
        "win_policy 'bootstrap' needs each model's correctness per row, which these scores "
        "lack (synthetic scores: use win_policy 'epsilon')"
    )
    with pytest.raises(ValueError, match=r"^no per-row correctness for uid\(s\) \[2\]$"):
        _weights_missing_uid()
    with pytest.raises(ValueError, match="non-empty vectors of one length"):
        _weights({1: _model(accuracy=0.5, rows=10), 2: _model(accuracy=0.5, rows=11)}, {1: 0, 2: 1})


def _weights_missing_uid() -> dict[int, int]:
    return scores_to_weights(
        {1: 0.8, 2: 0.9},
        commit_blocks={1: 0, 2: 5},
        current_block=10,
        policy=BOOTSTRAP,
        rows=ValidatorRows(correct={1: _model(accuracy=0.8)}, seed=SEED),
    )


def test_the_default_policy_is_epsilon_and_settings_layer() -> None:
    assert ValidatorPolicy().win_policy == "epsilon"
    assert not ValidatorPolicy().needs_rows
    layered = ValidatorPolicy.from_settings(
        {"temperature": 0.1, "win_policy": "bootstrap"},
        {"bootstrap_confidence": 0.99, "bootstrap_resamples": 2_000},
    )
    assert layered == ValidatorPolicy(
        temperature=0.1,
        win_policy="bootstrap",
        bootstrap_confidence=0.99,
        bootstrap_resamples=2_000,
    )
    assert layered.needs_rows


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"win_policy": "vibes"}, "win_policy must be one of epsilon, bootstrap, got 'vibes'"),
        ({"win_policy": ["bootstrap"]}, "win_policy must be one of epsilon, bootstrap, got"),
        ({"bootstrap_confidence": 0.3}, "bootstrap_confidence must be in [0.5, 0.999]"),
        ({"bootstrap_confidence": 1.0}, "bootstrap_confidence must be in [0.5, 0.999]"),
        ({"bootstrap_confidence": float("nan")}, "bootstrap_confidence must be in"),
        ({"bootstrap_confidence": "0.95"}, "bootstrap_confidence must be a number"),
        ({"bootstrap_confidence": True}, "bootstrap_confidence must be a number"),
        ({"bootstrap_resamples": 10}, "bootstrap_resamples must be an integer in [100, 10,000]"),
        (
            {"bootstrap_resamples": BOOTSTRAP_RESAMPLES_MAX + 1},
            "bootstrap_resamples must be an integer in [100, 10,000]",
        ),
        ({"bootstrap_resamples": 1000.0}, "bootstrap_resamples must be an integer"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"bootstrap_level": 0.9}, "unknown validator setting(s) ['bootstrap_level']"),
    ],
)
def test_bad_policy_settings_are_refused_in_one_line(
    settings_: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValidatorPolicy) as refused:
        ValidatorPolicy.from_settings({"temperature": 0.1}, settings_)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_epoch_correctness_gives_each_validator_its_own_columns() -> None:
    correct = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=np.bool_)
    epoch = EpochCorrectness(
        uids=(4, 9), correct=correct, positions={0: np.array([0, 2]), 1: np.array([1, 3])}
    )
    rows = epoch.rows_of(1, seed_hex="cd" * 32, hotkey="hk")
    assert {uid: v.tolist() for uid, v in rows.correct.items()} == {
        4: [False, True],
        9: [False, False],
    }
    assert rows.seed == bootstrap_seed(seed_hex="cd" * 32, hotkey="hk")


# ---- through the evaluate stage and the consensus task's weights -------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """2 hosted validators and 4 stored MLPs of different widths, evaluated once."""
    import torch
    from distributed import Client, LocalCluster

    from taoflow.evaluation_sets import load_evaluation_set
    from taoflow.ledger.config import SubnetConfig
    from taoflow.network import subnet_config
    from taoflow.tasks import artifact_store
    from taoflow.tasks.evaluate.sampling import derive_seed
    from taoflow.tasks.evaluate.stage import evaluate_epoch
    from taoflow.tasks.gather import EpochContext, NeuronView
    from taoflow.tasks.models import ModelConfig, build_model, submission_bytes

    root = tmp_path_factory.mktemp("artifacts")
    config = subnet_config(
        load_evaluation_set("digits"), sample_size=150, validator_sample_size=120
    )

    def neuron(uid: int, role: str, digest: str | None = None) -> NeuronView:
        return NeuronView(
            uid=uid,
            hotkey=f"{uid:064x}",
            coldkey=f"{uid + 1000:064x}",
            role=role,
            registered_block=0,
            stake_rao=1_000 if role == "validator" else 0,
            artifact_digest=digest,
            artifact_uri=None,
            artifact_block=None if digest is None else 10 * uid,
        )

    neurons = [neuron(0, "validator"), neuron(1, "validator")]
    for uid in range(2, 6):
        model_config = ModelConfig("mlp", 64, (4 * uid,), 10)
        torch.manual_seed(uid)
        model_bytes, config_bytes = submission_bytes(build_model(model_config), model_config)
        stored = artifact_store.store(root, model_bytes=model_bytes, config_bytes=config_bytes)
        neurons.append(neuron(uid, "miner", stored.digest))
    ctx = EpochContext(
        subnet="digits",
        epoch=2,
        block=300,
        tempo_blocks=100,
        emission_rao=10**9,
        parent_hash="00" * 32,
        seed_hex=derive_seed("head", "digits", 2).hex(),
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload(config),
        neurons=tuple(neurons),
    )
    with (
        LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        outcome = evaluate_epoch(ctx, client=client, artifacts_root=root)
    yield ctx, outcome, root


def test_evaluation_carries_each_validators_rows_and_hosted_weights_use_them(
    world: World,
) -> None:
    from taoflow.tasks.evaluate.stage import EvaluationOutcome
    from taoflow.tasks.shells import hosted_weights

    ctx, outcome, _ = world
    assert outcome.correctness is not None
    assert outcome.correctness.uids == (2, 3, 4, 5)
    assert outcome.correctness.correct.dtype == np.bool_
    for validator, row in outcome.scores.items():
        rows = outcome.correctness.rows_of(
            validator, seed_hex=ctx.seed_hex, hotkey=ctx.neurons[validator].hotkey
        )
        # a validator's score of a model is the mean of the model's correctness on its rows
        assert {uid: int(v.sum()) / v.size for uid, v in rows.correct.items()} == row

    bootstrap = {"temperature": 0.1, "win_policy": "bootstrap", "bootstrap_resamples": 500}
    boot_ctx = dataclasses.replace(
        ctx, config=dataclasses.replace(ctx.config, validator_policy=bootstrap)
    )
    blocks = {n.uid: n.artifact_block for n in ctx.neurons if n.artifact_block is not None}
    assert blocks == {2: 20, 3: 30, 4: 40, 5: 50}
    expected = {
        validator: scores_to_weights(
            row,
            commit_blocks=blocks,
            current_block=ctx.block,
            policy=ValidatorPolicy.from_settings(bootstrap),
            rows=outcome.correctness.rows_of(
                validator,
                seed_hex=ctx.seed_hex,
                hotkey=ctx.neurons[validator].hotkey,
            ),
        )
        for validator, row in outcome.scores.items()
    }
    assert hosted_weights(boot_ctx, outcome) == expected
    assert hosted_weights(boot_ctx, outcome) == expected  # deterministic
    # Without rows (an outcome built from stored scores alone) bootstrap is refused.
    bare = EvaluationOutcome(scores=outcome.scores, errors=outcome.errors, sample_size=120)
    with pytest.raises(InvalidValidatorPolicy, match="needs each model's correctness per row"):
        hosted_weights(boot_ctx, bare)
    # The default policy ignores the rows: the same weights with or without them.
    assert hosted_weights(ctx, outcome) == hosted_weights(ctx, bare)


# ---- the README's comparison -------------------------------------------------------------------


def test_the_win_policy_benchmark_prints_both_tables_deterministically() -> None:
    import sys

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:  # benchmarks/ is not an installed package
        sys.path.insert(0, str(root))
    from benchmarks.win_policy import COPY_CHANGES, IMPROVEMENTS, main, report

    text = report([100], trials=2, epochs=2, seed=3)
    assert text == report([100], trials=2, epochs=2, seed=3)
    rows = [line for line in text.splitlines() if line.startswith("| 100 |")]
    assert len(rows) == 2 * (len(COPY_CHANGES) + len(IMPROVEMENTS))
    assert [row.split(" | ")[1] for row in rows] == ["epsilon", "bootstrap"] * (
        len(COPY_CHANGES) + len(IMPROVEMENTS)
    )
    with pytest.raises(SystemExit):
        main(["--rows", "abc"])
