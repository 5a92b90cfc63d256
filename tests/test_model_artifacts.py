"""Model families and safe artifact loading: round trips and hostile inputs.

Every hostile input must be refused with ``ArtifactRejected`` carrying a specific ``code`` --
never another exception, never code execution.  Nothing here unpickles anything.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
from pathlib import Path

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
    artifact_digest,
    build_model,
    count_parameters,
    expected_shapes,
    load_submission,
    parse_config,
    save_submission,
    submission_bytes,
)
from taoflow.tasks.models.artifacts import HEADER_BYTES_MAX, parse_safetensors_header
from taoflow.tasks.models.families import CONFIG_BYTES_MAX, HIDDEN_LAYERS_MAX

LIMITS = FamilyLimits(
    params_max=20_000, bytes_max=200_000, layers_max=4, input_dim=64, num_classes=10
)
CONFIG = ModelConfig(family="mlp", input_dim=64, hidden_sizes=(16, 8), num_classes=10)


def _model(config: ModelConfig = CONFIG, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(config)


def _state(config: ModelConfig = CONFIG) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in _model(config).state_dict().items()}


def _valid() -> tuple[bytes, bytes]:
    return submission_bytes(_model(), CONFIG)


def _craft(header: object, data: bytes, *, header_len: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    length = len(text) if header_len is None else header_len
    return struct.pack("<Q", length) + text + data


def _valid_header_and_data() -> tuple[dict[str, object], bytes]:
    model_bytes, _ = _valid()
    (length,) = struct.unpack("<Q", model_bytes[:8])
    header = json.loads(model_bytes[8 : 8 + length])
    return header, model_bytes[8 + length :]


def _rejected(model_bytes: bytes, config_bytes: bytes | None = None, **limits: int) -> str:
    config = CONFIG.to_json() if config_bytes is None else config_bytes
    lim = FamilyLimits(**{**LIMITS.__dict__, **limits})
    with pytest.raises(ArtifactRejected) as info:
        load_submission(model_bytes=model_bytes, config_bytes=config, limits=lim)
    assert info.value.reason.startswith(info.value.code + ": ")
    assert "\n" not in info.value.reason
    return f"{info.value.code}|{info.value.reason}"


# --- families --------------------------------------------------------------------------------


def test_parse_config_round_trip_and_shapes() -> None:
    raw = '{"family": "mlp", "input_dim": 64, "hidden_sizes": [32], "num_classes": 10}'
    config = parse_config(raw)
    assert config == ModelConfig("mlp", 64, (32,), 10)
    assert parse_config(config.to_json()) == config
    assert parse_config(raw.encode()) == config
    model = build_model(config)
    assert [name for name, _ in model.named_parameters()] == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
    ]
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    assert (
        count_parameters(config) == sum(p.numel() for p in model.parameters()) == 64 * 32 + 32 + 330
    )


def test_count_parameters_without_building() -> None:
    config = ModelConfig("mlp", 1 << 20, (1 << 20,) * 3, 1 << 20)
    assert count_parameters(config) == 4 * (1 << 40) + 4 * (1 << 20)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"family": "resnet", "input_dim": 64, "hidden_sizes": [], "num_classes": 10}, "family"),
        (
            {"family": "mlp", "input_dim": 64, "hidden_sizes": [], "num_classes": 10, "x": 1},
            "unknown",
        ),
        ({"family": "mlp", "input_dim": 64, "hidden_sizes": []}, "missing"),
        ({"family": "mlp", "input_dim": 64.0, "hidden_sizes": [], "num_classes": 10}, "integer"),
        ({"family": "mlp", "input_dim": True, "hidden_sizes": [], "num_classes": 10}, "integer"),
        ({"family": "mlp", "input_dim": 64, "hidden_sizes": ["8"], "num_classes": 10}, "integer"),
        ({"family": "mlp", "input_dim": 64, "hidden_sizes": [0], "num_classes": 10}, r"\[1, "),
        ({"family": "mlp", "input_dim": -1, "hidden_sizes": [], "num_classes": 10}, r"\[1, "),
        ({"family": "mlp", "input_dim": 64, "hidden_sizes": 8, "num_classes": 10}, "list"),
        (
            {"family": "mlp", "input_dim": 64, "hidden_sizes": [1] * 33, "num_classes": 10},
            "too many hidden layers",
        ),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_parse_config_rejects(document: object, message: str) -> None:
    with pytest.raises(InvalidModelConfig, match=message):
        parse_config(json.dumps(document))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"family": "mlp", "family": "mlp"}', "duplicate"),
        (b'{"family": "mlp", "input_dim": NaN}', "non-finite"),
        (b"[" * 2000 + b"]" * 2000, "nested|JSON"),
        (b" " * (CONFIG_BYTES_MAX + 1), "bytes >"),
    ],
)
def test_parse_config_rejects_raw(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidModelConfig, match=message):
        parse_config(raw)
    assert HIDDEN_LAYERS_MAX == 32


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    model = _model(seed=3)
    model_path, config_path = save_submission(model, CONFIG, tmp_path / "sub")
    assert (model_path.name, config_path.name) == ("model.safetensors", "config.json")
    assert sorted(p.name for p in model_path.parent.iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = load_submission(
        model_bytes=model_path.read_bytes(), config_bytes=config_path.read_bytes(), limits=LIMITS
    )
    assert not loaded.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in loaded.parameters())
    inputs = torch.from_numpy(np.random.default_rng(0).random((50, 64), dtype=np.float32))
    with torch.inference_mode():
        assert torch.equal(model(inputs), loaded(inputs))
    # Deterministic bytes: saving again gives the same files and the same content address.
    again = save_submission(model, CONFIG, tmp_path / "again")
    assert again[0].read_bytes() == model_path.read_bytes()
    assert again[1].read_bytes() == config_path.read_bytes()


def test_metadata_of_strings_is_accepted() -> None:
    tensors = _state()
    model_bytes = safetensors.torch.save(tensors, metadata={"format": "pt", "miner": "x"})
    load_submission(model_bytes=model_bytes, config_bytes=CONFIG.to_json(), limits=LIMITS)


def test_save_refuses_mismatched_or_unsafe_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not match"):
        save_submission(_model(), ModelConfig("mlp", 64, (32,), 10), tmp_path)
    with pytest.raises(ValueError, match="float32"):
        save_submission(_model().double(), CONFIG, tmp_path)
    model = _model()
    with torch.no_grad():
        model.state_dict()["layers.0.bias"][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        save_submission(model, CONFIG, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_artifact_digest_is_the_content_address() -> None:
    import hashlib

    model_bytes, config_bytes = _valid()
    digest = artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes)
    inner = hashlib.sha256(model_bytes).digest() + hashlib.sha256(config_bytes).digest()
    assert digest == hashlib.sha256(inner).hexdigest()
    assert digest != artifact_digest(model_bytes=config_bytes, config_bytes=model_bytes)
    assert digest != artifact_digest(model_bytes=model_bytes + b" ", config_bytes=config_bytes)
    assert digest != artifact_digest(model_bytes=model_bytes, config_bytes=config_bytes + b" ")


# --- hostile inputs --------------------------------------------------------------------------


def test_truncated_file() -> None:
    model_bytes, _ = _valid()
    assert _rejected(model_bytes[:5]).startswith("bad_header|")
    assert "too short" in _rejected(model_bytes[:5])
    assert _rejected(model_bytes[:-4]).startswith("bad_header|")
    assert _rejected(b"").startswith("bad_header|")


def test_header_length_larger_than_file() -> None:
    header, data = _valid_header_and_data()
    crafted = _craft(header, data, header_len=500_000)
    assert "exceeds the file" in _rejected(crafted)
    huge = _craft(header, data, header_len=HEADER_BYTES_MAX + 1)
    assert f"> {HEADER_BYTES_MAX}" in _rejected(huge)
    assert "bad_header" in _rejected(struct.pack("<Q", 2**64 - 1) + b"{}")


@pytest.mark.parametrize(
    "header_text",
    [b"not json at all", b"\xff\xfe\xfd", b"[1, 2]", b'{"a": NaN}', b"[" * 5000],
)
def test_non_json_header(header_text: bytes) -> None:
    crafted = struct.pack("<Q", len(header_text)) + header_text
    assert _rejected(crafted).startswith("bad_header|")


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.float16])
def test_non_f32_dtype(dtype: torch.dtype) -> None:
    tensors = {k: v.to(dtype) for k, v in _state().items()}
    assert _rejected(safetensors.torch.save(tensors)).startswith("bad_dtype|")


def test_shape_mismatch_against_config() -> None:
    other = ModelConfig("mlp", 64, (32, 8), 10)
    model_bytes = safetensors.torch.save(_state(other))
    reason = _rejected(model_bytes)
    assert reason.startswith("tensor_mismatch|") and "layers.0." in reason


def test_extra_tensor() -> None:
    tensors = {**_state(), "backdoor": torch.zeros(3)}
    reason = _rejected(safetensors.torch.save(tensors))
    assert reason.startswith("tensor_mismatch|") and "unexpected" in reason and "backdoor" in reason


def test_missing_tensor() -> None:
    tensors = _state()
    del tensors["layers.2.bias"]
    reason = _rejected(safetensors.torch.save(tensors))
    assert reason.startswith("tensor_mismatch|") and "missing" in reason
    assert "layers.2.bias" in reason


def test_oversized_file() -> None:
    model_bytes, _ = _valid()
    reason = _rejected(model_bytes, bytes_max=len(model_bytes) - 1)
    assert reason.startswith("too_large|")
    # Size is checked first: even garbage is reported as too large, not as a bad header.
    assert _rejected(b"\x00" * 1000, bytes_max=999).startswith("too_large|")


def test_config_with_unknown_family() -> None:
    model_bytes, _ = _valid()
    config = json.dumps({"family": "gpt", "input_dim": 64, "hidden_sizes": [], "num_classes": 10})
    reason = _rejected(model_bytes, config.encode())
    assert reason.startswith("bad_config|") and "gpt" in reason


def test_config_with_params_over_the_cap() -> None:
    big = ModelConfig("mlp", 64, (512, 512), 10)
    config_bytes = big.to_json()
    reason = _rejected(b"ignored: limits are checked before the weights", config_bytes)
    assert reason.startswith("over_limits|") and "params_max" in reason
    assert _rejected(_valid()[0], params_max=count_parameters(CONFIG) - 1).startswith(
        "over_limits|"
    )
    load_submission(
        model_bytes=_valid()[0],
        config_bytes=CONFIG.to_json(),
        limits=FamilyLimits(**{**LIMITS.__dict__, "params_max": count_parameters(CONFIG)}),
    )


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (ModelConfig("mlp", 63, (16, 8), 10), "input_dim"),
        (ModelConfig("mlp", 64, (16, 8), 9), "num_classes"),
        (ModelConfig("mlp", 64, (4, 4, 4, 4), 10), "layers_max"),
    ],
)
def test_config_not_matching_the_task(config: ModelConfig, needle: str) -> None:
    model_bytes = safetensors.torch.save(_state(config))
    reason = _rejected(model_bytes, config.to_json())
    assert reason.startswith("over_limits|") and needle in reason


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights(value: float) -> None:
    tensors = _state()
    tensors["layers.1.weight"][2, 3] = value
    reason = _rejected(safetensors.torch.save(tensors))
    assert reason.startswith("non_finite|") and "layers.1.weight" in reason


class _Exploit:
    """Unpickling this would create a marker file; the loader must never unpickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def test_pickle_renamed_safetensors(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [pickle.dumps(_Exploit(marker), protocol=p) for p in (0, 2, 4, 5)]
    torch_zip = io.BytesIO()
    torch.save(_state(), torch_zip)  # a real `.pt`: zip + pickle
    payloads.append(torch_zip.getvalue())
    for payload in payloads:
        renamed = tmp_path / "model.safetensors"
        renamed.write_bytes(payload)
        code = _rejected(renamed.read_bytes()).split("|")[0]
        assert code in {"bad_header", "too_large"}
    assert not marker.exists()


def test_overlapping_gapped_and_trailing_offsets() -> None:
    header, data = _valid_header_and_data()
    names = [k for k in header if k != "__metadata__"]
    first = min(names, key=lambda k: header[k]["data_offsets"][0])  # type: ignore[index]
    second = min(
        (k for k in names if k != first),
        key=lambda k: header[k]["data_offsets"][0],  # type: ignore[index]
    )

    trailing = _craft(header, data + b"\x00" * 4)
    assert "trailing" in _rejected(trailing)

    overlapping = json.loads(json.dumps(header))
    begin, end = overlapping[second]["data_offsets"]
    overlapping[second]["data_offsets"] = [begin - 4, end - 4]
    assert "bad_header" in _rejected(_craft(overlapping, data))

    out_of_bounds = json.loads(json.dumps(header))
    out_of_bounds[first]["data_offsets"] = [0, len(data) + 4]
    assert "outside data" in _rejected(_craft(out_of_bounds, data))

    wrong_length = json.loads(json.dumps(header))
    begin, end = wrong_length[first]["data_offsets"]
    wrong_length[first]["data_offsets"] = [begin, end - 4]
    assert "do not match shape" in _rejected(_craft(wrong_length, data))

    negative = json.loads(json.dumps(header))
    negative[first]["shape"] = [-1, 4]
    assert "malformed shape" in _rejected(_craft(negative, data))

    bad_entry = json.loads(json.dumps(header))
    bad_entry[first]["extra"] = 1
    assert "entry must have exactly" in _rejected(_craft(bad_entry, data))

    bad_dtype_type = json.loads(json.dumps(header))
    bad_dtype_type[first]["dtype"] = ["F32"]
    assert "bad_dtype" in _rejected(_craft(bad_dtype_type, data))


def test_duplicate_keys_and_bad_metadata() -> None:
    header, data = _valid_header_and_data()
    text = json.dumps(header)
    duplicated = text[:-1] + ", " + text[1:]
    crafted = struct.pack("<Q", len(duplicated)) + duplicated.encode() + data
    assert "duplicate" in _rejected(crafted)

    for metadata in ({"k": 1}, ["x"], {"k": {"nested": "v"}}):
        bad = {**header, "__metadata__": metadata}
        assert "__metadata__" in _rejected(_craft(bad, data))


def test_header_parser_accepts_safetensors_output() -> None:
    model_bytes, _ = _valid()
    entries = parse_safetensors_header(model_bytes)
    assert {k: e.shape for k, e in entries.items()} == expected_shapes(CONFIG)


def test_random_corruptions_never_escape_as_other_errors() -> None:
    """Flip/insert/delete/truncate bytes: the loader either accepts or raises ArtifactRejected."""
    model_bytes, config_bytes = _valid()
    rng = np.random.default_rng(1234)
    outcomes: set[str] = set()
    for _ in range(400):
        mutated = bytearray(model_bytes)
        kind = int(rng.integers(4))
        position = int(rng.integers(len(mutated)))
        if kind == 0:
            mutated[position] = int(rng.integers(256))
        elif kind == 1:
            mutated.insert(position, int(rng.integers(256)))
        elif kind == 2:
            del mutated[position]
        else:
            mutated = mutated[:position]
        if rng.random() < 0.5:  # aim at the header, where the parser lives
            header_position = int(rng.integers(8, 8 + 200))
            if header_position < len(mutated):
                mutated[header_position] = int(rng.integers(32, 127))
        try:
            load_submission(model_bytes=bytes(mutated), config_bytes=config_bytes, limits=LIMITS)
            outcomes.add("accepted")
        except ArtifactRejected as exc:
            outcomes.add(exc.code)
    assert "bad_header" in outcomes
    assert outcomes <= {
        "accepted",
        "bad_header",
        "bad_dtype",
        "tensor_mismatch",
        "load_failed",
        "non_finite",
    }


def test_loader_does_not_touch_the_filesystem(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path))
    model_bytes, config_bytes = _valid()
    load_submission(model_bytes=model_bytes, config_bytes=config_bytes, limits=LIMITS)
    assert set(os.listdir(tmp_path)) == before
