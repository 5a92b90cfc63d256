"""Near-duplicate submissions: a later model predicting like an earlier one of another hotkey.

Unit tests drive ``find_near_duplicates`` with hand-made predictions; the end-to-end test trains
a real digits model, re-submits it with noise of at most 1e-4 on every weight (and once padded
with dead hidden units, another architecture) under other hotkeys and later blocks, and runs the
evaluate stage on a local Dask cluster: the copies are rejected with the reason, the original
keeps its score, and an independently trained model is not touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from distributed import Client, LocalCluster
from ledger_helpers import acct, commit_signed, epoch_batch, network_with_subnet

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.config import NEAR_DUPLICATE_AGREEMENT_PPM_DEFAULT, SubnetConfig
from taoflow.ledger.epoch_records import RECORDS_KEY, UID_FLOAT_COLUMNS, record_refs
from taoflow.ledger.schema import Kind, Tx, canonical_json
from taoflow.ledger.store import Ledger
from taoflow.ledger.submissions import submission_binding
from taoflow.network import subnet_config
from taoflow.queries import submission_states
from taoflow.tasks import artifact_store
from taoflow.tasks.evaluate import near_duplicates as nd
from taoflow.tasks.evaluate.near_duplicates import (
    NearDuplicate,
    Submission,
    WeightSignature,
    find_near_duplicates,
    weight_signature,
    weights_distance,
)
from taoflow.tasks.evaluate.runner import (
    EvalJob,
    EvalResult,
    evaluate_job,
    label_width,
    pack_predictions,
    prediction_vector,
)
from taoflow.tasks.evaluate.sampling import derive_seed
from taoflow.tasks.evaluate.stage import evaluate_epoch, family_limits, validator_samples
from taoflow.tasks.gather import EpochContext, NeuronView
from taoflow.tasks.miner_kit import train_model
from taoflow.tasks.models import ModelConfig, build_model, submission_bytes

ROWS = 100
LABELS = np.arange(ROWS, dtype=np.int64) % 10


def _submission(
    uid: int,
    predictions: np.ndarray,
    *,
    block: int = 10,
    hotkey: str | None = None,
    digest: str | None = None,
) -> Submission:
    return Submission(
        uid=uid,
        hotkey=hotkey if hotkey is not None else f"hot{uid}",
        commit_block=block,
        digest=digest if digest is not None else f"digest{uid}",
        predictions=predictions.astype(np.int64),
        correct=predictions == LABELS,
    )


def _wrong_on(rows: Sequence[int], *, shift: int = 1) -> np.ndarray:
    """Predictions equal to the labels except on ``rows`` (label + ``shift`` mod 10)."""
    predictions = LABELS.copy()
    predictions[list(rows)] = (LABELS[list(rows)] + shift) % 10
    return predictions


def _no_weights(uid: int) -> WeightSignature | None:
    return None


def _signatures(**by_uid: dict[str, np.ndarray]) -> Any:
    table = {int(uid[1:]): weight_signature(tensors) for uid, tensors in by_uid.items()}
    return lambda uid: table.get(uid)


WEIGHTS = {"w": np.linspace(-1.0, 1.0, 60).reshape(6, 10), "b": np.arange(6.0)}


def test_later_copy_with_close_weights_is_flagged_and_the_earlier_keeps_credit() -> None:
    original = _submission(3, _wrong_on(range(5)), block=10)
    copy = _submission(7, _wrong_on(range(5)), block=20)
    close = {name: tensor * (1 + 1e-4) for name, tensor in WEIGHTS.items()}
    found = find_near_duplicates(
        [copy, original],
        agreement_ppm=NEAR_DUPLICATE_AGREEMENT_PPM_DEFAULT,
        signature=_signatures(u3=WEIGHTS, u7=close),
    )
    assert list(found) == [7]
    finding = found[7]
    assert (finding.original_uid, finding.agreed_rows, finding.rows) == (3, 100, 100)
    assert finding.weights_distance == pytest.approx(1e-4 / (1 + 1e-4), rel=1e-9)
    assert finding.reason() == (
        "near_duplicate: of uid 3 (agrees on 100.0% of the 100-row sample, weights within 1.0e-04)"
    )


def test_commit_block_decides_who_is_earlier_and_ties_go_to_the_lower_uid() -> None:
    predictions = _wrong_on(range(3))
    late_low_uid = _submission(2, predictions, block=50, digest="same")
    early_high_uid = _submission(9, predictions, block=10, digest="same")
    found = find_near_duplicates(
        [late_low_uid, early_high_uid], agreement_ppm=980_000, signature=_no_weights
    )
    assert {uid: f.original_uid for uid, f in found.items()} == {2: 9}
    assert found[2].reason().endswith("(agrees on 100.0% of the 100-row sample, the same artifact)")
    tied = find_near_duplicates(
        [dataclasses.replace(late_low_uid, commit_block=10), early_high_uid],
        agreement_ppm=980_000,
        signature=_no_weights,
    )
    assert {uid: f.original_uid for uid, f in tied.items()} == {9: 2}


def test_agreement_alone_is_not_enough_for_two_independent_good_models() -> None:
    # Both 98 % accurate with different mistakes: they agree on 96 rows, and sharing no
    # mistakes and no weights, neither is a copy even at a 90 % threshold.
    first = _submission(3, _wrong_on([0, 1]), block=10)
    second = _submission(4, _wrong_on([2, 3]), block=20)
    other = {name: tensor[::-1] * 3.0 for name, tensor in WEIGHTS.items()}
    found = find_near_duplicates(
        [first, second], agreement_ppm=900_000, signature=_signatures(u3=WEIGHTS, u4=other)
    )
    assert found == {}


def test_shared_mistakes_flag_a_copy_in_another_architecture() -> None:
    mistakes = list(range(0, 80, 10))  # 8 rows wrong, the same wrong label
    original = _submission(3, _wrong_on(mistakes), block=10)
    padded = _submission(5, _wrong_on(mistakes), block=30)
    wider = {"w": np.zeros((9, 10)), "b": np.zeros(9)}
    found = find_near_duplicates(
        [original, padded], agreement_ppm=980_000, signature=_signatures(u3=WEIGHTS, u5=wider)
    )
    assert found[5].weights_distance is None  # other shapes: weights are not compared
    assert found[5].reason() == (
        "near_duplicate: of uid 3 (agrees on 100.0% of the 100-row sample, "
        "the same label on 8 of the 8 rows either gets wrong)"
    )
    # One mistake row fewer than MISTAKE_ROWS_MIN is no evidence.
    fewer = [_submission(3, _wrong_on(mistakes[:7])), _submission(5, _wrong_on(mistakes[:7]))]
    assert find_near_duplicates(fewer, agreement_ppm=980_000, signature=_no_weights) == {}
    # Other wrong labels on the same rows are not the same mistakes.
    other_labels = _submission(5, _wrong_on(mistakes, shift=2), block=30)
    assert (
        find_near_duplicates([original, other_labels], agreement_ppm=900_000, signature=_no_weights)
        == {}
    )


def test_agreement_threshold_is_exact_in_integers() -> None:
    original = _submission(3, LABELS, block=10, digest="d")
    differs_on_two = _submission(4, _wrong_on([0, 1]), block=20, digest="d")
    at = find_near_duplicates(
        [original, differs_on_two], agreement_ppm=980_000, signature=_no_weights
    )
    assert at[4].agreed_rows == 98
    above = find_near_duplicates(
        [original, differs_on_two], agreement_ppm=980_001, signature=_no_weights
    )
    assert above == {}


def test_same_hotkey_and_a_disabled_check_flag_nothing() -> None:
    first = _submission(3, LABELS, block=10, hotkey="h", digest="d")
    again = _submission(4, LABELS, block=20, hotkey="h", digest="d")
    assert find_near_duplicates([first, again], agreement_ppm=980_000, signature=_no_weights) == {}
    other = dataclasses.replace(again, hotkey="g")
    assert find_near_duplicates([first, other], agreement_ppm=0, signature=_no_weights) == {}
    assert list(find_near_duplicates([first, other], agreement_ppm=1, signature=_no_weights)) == [4]


def test_every_earlier_model_is_compared_and_the_earliest_match_is_named() -> None:
    predictions = _wrong_on(range(10))
    chain = [_submission(uid, predictions, block=uid * 10, digest="same") for uid in (1, 2, 3)]
    found = find_near_duplicates(chain[::-1], agreement_ppm=980_000, signature=_no_weights)
    assert {uid: f.original_uid for uid, f in found.items()} == {2: 1, 3: 1}


def test_result_does_not_depend_on_input_order_or_the_memory_block_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 10, ROWS)
    subs = []
    for uid in range(12):
        predictions = base.copy() if uid % 3 == 0 else rng.integers(0, 10, ROWS)
        subs.append(_submission(uid, predictions, block=int(rng.integers(0, 4)), digest="x"))
    expected = find_near_duplicates(subs, agreement_ppm=980_000, signature=_no_weights)
    assert sorted(expected) != [] and all(f.agreed_rows == ROWS for f in expected.values())
    monkeypatch.setattr(nd, "PAIR_CELLS_MAX", 1)
    shuffled = [subs[i] for i in rng.permutation(len(subs))]
    assert find_near_duplicates(shuffled, agreement_ppm=980_000, signature=_no_weights) == expected


def test_the_pairwise_bounds_keep_the_most_accurate_models_and_stride_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nd, "NEAR_DUPLICATE_MODELS_MAX", 2)
    monkeypatch.setattr(nd, "NEAR_DUPLICATE_ROWS_MAX", 50)
    weak = _submission(1, _wrong_on(range(40)), block=1, digest="d")
    weak_copy = _submission(2, _wrong_on(range(40)), block=2, digest="d")
    strong = _submission(3, _wrong_on([0]), block=3, digest="d")
    strong_copy = _submission(4, _wrong_on([0]), block=4, digest="d")
    found = find_near_duplicates(
        [weak, weak_copy, strong, strong_copy], agreement_ppm=980_000, signature=_no_weights
    )
    assert {uid: (f.original_uid, f.rows) for uid, f in found.items()} == {4: (3, 50)}


def test_signature_calls_are_limited_to_candidate_pairs_once_per_uid() -> None:
    calls: list[int] = []

    def signature(uid: int) -> WeightSignature | None:
        calls.append(uid)
        return weight_signature(WEIGHTS)

    subs = [
        _submission(1, _wrong_on(range(5)), block=1),
        _submission(2, _wrong_on(range(5)), block=2),
        _submission(3, _wrong_on(range(5)), block=3),
        _submission(4, (LABELS + 1) % 10, block=4),  # agrees with nobody
    ]
    found = find_near_duplicates(subs, agreement_ppm=980_000, signature=signature)
    assert {uid: f.original_uid for uid, f in found.items()} == {2: 1, 3: 1}
    assert sorted(calls) == [1, 2, 3]


def test_weight_signature_ignores_permutations_and_sign_flips_but_not_shapes() -> None:
    rng = np.random.default_rng(1)
    w1, b1, w2 = rng.normal(size=(16, 8)), rng.normal(size=16), rng.normal(size=(3, 16))
    order = rng.permutation(16)
    first = weight_signature({"w1": w1, "b1": b1, "w2": w2})
    permuted = weight_signature({"w1": -w1[order], "b1": b1[order], "w2": w2[:, order]})
    assert weights_distance(first, permuted) == 0.0
    retrained = weight_signature({"w1": rng.normal(size=(16, 8)), "b1": b1, "w2": w2})
    distance = weights_distance(first, retrained)
    assert distance is not None and distance > nd.WEIGHTS_RELATIVE_TOLERANCE
    other_shape = weight_signature({"w1": w1[:8], "b1": b1, "w2": w2})
    assert weights_distance(first, other_shape) is None
    zeros = weight_signature({"w": np.zeros(4)})
    assert weights_distance(zeros, zeros) == 0.0


def test_malformed_input_is_refused() -> None:
    good = _submission(1, LABELS)
    with pytest.raises(ValueError, match="agreement_ppm"):
        find_near_duplicates([good], agreement_ppm=1_000_001, signature=_no_weights)
    with pytest.raises(ValueError, match="duplicate uids"):
        find_near_duplicates([good, good], agreement_ppm=1, signature=_no_weights)
    mismatched = dataclasses.replace(good, uid=2, predictions=LABELS[:50])
    with pytest.raises(ValueError, match="one length"):
        find_near_duplicates([good, mismatched], agreement_ppm=1, signature=_no_weights)
    floats = dataclasses.replace(good, uid=2, predictions=LABELS.astype(np.float64))
    with pytest.raises(ValueError, match="integer predictions"):
        find_near_duplicates([good, floats], agreement_ppm=1, signature=_no_weights)


def test_predictions_pack_compactly_and_round_trip() -> None:
    assert [label_width(n) for n in (1, 256, 257, 65_536, 65_537)] == [1, 1, 2, 2, 4]
    predictions = np.array([0, 255, 3], dtype=np.int64)
    packed = pack_predictions(predictions, num_classes=256)
    assert packed == bytes([0, 255, 3])
    result = EvalResult(
        uid=1, score=0.0, n_samples=3, error=None, artifact_digest="d", predictions=packed
    )
    unpacked = prediction_vector(result)
    assert unpacked is not None and unpacked.tolist() == [0, 255, 3]
    wide = pack_predictions(np.array([70_000, 1]), num_classes=70_001)
    assert len(wide) == 8
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        pack_predictions(np.array([10]), num_classes=10)
    bad = dataclasses.replace(result, predictions=b"\x00" * 5)
    with pytest.raises(ValueError, match="5 prediction bytes for 3 rows"):
        prediction_vector(bad)
    assert prediction_vector(dataclasses.replace(result, error="bad_output: x")) is None


def test_the_subnet_setting_is_typed_and_bounded() -> None:
    assert SubnetConfig(tempo_blocks=1).near_duplicate_agreement_ppm == 980_000
    config = SubnetConfig.from_payload({"tempo_blocks": 1, "near_duplicate_agreement_ppm": 0})
    assert config.near_duplicate_agreement_ppm == 0
    for bad in (1_000_001, -1, 0.98, True, "980000"):
        with pytest.raises(ValueError, match="near_duplicate_agreement_ppm must be an integer"):
            SubnetConfig.from_payload({"tempo_blocks": 1, "near_duplicate_agreement_ppm": bad})


def test_near_duplicate_reason_floors_the_percentage() -> None:
    finding = NearDuplicate(
        uid=2,
        original_uid=1,
        rows=512,
        agreed_rows=511,
        same_artifact=False,
        weights_distance=3.24e-4,
        mistake_rows=12,
        mistakes_agreed=11,
    )
    assert finding.reason() == (
        "near_duplicate: of uid 1 (agrees on 99.8% of the 512-row sample, weights within 3.2e-04)"
    )


# ---- end to end: real models through the evaluate stage ------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        yield dask_client


def _neuron(
    uid: int, role: str, *, digest: str | None = None, block: int | None = None
) -> NeuronView:
    return NeuronView(
        uid=uid,
        hotkey=f"{uid:064x}",
        coldkey=f"{uid + 1000:064x}",
        role=role,
        registered_block=0,
        stake_rao=1_000 if role == "validator" else 0,
        artifact_digest=digest,
        artifact_uri=None,
        artifact_block=block,
    )


def _noisy(model: torch.nn.Module, *, amplitude: float, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with uniform noise in [-amplitude, amplitude] on every weight."""
    copy = build_model(ModelConfig("mlp", 64, (32,), 10))
    copy.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in copy.parameters():
            noise = torch.rand(parameter.shape, generator=generator) * 2 - 1
            parameter.add_(noise * amplitude)
    return copy


