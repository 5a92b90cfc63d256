"""A corpus of hostile submissions through the real evaluate stage on a real process cluster.

Every bad artifact must score 0 with a specific, coded reason; the epoch must complete; and the
good miners' scores must equal those of an epoch evaluated with only the good miners.

"Too slow": a timeout cannot be injected into a worker process (no monkeypatching across
processes), so the slow model is a legitimate, allow-listed CNN that is simply expensive: the
subnet's caps are raised so that a ``[1024, 1024]``-channel CNN (about 9.5 M parameters, seconds
of single-threaded compute on the 300-row sample) is allowed, while the good MLPs evaluate in
milliseconds; ``timeout_s`` sits between the two.

"Outputs of the wrong shape": the strict loader makes a wrongly-shaped output impossible (the
config must name the task's ``num_classes`` and every tensor shape is derived from it), so a
config with 11 classes is refused as ``over_limits`` and an 11-class head under a 10-class config
as ``tensor_mismatch``, both at load.  The ``bad_output`` path is exercised by finite weights
so large that the logits overflow to inf at evaluation time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import distributed
import pytest
import safetensors.torch
import torch

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.tasks import artifact_store
from taoflow.tasks.evaluate.sampling import derive_seed
from taoflow.tasks.evaluate.stage import EvaluationOutcome, evaluate_epoch
from taoflow.tasks.gather import EpochContext, NeuronView
from taoflow.tasks.miner_kit import train_mlp
from taoflow.tasks.models.artifacts import artifact_digest, submission_bytes
from taoflow.tasks.models.families import ModelConfig, build_model

SLOW_CHANNELS = (1024, 1024)
PARAMS_MAX = 10_000_000
BYTES_MAX = 48 * 1024 * 1024
TIMEOUT_S = 1.5
SPARSE_BYTES = 64 * 1024**3
GOOD_UIDS = (2, 3, 4)
VALIDATOR_UIDS = (0, 1)
SMALL = ModelConfig("mlp", 64, (16,), 10)


@dataclass(frozen=True)
class Case:
    """One hostile submission and the reason it must be refused with."""

    name: str
    code: str | None
    fragment: str
    model_bytes: bytes = b""
    config_bytes: bytes = b""


def _raw(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<Q", len(text) if length is None else length)
    return prefix + text + data


def _tensors_file(tensors: dict[str, torch.Tensor], *, dtype: str = "F32") -> bytes:
    """A well-framed safetensors file (framing written by hand, so any dtype label works)."""
    header: dict[str, object] = {}
    data = b""
    for name, tensor in tensors.items():
        raw = tensor.contiguous().numpy().tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(tensor.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    return _raw(header, data)


def _small_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_model(SMALL).state_dict().items()}


def _header_entry(begin: int, end: int, shape: list[int], dtype: str = "F32") -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


class _Pwn:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/taoflow-pwned",))


def _corpus() -> list[Case]:
    cfg = SMALL.to_json()
    tensors = _small_tensors()
    good_file = safetensors.torch.save(tensors)
    cases: list[Case] = []

    def add(name: str, code: str | None, fragment: str, model: bytes, config: bytes = cfg) -> None:
        cases.append(Case(name, code, fragment, model, config))

    # Pickle payloads renamed to .safetensors (never unpickled: the framing check refuses them).
    add("pickle_reduce", "bad_header", "header", pickle.dumps(_Pwn(), protocol=4))
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    add("torch_save_zip", "bad_header", "header", buffer.getvalue())
    add("pickle_proto0", "bad_header", "header", pickle.dumps({"a": 1}, protocol=0))
    # Crafted framing.
    add("empty_file", "bad_header", "too short", b"")
    add("seven_bytes", "bad_header", "too short", b"\x01" * 7)
    add("header_len_2_63", "bad_header", "header length", _raw({}, length=2**63))
    add("header_past_end", "bad_header", "truncated", _raw({}, length=4096))
    add("header_not_utf8", "bad_header", "not UTF-8 JSON", _raw(b"\xff\xfe{}"))
    add("header_not_json", "bad_header", "not UTF-8 JSON", _raw(b"{not json"))
    add("header_is_list", "bad_header", "not a JSON object", _raw([1, 2]))
    add("header_nan_constant", "bad_header", "non-finite", _raw(b'{"x": NaN}'))
    add(
        "header_duplicate_key",
        "bad_header",
        "duplicate",
        _raw(b'{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "a": 1}', b"\0" * 4),
    )
    add("metadata_not_str", "bad_header", "__metadata__", _raw({"__metadata__": {"k": 1}}))
    add(
        "entry_extra_key",
        "bad_header",
        "exactly",
        _raw({"w": {**_header_entry(0, 4, [1]), "exec": "rm -rf /"}}, b"\0" * 4),
    )
    add(
        "huge_offsets",
        "bad_header",
        "outside data",
        _raw({"w": _header_entry(0, 2**62, [2**60])}, b"\0" * 16),
    )
    add(
        "negative_offset",
        "bad_header",
        "outside data",
        _raw({"w": _header_entry(-4, 4, [2])}, b"\0" * 8),
    )
    add(
        "overlapping_ranges",
        "bad_header",
        "overlaps",
        _raw({"a": _header_entry(0, 8, [2]), "b": _header_entry(4, 12, [2])}, b"\0" * 12),
    )
    add(
        "gap_between_tensors",
        "bad_header",
        "gap",
        _raw({"a": _header_entry(0, 4, [1]), "b": _header_entry(8, 12, [1])}, b"\0" * 12),
    )
    add("trailing_bytes", "bad_header", "trailing", good_file + b"\0" * 64)
    add(
        "oversized_declared_shape",
        "bad_header",
        "do not match shape",
        _raw({"w": _header_entry(0, 16, [10**9, 10**9])}, b"\0" * 16),
    )
    add(
        "float_shape",
        "bad_header",
        "malformed shape",
        _raw({"w": _header_entry(0, 4, [1.0])}, b"\0" * 4),  # type: ignore[list-item]
    )
    # Wrong dtypes (framing consistent with the dtype's width).
    for dtype, cast in (("F16", torch.float16), ("BF16", torch.bfloat16), ("F64", torch.float64)):
        converted = {k: v.to(cast) for k, v in tensors.items()}
        add(f"dtype_{dtype}", "bad_dtype", dtype, safetensors.torch.save(converted))
    add(
        "dtype_I32_relabelled",
        "bad_dtype",
        "I32",
        _tensors_file(tensors, dtype="I32"),
    )
    # Wrong or extra tensors.
    missing = {k: v for k, v in tensors.items() if k != "layers.1.bias"}
    add("missing_tensor", "tensor_mismatch", "missing", safetensors.torch.save(missing))
    extra = {**tensors, "payload": torch.zeros(4)}
    add("extra_tensor", "tensor_mismatch", "unexpected", safetensors.torch.save(extra))
    transposed = {**tensors, "layers.0.weight": tensors["layers.0.weight"].T.contiguous()}
    add("transposed_weight", "tensor_mismatch", "shape", safetensors.torch.save(transposed))
    # Outputs of the wrong shape: impossible past the loader (see the module docstring).
    eleven = {
        **tensors,
        "layers.1.weight": torch.zeros(11, 16),
        "layers.1.bias": torch.zeros(11),
    }
    add("eleven_class_head", "tensor_mismatch", "layers.1", safetensors.torch.save(eleven))
    config_11 = ModelConfig("mlp", 64, (16,), 11)
    add(
        "eleven_class_config",
        "over_limits",
        "num_classes",
        safetensors.torch.save(eleven),
        config_11.to_json(),
    )
    # Configs.
    add(
        "unknown_architecture",
        "bad_config",
        "unknown model family",
        good_file,
        json.dumps({"family": "transformer", "input_dim": 64, "num_classes": 10}).encode(),
    )
    add("config_not_json", "bad_config", "not JSON", good_file, b"import os; os.system('x')")
    add(
        "config_extra_key",
        "bad_config",
        "unknown config key",
        good_file,
        json.dumps({**SMALL.to_dict(), "code": "import os"}).encode(),
    )
    add(
        "config_oversized",
        "bad_config",
        "config.json",
        good_file,
        json.dumps({**SMALL.to_dict(), "pad": "x" * 10_000}).encode(),
    )
    add(
        "params_over_cap",
        "over_limits",
        "params_max",
        good_file,
        ModelConfig("mlp", 64, (200_000,), 10).to_json(),
    )
    add(
        "layers_over_cap",
        "over_limits",
        "layers_max",
        good_file,
        ModelConfig("mlp", 64, (8, 8, 8, 8, 8), 10).to_json(),
    )
    add(
        "family_not_allowed",
        "over_limits",
        "not allowed on this subnet",
        good_file,
        json.dumps(
            {
                "family": "embedding_bag",
                "vocab_size": 17,
                "embedding_dim": 4,
                "hidden_sizes": [],
                "num_classes": 10,
                "input_dim": 64,
            }
        ).encode(),
    )
    add(
        "input_dim_mismatch",
        "over_limits",
        "input_dim",
        good_file,
        ModelConfig("mlp", 65, (16,), 10).to_json(),
    )
    # Values.
    nan = {**tensors, "layers.0.weight": tensors["layers.0.weight"].clone()}
    nan["layers.0.weight"][3, 7] = float("nan")
    add("nan_weight", "non_finite", "NaN or inf", _tensors_file(nan))
    inf = {**tensors, "layers.1.bias": tensors["layers.1.bias"].clone()}
    inf["layers.1.bias"][0] = float("-inf")
    add("inf_bias", "non_finite", "NaN or inf", _tensors_file(inf))
    overflow = {k: torch.full_like(v, 3e38) for k, v in tensors.items()}
    add("overflowing_logits", "bad_output", "NaN or inf logits", _tensors_file(overflow))
    # A zip bomb: tiny on disk, never decompressed (refused by its framing).
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.safetensors", b"\0" * (64 * 1024 * 1024))
    add("zip_bomb", "bad_header", "header", bomb.getvalue())
    return cases


def _neuron(uid: int, role: str, digest: str | None = None) -> NeuronView:
    return NeuronView(
        uid=uid,
        hotkey=hashlib.sha256(f"hot/{uid}".encode()).hexdigest(),
        coldkey=hashlib.sha256(f"cold/{uid}".encode()).hexdigest(),
        role=role,
        registered_block=0,
        stake_rao=1_000 if role == "validator" else 0,
        artifact_digest=digest,
        artifact_uri=None if digest is None else f"artifact://{digest}",
    )


def _context(neurons: list[NeuronView]) -> EpochContext:
    eval_set = load_evaluation_set("digits")
    return EpochContext(
        subnet="digits",
        epoch=5,
        block=600,
        tempo_blocks=100,
        emission_rao=10**9,
        parent_hash="00" * 32,
        seed_hex=derive_seed("hostile-head", "digits", 5).hex(),
        owner_coldkey="",
        owner_hotkey="",
        config=SubnetConfig.from_payload(
            {
                "tempo_blocks": 100,
                "evaluation_set": "digits",
                "evaluation_set_hash": eval_set.content_hash,
                "sample_size": 300,
                "validator_sample_size": 200,
                "params_max": PARAMS_MAX,
                "bytes_max": BYTES_MAX,
                "layers_max": 4,
                "model_families": ["mlp", "cnn"],
            }
        ),
        neurons=tuple(neurons),
    )


def _planted(root: Path, name: str) -> Path:
    """A store directory for a digest a hostile miner committed but whose bytes we plant."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    directory = artifact_store.artifact_dir(root, digest)
    directory.mkdir(parents=True)
    (directory / artifact_store.CONFIG_FILE).write_bytes(SMALL.to_json())
    return directory


