"""`taoflow consensus run`: the example scenario, checked against the NumPy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from taoflow.cli import app
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.reference import reference_epoch
from taoflow.tasks.consensus.scenario import InvalidScenario, run_scenario
from taoflow.tasks.consensus.types import EpochInputs, EpochState

EXAMPLE = Path(__file__).resolve().parents[1] / "tasks" / "consensus" / "example_scenario.json"


def test_example_matches_the_reference_epoch_by_epoch() -> None:
    document = json.loads(EXAMPLE.read_text())
    result = run_scenario(document)
    state = EpochState.empty(len(document["epochs"][0]["stake_rao"]))
    last_step = 0
    for raw, out in zip(document["epochs"], result["epochs"], strict=True):
        weights = pa.Table.from_pylist(
            [{"validator": v, "miner": m, "weight_u16": w} for v, m, w in raw["weights"]],
            schema=pa.schema(
                [("validator", pa.int32()), ("miner", pa.int32()), ("weight_u16", pa.int32())]
            ),
        )
        inputs = EpochInputs(
            stake_rao=np.array(raw["stake_rao"]),
            weights=weights,
            last_update_block=np.array(raw["last_update_block"]),
            registered_block=np.array(raw["registered_block"]),
            current_block=raw["current_block"],
            owner_uid=None,
            last_step_block=last_step,
            tempo_blocks=document["tempo_blocks"],
        )
        expected, state = reference_epoch(inputs, YumaParams(**document["hyperparameters"]), state)
        last_step = raw["current_block"]
        for name in ("incentive", "dividends", "consensus", "validator_trust"):
            np.testing.assert_allclose(out[name], getattr(expected, name), atol=1e-9)
        emission = out["emission_rao"]
        assert (
            emission["owner"] + sum(emission["miners"]) + sum(emission["validators"])
            == emission["total"]
            == document["emission_rao"]
        )
    # The clipped minority (uid 2 voted for miner 5 alone) earns nothing in epoch 1.
    assert result["epochs"][1]["validator_trust"][2] == 0.0
    assert result["epochs"][1]["emission_rao"]["miners"][5] == 0


def test_cli_writes_json_and_rejects_bad_documents(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["consensus", "run", str(EXAMPLE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --out writes the file quietly
    assert json.loads(out.read_text()) == run_scenario(json.loads(EXAMPLE.read_text()))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": [{"current_block": 1}]}))
    result = runner.invoke(app, ["consensus", "run", str(bad)])
    assert result.exit_code == 1 and "stake_rao is required" in result.output


def test_invalid_hyperparameter_is_named() -> None:
    doc = json.loads(EXAMPLE.read_text())
    doc["hyperparameters"]["kappa_u16"] = 70000
    try:
        run_scenario(doc)
    except InvalidScenario as exc:
        assert "kappa" in str(exc)
    else:
        raise AssertionError("an out-of-range kappa must be rejected")


def test_cli_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    expected = run_scenario(json.loads(EXAMPLE.read_text()))
    for flags in (["--format", "json"], ["--json"]):
        result = runner.invoke(app, ["consensus", "run", str(EXAMPLE), *flags])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == expected
    table = runner.invoke(app, ["consensus", "run", str(EXAMPLE), "--format", "table"])
    assert table.exit_code == 0 and "Incentive" in table.stdout
    bad = runner.invoke(app, ["consensus", "run", str(EXAMPLE), "--format", "yaml"])
    assert bad.exit_code == 2
    unwritable = runner.invoke(
        app, ["consensus", "run", str(EXAMPLE), "--out", str(tmp_path / "no" / "out.json")]
    )
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.output
    assert len(unwritable.output.strip().splitlines()) == 1


def test_json_keeps_each_vector_on_one_line_and_reads_back_unchanged() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["consensus", "run", str(EXAMPLE), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == run_scenario(json.loads(EXAMPLE.read_text()))
    n_uids = len(json.loads(EXAMPLE.read_text())["epochs"][0]["stake_rao"])
    incentive_lines = [line for line in shown.output.splitlines() if '"incentive":' in line]
    assert incentive_lines and all(
        line.rstrip(",").count(",") == n_uids - 1 for line in incentive_lines
    )


def test_a_scenario_file_over_the_size_cap_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taoflow.cli import consensus as consensus_cli

    monkeypatch.setattr(consensus_cli, "SCENARIO_BYTES_MAX", 1024)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"epochs": [], "description": "x" * 2048}))
    result = CliRunner().invoke(app, ["consensus", "run", str(big)])
    assert result.exit_code == 1
    size = big.stat().st_size
    expected = f"error: {big}: {size:,} bytes, over the 1,024-byte limit of a scenario file"
    assert result.output.strip().splitlines() == [expected]