def _padded(model: torch.nn.Module, *, extra_units: int) -> tuple[torch.nn.Module, ModelConfig]:
    """The same function with ``extra_units`` dead hidden units (zero in, zero out)."""
    config = ModelConfig("mlp", 64, (32 + extra_units,), 10)
    wide = build_model(config)
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in wide.state_dict().items():
            tensor.zero_()
            source = state[name]
            tensor[tuple(slice(0, size) for size in source.shape)] = source
    return wide, config


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpochContext, Path]:
    """uid 3: a trained MLP (block 100); 4: it + noise ≤ 1e-4 (block 150); 5: trained with
    another seed (block 120); 6: uid 3 padded with dead units (block 160); validators 0, 1."""
    root = tmp_path_factory.mktemp("artifacts")
    eval_set = load_evaluation_set("digits")
    overrides = {"hidden_sizes": [32]}
    original, config = train_model(
        eval_set, family="mlp", config_overrides=overrides, epochs=2, seed=0
    )
    other, _ = train_model(eval_set, family="mlp", config_overrides=overrides, epochs=2, seed=1)
    wide, wide_config = _padded(original, extra_units=16)
    models = {
        3: (original, config, 100),
        4: (_noisy(original, amplitude=1e-4, seed=7), config, 150),
        5: (other, config, 120),
        6: (wide, wide_config, 160),
    }
    neurons = [_neuron(0, "validator"), _neuron(1, "validator")]
    neurons.append(_neuron(2, "miner"))
    for uid, (model, model_config, block) in models.items():
        model_bytes, config_bytes = submission_bytes(model, model_config)
        stored = artifact_store.store(root, model_bytes=model_bytes, config_bytes=config_bytes)
        neurons.append(_neuron(uid, "miner", digest=stored.digest, block=block))
    ctx = EpochContext(
        subnet="digits",
        epoch=1,
        block=200,
        tempo_blocks=100,
        emission_rao=10**9,
        parent_hash="00" * 32,
        seed_hex=derive_seed("head", "digits", 1).hex(),
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload(
            subnet_config(eval_set, sample_size=360, validator_sample_size=200)
        ),
        neurons=tuple(neurons),
    )
    return ctx, root


