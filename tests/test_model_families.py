"""The cnn and embedding_bag families (and mlp alongside): schemas, limits, round trips, hostility.

Every hostile submission must be refused with ``ArtifactRejected`` and a specific ``code``;
hostile model inputs (wrong dtype/shape, out-of-range token ids) raise ``ValueError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from taoflow.tasks.models import (
    ArtifactRejected,
    FamilyLimits,
    InvalidModelConfig,
    ModelConfig,
    build_model,
    config_from_dict,
    count_parameters,
    expected_shapes,
    families_for,
    load_submission,
    load_submission_with_config,
    parse_config,
    save_submission,
    submission_bytes,
)
from taoflow.tasks.models.families import CONV_LAYERS_MAX, DIMENSION_MAX

MLP_DOC: dict[str, object] = {
    "family": "mlp",
    "input_dim": 64,
    "hidden_sizes": [16],
    "num_classes": 10,
}
CNN_DOC: dict[str, object] = {
    "family": "cnn",
    "input_dim": 64,
    "image_size": 8,
    "channels": [8, 16],
    "num_classes": 10,
}
EB_DOC: dict[str, object] = {
    "family": "embedding_bag",
    "vocab_size": 50,
    "embedding_dim": 8,
    "hidden_sizes": [16],
    "num_classes": 3,
    "input_dim": 12,
}
DOCS = {"mlp": MLP_DOC, "cnn": CNN_DOC, "embedding_bag": EB_DOC}
FLOAT_LIMITS = FamilyLimits(
    params_max=20_000,
    bytes_max=200_000,
    layers_max=4,
    input_dim=64,
    num_classes=10,
    families=frozenset({"mlp", "cnn"}),
)
TEXT_LIMITS = FamilyLimits(
    params_max=20_000,
    bytes_max=200_000,
    layers_max=4,
    input_dim=12,
    num_classes=3,
    vocab_size=50,
    families=frozenset({"embedding_bag"}),
)
LIMITS = {"mlp": FLOAT_LIMITS, "cnn": FLOAT_LIMITS, "embedding_bag": TEXT_LIMITS}


def _config(family: str, **changes: object) -> ModelConfig:
    return config_from_dict({**DOCS[family], **changes})


def _model(config: ModelConfig, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(config)


def _state(config: ModelConfig) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in _model(config).state_dict().items()}


def _inputs(config: ModelConfig, rows: int = 40) -> torch.Tensor:
    rng = np.random.default_rng(5)
    if config.feature_dtype == "int64":
        ids = rng.integers(0, config.vocab_size or 2, size=(rows, config.input_dim))
        ids[0, :] = 0  # an all-padding row: an empty bag
        ids[1, 3:] = 0
        return torch.from_numpy(ids.astype(np.int64))
    return torch.from_numpy(rng.random((rows, config.input_dim), dtype=np.float32))


def _rejected(
    family: str, model_bytes: bytes, config_bytes: bytes | None = None, **limits: object
) -> str:
    config = _config(family).to_json() if config_bytes is None else config_bytes
    lim = FamilyLimits(**{**LIMITS[family].__dict__, **limits})  # type: ignore[arg-type]
    with pytest.raises(ArtifactRejected) as info:
        load_submission(model_bytes=model_bytes, config_bytes=config, limits=lim)
    assert info.value.reason.startswith(info.value.code + ": ")
    return f"{info.value.code}|{info.value.reason}"


# --- schemas ---------------------------------------------------------------------------------


def test_cnn_names_shapes_and_count() -> None:
    config = parse_config(json.dumps(CNN_DOC))
    assert config == ModelConfig("cnn", 64, (), 10, image_size=8, channels=(8, 16))
    model = build_model(config)
    assert [name for name, _ in model.named_parameters()] == [
        "convs.0.weight",
        "convs.0.bias",
        "convs.1.weight",
        "convs.1.bias",
        "head.weight",
        "head.bias",
    ]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())
    assert count_parameters(config) == (8 * 9 + 8) + (16 * 8 * 9 + 16) + (10 * 16 + 10)
    assert (config.layers, config.linear_layers, config.feature_dtype) == (3, 1, "float32")


def test_embedding_bag_names_shapes_and_count() -> None:
    config = parse_config(json.dumps(EB_DOC))
    assert config == ModelConfig("embedding_bag", 12, (16,), 3, vocab_size=50, embedding_dim=8)
    model = build_model(config)
    assert [name for name, _ in model.named_parameters()] == [
        "embedding.weight",
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
    ]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())
    assert count_parameters(config) == 50 * 8 + (16 * 8 + 16) + (3 * 16 + 3)
    assert (config.layers, config.linear_layers, config.feature_dtype) == (3, 2, "int64")


@pytest.mark.parametrize("family", sorted(DOCS))
def test_to_json_is_canonical_and_round_trips(family: str) -> None:
    config = _config(family)
    raw = config.to_json()
    assert parse_config(raw) == config
    assert json.loads(raw) == DOCS[family]
    assert raw == json.dumps(DOCS[family], sort_keys=True, separators=(",", ":")).encode()


def test_count_parameters_of_a_huge_config_without_building() -> None:
    huge = _config("embedding_bag", vocab_size=DIMENSION_MAX, embedding_dim=DIMENSION_MAX)
    assert count_parameters(huge) > 1 << 40
    reason = _rejected("embedding_bag", b"never read", huge.to_json(), vocab_size=DIMENSION_MAX)
    assert reason.startswith("over_limits|") and "params_max" in reason


@pytest.mark.parametrize(
    ("family", "changes", "needle"),
    [
        ("cnn", {"channels": [DIMENSION_MAX + 1]}, r"\[1, "),
        ("cnn", {"channels": [-8]}, r"\[1, "),
        ("cnn", {"channels": []}, "at least"),
        ("cnn", {"channels": [1] * (CONV_LAYERS_MAX + 1)}, "too many conv layers"),
        ("cnn", {"channels": [8.0]}, "integer"),
        ("cnn", {"image_size": 7}, "image_size 7 needs input_dim 49"),
        ("cnn", {"hidden_sizes": [4]}, "unknown config key"),
        ("cnn", {"image_size": True}, "integer"),
        ("embedding_bag", {"vocab_size": 1}, r"\[2, "),
        ("embedding_bag", {"vocab_size": 1 << 40}, r"\[2, "),
        ("embedding_bag", {"embedding_dim": -1}, r"\[1, "),
        ("embedding_bag", {"hidden_sizes": [1] * 33}, "too many hidden layers"),
        ("embedding_bag", {"channels": [4]}, "unknown config key"),
        ("embedding_bag", {"padding_idx": 3}, "unknown config key"),
        ("mlp", {"vocab_size": 50}, "unknown config key"),
    ],
)
def test_hostile_configs_are_rejected(family: str, changes: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidModelConfig, match=needle):
        parse_config(json.dumps({**DOCS[family], **changes}))


@pytest.mark.parametrize(
    ("family", "key"), [("cnn", "image_size"), ("embedding_bag", "embedding_dim")]
)
def test_missing_family_keys(family: str, key: str) -> None:
    document = {k: v for k, v in DOCS[family].items() if k != key}
    with pytest.raises(InvalidModelConfig, match=rf"missing config key.*{key}"):
        parse_config(json.dumps(document))
    with pytest.raises(InvalidModelConfig, match=r"missing config key.*family"):
        config_from_dict({"input_dim": 4})


def test_direct_construction_refuses_fields_of_other_families() -> None:
    with pytest.raises(InvalidModelConfig, match="channels"):
        ModelConfig("mlp", 64, (16,), 10, channels=(8,))
    with pytest.raises(InvalidModelConfig, match="hidden_sizes"):
        ModelConfig("cnn", 64, (16,), 10, image_size=8, channels=(8,))
    with pytest.raises(InvalidModelConfig, match="vocab_size"):
        ModelConfig("embedding_bag", 12, (), 3, embedding_dim=4)


# --- subnet limits ---------------------------------------------------------------------------


def test_family_limits_validation() -> None:
    base: dict[str, Any] = {
        "params_max": 10,
        "bytes_max": 10,
        "layers_max": 2,
        "input_dim": 4,
        "num_classes": 2,
    }
    assert FamilyLimits(**base).families == frozenset({"mlp"})  # backward compatible default
    assert FamilyLimits(**base).feature_dtype == "float32"
    text = FamilyLimits(**base, vocab_size=9, families={"embedding_bag"})  # type: ignore[arg-type]
    assert text.families == frozenset({"embedding_bag"}) and text.feature_dtype == "int64"
    with pytest.raises(ValueError, match="subset"):
        FamilyLimits(**base, families=frozenset({"resnet"}))
    with pytest.raises(ValueError, match="subset"):
        FamilyLimits(**base, families=frozenset())
    with pytest.raises(ValueError, match="set of names"):
        FamilyLimits(**base, families="mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mix input kinds"):
        FamilyLimits(**base, vocab_size=9, families=frozenset({"mlp", "embedding_bag"}))
    with pytest.raises(ValueError, match="vocab_size"):
        FamilyLimits(**base, families=frozenset({"embedding_bag"}))
    with pytest.raises(ValueError, match="vocab_size"):
        FamilyLimits(**base, vocab_size=9)
    assert families_for("float32") == frozenset({"mlp", "cnn"})
    assert families_for("int64") == frozenset({"embedding_bag"})
    with pytest.raises(ValueError):
        families_for("float16")


@pytest.mark.parametrize(
    ("family", "limits", "needle"),
    [
        ("cnn", {"families": frozenset({"mlp"})}, "'cnn' is not allowed"),
        ("mlp", {"families": frozenset({"cnn"})}, "'mlp' is not allowed"),
        ("cnn", {"layers_max": 2}, "layers_max"),
        ("cnn", {"params_max": 100}, "params_max"),
        ("embedding_bag", {"vocab_size": 51}, "vocab_size 50 does not match"),
        ("embedding_bag", {"input_dim": 13}, "input_dim"),
        ("embedding_bag", {"layers_max": 2}, "layers_max"),
    ],
)
def test_configs_outside_the_subnet_limits(
    family: str, limits: dict[str, object], needle: str
) -> None:
    model_bytes, config_bytes = submission_bytes(_model(_config(family)), _config(family))
    reason = _rejected(family, model_bytes, config_bytes, **limits)
    assert reason.startswith("over_limits|") and needle in reason


def test_text_family_on_a_float_subnet_and_back() -> None:
    eb_bytes = submission_bytes(_model(_config("embedding_bag")), _config("embedding_bag"))
    with pytest.raises(ArtifactRejected, match="not allowed") as info:
        load_submission(model_bytes=eb_bytes[0], config_bytes=eb_bytes[1], limits=FLOAT_LIMITS)
    assert info.value.code == "over_limits"
    cnn_bytes = submission_bytes(_model(_config("cnn")), _config("cnn"))
    with pytest.raises(ArtifactRejected, match="not allowed"):
        load_submission(model_bytes=cnn_bytes[0], config_bytes=cnn_bytes[1], limits=TEXT_LIMITS)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(DOCS))
def test_round_trip_gives_identical_predictions(family: str, tmp_path: Path) -> None:
    config = _config(family)
    model = _model(config, seed=3)
    model_path, config_path = save_submission(model, config, tmp_path / family)
    loaded, loaded_config = load_submission_with_config(
        model_bytes=model_path.read_bytes(),
        config_bytes=config_path.read_bytes(),
        limits=LIMITS[family],
    )
    assert loaded_config == config and not loaded.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in loaded.parameters())
    inputs = _inputs(config)
    with torch.inference_mode():
        expected, got = model(inputs), loaded(inputs)
    assert got.shape == (40, config.num_classes) and torch.isfinite(got).all()
    assert torch.equal(expected, got)
    again = submission_bytes(model, config)
    assert again == (model_path.read_bytes(), config_path.read_bytes())


# --- hostile artifacts -----------------------------------------------------------------------


@pytest.mark.parametrize("family", ["cnn", "embedding_bag"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64])
def test_non_f32_tensors(family: str, dtype: torch.dtype) -> None:
    state = _state(_config(family))
    first = sorted(state)[0]
    state[first] = state[first].to(dtype)
    assert _rejected(family, safetensors.torch.save(state)).startswith("bad_dtype|")


@pytest.mark.parametrize(
    ("family", "other"),
    [
        ("cnn", {"channels": [8, 8]}),
        ("cnn", {"channels": [8, 16, 16]}),
        ("embedding_bag", {"embedding_dim": 4}),
        ("embedding_bag", {"vocab_size": 40}),
    ],
)
def test_shape_mismatch_against_config(family: str, other: dict[str, object]) -> None:
    state = _state(_config(family, **other))
    reason = _rejected(family, safetensors.torch.save(state))
    assert reason.startswith("tensor_mismatch|")


@pytest.mark.parametrize("family", ["cnn", "embedding_bag"])
def test_extra_and_missing_tensors(family: str) -> None:
    state = _state(_config(family))
    extra = _rejected(family, safetensors.torch.save({**state, "backdoor": torch.zeros(2)}))
    assert extra.startswith("tensor_mismatch|") and "unexpected" in extra and "backdoor" in extra
    name = sorted(state)[-1]
    del state[name]
    missing = _rejected(family, safetensors.torch.save(state))
    assert missing.startswith("tensor_mismatch|") and "missing" in missing and name in missing


@pytest.mark.parametrize("family", ["cnn", "embedding_bag"])
def test_non_finite_weights(family: str) -> None:
    state = _state(_config(family))
    name = sorted(state)[0]
    state[name].view(-1)[1] = float("nan")
    reason = _rejected(family, safetensors.torch.save(state))
    assert reason.startswith("non_finite|") and name in reason


def test_random_corruptions_of_a_text_model_never_escape() -> None:
    model_bytes, config_bytes = submission_bytes(
        _model(_config("embedding_bag")), _config("embedding_bag")
    )
    rng = np.random.default_rng(99)
    for _ in range(150):
        mutated = bytearray(model_bytes)
        position = int(rng.integers(8, min(len(mutated), 300)))
        mutated[position] = int(rng.integers(32, 127))
        try:
            load_submission(
                model_bytes=bytes(mutated), config_bytes=config_bytes, limits=TEXT_LIMITS
            )
        except ArtifactRejected as exc:
            assert exc.code in {
                "bad_header",
                "bad_dtype",
                "tensor_mismatch",
                "load_failed",
                "non_finite",
            }


# --- hostile inputs to the models ------------------------------------------------------------


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_float_models_check_their_inputs(family: str) -> None:
    model = _model(_config(family))
    good = _inputs(_config(family))
    with pytest.raises(ValueError, match="float32"):
        model(good.double())
    with pytest.raises(ValueError, match="float32"):
        model(good.long())
    with pytest.raises(ValueError, match="shape"):
        model(good[:, :63])
    with pytest.raises(ValueError, match="shape"):
        model(good[0])


def test_embedding_bag_checks_dtype_shape_and_vocabulary() -> None:
    config = _config("embedding_bag")
    model = _model(config)
    good = _inputs(config)
    with torch.inference_mode():
        logits = model(good)
        # An all-padding row is an empty bag: the embedding part is zero, logits = head(0).
        state = model.state_dict()
        head_only = (
            state["layers.1.weight"] @ torch.relu(state["layers.0.bias"]) + state["layers.1.bias"]
        )
    assert torch.allclose(logits[0], head_only)
    with pytest.raises(ValueError, match="int64"):
        model(good.float())
    with pytest.raises(ValueError, match="int64"):
        model(good.int())
    with pytest.raises(ValueError, match="shape"):
        model(good[:, :5])
    for bad_id in (50, 10_000, -1):
        hostile = good.clone()
        hostile[2, 4] = bad_id
        with pytest.raises(ValueError, match=r"\[0, 50\).*no clamping"):
            model(hostile)