@dataclass(frozen=True)
class World:
    root: Path
    good: list[NeuronView]
    bad: list[tuple[NeuronView, Case]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("hostile-artifacts")
    eval_set = load_evaluation_set("digits")
    good: list[NeuronView] = []
    for uid, (hidden, epochs) in zip(GOOD_UIDS, (((16,), 1), ((32,), 2), ((16,), 3)), strict=True):
        model, config = train_mlp(eval_set, hidden_sizes=hidden, epochs=epochs, seed=uid)
        model_bytes, config_bytes = submission_bytes(model, config)
        stored = artifact_store.store(root, model_bytes=model_bytes, config_bytes=config_bytes)
        good.append(_neuron(uid, "miner", stored.digest))

    cases = _corpus()
    # Too slow: a legitimate, allow-listed but expensive CNN (see the module docstring).
    slow_config = ModelConfig("cnn", 64, (), 10, image_size=8, channels=SLOW_CHANNELS)
    torch.manual_seed(0)
    slow_bytes, slow_config_bytes = submission_bytes(build_model(slow_config), slow_config)
    cases.append(Case("too_slow_cnn", "timeout", "", slow_bytes, slow_config_bytes))

    bad: list[tuple[NeuronView, Case]] = []
    uid = GOOD_UIDS[-1] + 1
    for case in cases:
        stored = artifact_store.store(
            root, model_bytes=case.model_bytes, config_bytes=case.config_bytes
        )
        bad.append((_neuron(uid, "miner", stored.digest), case))
        uid += 1
    # Huge declared size (sparse file): refused by fstat size before any byte is read.
    sparse = _planted(root, "sparse")
    with (sparse / artifact_store.MODEL_FILE).open("wb") as handle:
        handle.truncate(SPARSE_BYTES)
    bad.append(
        (
            _neuron(uid, "miner", sparse.name),
            Case("sparse_64_GiB", "too_large", f"{SPARSE_BYTES} bytes"),
        )
    )
    uid += 1
    # An endless stream (a device, not a regular file): refused without reading.
    endless = _planted(root, "dev-zero")
    (endless / artifact_store.MODEL_FILE).symlink_to("/dev/zero")
    bad.append(
        (
            _neuron(uid, "miner", endless.name),
            Case("dev_zero_stream", "unreadable", "not a regular file"),
        )
    )
    uid += 1
    # A committed digest that was never uploaded.
    absent = hashlib.sha256(b"never uploaded").hexdigest()
    bad.append(
        (_neuron(uid, "miner", absent), Case("missing_from_store", None, "is not in the store"))
    )
    return World(root=root, good=good, bad=bad)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture(scope="module")
def outcomes(
    world: World, client: distributed.Client
) -> tuple[EvaluationOutcome, EvaluationOutcome]:
    """(good-only outcome, hostile outcome); the good-only epoch runs first, on a free worker."""
    validators = [_neuron(uid, "validator") for uid in VALIDATOR_UIDS]
    baseline = evaluate_epoch(
        _context([*validators, *world.good]),
        client=client,
        artifacts_root=world.root,
        timeout_s=TIMEOUT_S,
    )
    hostile_ctx = _context([*validators, *world.good, *(n for n, _ in world.bad)])
    hostile = evaluate_epoch(
        hostile_ctx, client=client, artifacts_root=world.root, timeout_s=TIMEOUT_S
    )
    return baseline, hostile


def test_corpus_is_large_enough(world: World) -> None:
    names = [case.name for _, case in world.bad]
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    digests = [neuron.artifact_digest for neuron, _ in world.bad]
    assert len(set(digests)) == len(digests), "two cases collapsed onto one artifact"


def test_every_bad_submission_scores_zero_with_its_reason(
    world: World, outcomes: tuple[EvaluationOutcome, EvaluationOutcome]
) -> None:
    _, hostile = outcomes
    assert sorted(hostile.scores) == list(VALIDATOR_UIDS)
    wrong: list[str] = []
    for neuron, case in world.bad:
        reason = hostile.errors.get(neuron.uid)
        prefix = "" if case.code is None else f"{case.code}:"
        if reason is None or not reason.startswith(prefix) or case.fragment not in reason:
            wrong.append(f"{case.name}: expected {prefix}…{case.fragment!r}, got {reason!r}")
        for validator in VALIDATOR_UIDS:
            if hostile.scores[validator].get(neuron.uid) != 0.0:
                wrong.append(f"{case.name}: score {hostile.scores[validator].get(neuron.uid)}")
    assert not wrong, "\n".join(wrong)


def test_good_miners_unaffected(
    world: World, outcomes: tuple[EvaluationOutcome, EvaluationOutcome]
) -> None:
    baseline, hostile = outcomes
    good_uids = [neuron.uid for neuron in world.good]
    assert not set(good_uids) & set(hostile.errors)
    assert not baseline.errors
    for validator in VALIDATOR_UIDS:
        expected = {uid: baseline.scores[validator][uid] for uid in good_uids}
        got = {uid: hostile.scores[validator][uid] for uid in good_uids}
        assert got == expected
        assert all(score > 0.5 for score in expected.values())  # trained, not chance level
    assert hostile.sample_size == baseline.sample_size == 200


def test_corpus_artifacts_are_stored_by_content(world: World) -> None:
    for neuron, case in world.bad:
        if case.name in {"sparse_64_GiB", "dev_zero_stream", "missing_from_store"}:
            continue
        assert neuron.artifact_digest == artifact_digest(
            model_bytes=case.model_bytes, config_bytes=case.config_bytes
        )