def _alone(ctx: EpochContext, root: Path, uid: int, rows: np.ndarray) -> float:
    eval_set = load_evaluation_set("digits")
    features, labels = eval_set.arrays("test")
    digest = ctx.neurons[uid].artifact_digest
    assert digest is not None
    stored = artifact_store.locate(root, digest)
    job = EvalJob(uid, str(stored.model_path), str(stored.config_path))
    limits = family_limits(ctx.config, eval_set=eval_set)
    return evaluate_job(job, features=features[rows], labels=labels[rows], limits=limits).score


def test_a_noisy_resubmission_is_rejected_and_the_original_keeps_its_score(
    copied: tuple[EpochContext, Path], client: Client
) -> None:
    ctx, root = copied
    outcome = evaluate_epoch(ctx, client=client, artifacts_root=root)

    assert sorted(outcome.errors) == [4, 6]
    noisy, padded = outcome.errors[4], outcome.errors[6]
    assert noisy.startswith(
        "near_duplicate: of uid 3 (agrees on 100.0% of the 360-row sample, weights within "
    )
    distance = float(noisy.removesuffix(")").rsplit(" ", 1)[1])
    assert 0 < distance < 1e-3
    assert padded.startswith("near_duplicate: of uid 3 (agrees on 100.0% of the 360-row sample,")
    assert "rows either gets wrong)" in padded
    populations = validator_samples(ctx, population=360)
    for validator, rows in populations.items():
        row = outcome.scores[validator]
        assert row[4] == row[6] == 0.0
        assert row[3] == _alone(ctx, root, 3, rows) > 0.5
        assert row[5] == _alone(ctx, root, 5, rows) > 0.5
    correctness = getattr(outcome, "correctness", None)  # kept for the bootstrap win policy
    assert correctness is None or sorted(correctness.uids) == [3, 5]


def test_the_copies_get_weight_zero_and_the_check_can_be_turned_off(
    copied: tuple[EpochContext, Path], client: Client
) -> None:
    from taoflow.tasks.shells import hosted_weights

    ctx, root = copied
    outcome = evaluate_epoch(ctx, client=client, artifacts_root=root)
    for row in hosted_weights(ctx, outcome).values():
        assert row[4] == row[6] == 0 and row[3] > 0 and row[5] > 0
    payload = {**ctx.config.raw, "near_duplicate_agreement_ppm": 0}
    off = dataclasses.replace(ctx, config=SubnetConfig.from_payload(payload))
    assert evaluate_epoch(off, client=client, artifacts_root=root).errors == {}


# ---- the reason reaches `taoflow submissions` ----------------------------------------------


def test_submissions_show_a_near_duplicate_as_rejected_with_its_reason(tmp_path: Path) -> None:
    ledger = network_with_subnet(tmp_path)
    digest = hashlib.sha256(b"copy").hexdigest()
    payload = {
        "digest": digest,
        "uri": f"artifact://{digest}",
        "binding": submission_binding(digest=digest, hotkey=acct("bob-hot")),
    }
    commit_signed(
        ledger,
        Tx(
            "s1",
            Kind.SUBMISSION_COMMIT,
            subnet="sn",
            hotkey=acct("bob-hot"),
            payload=canonical_json(payload),
        ),
    )
    reason = (
        "near_duplicate: of uid 7 (agrees on 99.8% of the 512-row sample, weights within 6.1e-04)"
    )
    tempo = ledger.state().subnets["sn"].config.tempo_blocks
    txs = epoch_batch(ledger.state(), "sn", block=tempo, errors=[0])
    tables = {"uids": _uids_record(ledger, digest=digest, error=reason)}
    epoch_payload = {**txs[0].payload_dict(), "block": tempo, RECORDS_KEY: record_refs(tables)}
    epoch = dataclasses.replace(txs[0], payload=canonical_json(epoch_payload))
    ledger.commit([epoch, *txs[1:]], records=tables)
    rows = [
        (r["uid"], r["state"], r["score"], r["reason"])
        for r in submission_states(ledger, subnet="sn")
    ]
    assert rows == [(0, "rejected", None, reason)]


def _uids_record(ledger: Ledger, *, digest: str, error: str) -> pa.Table:
    neurons = ledger.state().neurons["sn"]
    n = len(neurons)
    columns: dict[str, list[Any]] = {
        "uid": list(range(n)),
        "hotkey": [neurons[u].hotkey for u in range(n)],
        "stake_rao": [0] * n,
        "permit": [False] * n,
        "active": [True] * n,
        **{name: [0.0] * n for name in UID_FLOAT_COLUMNS},
        "emission_rao": [0] * n,
        "score": [0.0] + [float("nan")] * (n - 1),
        "error": [error] + [""] * (n - 1),
        "artifact_digest": [digest] + [""] * (n - 1),
    }
    return pa.table(columns)


def test_signatures_are_bounded_and_so_are_the_weight_comparisons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = np.random.default_rng(3).normal(size=10_000)
    signature = weight_signature({"w": values.reshape(100, 100)})
    assert signature.points.shape == (nd.SIGNATURE_POINTS,)
    assert signature.points[0] == np.abs(values).min()
    assert signature.points[-1] == np.abs(values).max()
    original = _submission(3, _wrong_on(range(5)), block=10)
    copy = _submission(7, _wrong_on(range(5)), block=20)
    same = _signatures(u3=WEIGHTS, u7=WEIGHTS)
    assert list(find_near_duplicates([original, copy], agreement_ppm=980_000, signature=same)) == [
        7
    ]
    monkeypatch.setattr(nd, "WEIGHT_PAIRS_MAX", 0)
    assert find_near_duplicates([original, copy], agreement_ppm=980_000, signature=same) == {}
