"""benchmarks/cli_startup.py on a small network, and the arithmetic of its epoch breakdown.

No time is asserted (no timed assertions): the smoke run checks the report's shape, that every
command exited as a correct CLI does, and which heavy packages each command imported; the
breakdown is checked on fabricated timestamps, where every row is known exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ledger_helpers import network_with_subnet

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks.cli_startup import (  # noqa: E402
    EPOCH_RATIO_TARGET,
    TARGET_S,
    breakdown,
    commands,
    covered_s,
    main,
)

SMOKE = ("--help", "ledger --help", "argument error", "ledger balance", "submit (missing file)")
FLOW_STACK = {"torch", "prefect", "mlflow", "dask", "distributed"}


def test_smoke_report_shape_exit_codes_and_heavy_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # children write nothing outside tmp_path
    home = tmp_path / "home"
    network_with_subnet(home, subnet="sn")
    out = tmp_path / "report.json"
    args = ["--home", str(home), "--subnet", "sn", "--runs", "1", "--no-warm-up", "--as-is"]
    args += ["--skip-epoch", "--only", ",".join(SMOKE), "--scratch", str(tmp_path)]
    assert main([*args, "--json", str(out)]) == 0

    report = json.loads(out.read_text())
    assert set(report) == {"target_s", "epoch_ratio_target", "floor", "commands", "epoch"}
    assert (report["target_s"], report["epoch_ratio_target"]) == (TARGET_S, EPOCH_RATIO_TARGET)
    assert report["epoch"] is None
    assert set(report["floor"]) == {"wall_s", "cpu_s", "exit_code"}
    rows = {row["label"]: row for row in report["commands"]}
    assert list(rows) == list(SMOKE)  # in COMMANDS order, only those asked for
    for row in rows.values():
        assert set(row) == {
            "label",
            "args",
            "runs",
            "wall_s",
            "cpu_s",
            "exit_code",
            "expect_exit",
            "heavy",
            "verdict",
        }
        assert row["runs"] == 1 and row["wall_s"] > 0 and row["cpu_s"] >= 0
        assert row["exit_code"] == row["expect_exit"], row
        assert not FLOW_STACK & set(row["heavy"]), row
    assert [rows[label]["expect_exit"] for label in SMOKE] == [0, 0, 2, 0, 1]
    assert rows["--help"]["heavy"] == []
    assert rows["ledger balance"]["heavy"] == ["pyarrow", "pydantic"]  # no pandas
    assert "torch" not in rows["submit (missing file)"]["heavy"]
    assert rows["ledger balance"]["args"] == ["ledger", "balance", "--home", str(home)]


def test_every_noun_and_read_only_command_is_probed(tmp_path: Path) -> None:
    probes = commands(home=tmp_path, subnet="sn", scratch=tmp_path)
    labels = [probe.label for probe in probes]
    assert len(labels) == len(set(labels))
    for expected in (
        "--help",
        "wallet --help",
        "consensus --help",
        "argument error",
        "wallet list",
        "ledger balance",
        "ledger supply",
        "metagraph",
        "submissions",
        "stake list",
        "subnet list",
        "submit (missing file)",
        "ledger verify",
    ):
        assert expected in labels


def test_covered_s_is_the_length_of_the_union() -> None:
    assert covered_s([]) == 0.0
    assert covered_s([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.75)]) == 4.0


def _child(**overrides: object) -> dict[str, object]:
    child: dict[str, object] = {
        "boot_s": 100.5,
        "main_end_s": 116.0,
        "exit_handlers_end_s": 116.5,
        "events": [
            ["settings", 101.0, 101.01],
            ["prefect server start", 104.0, 105.0],  # waited for, before the flow
            ["dask cluster start", 101.5, 103.0],
            ["mlflow reconcile", 103.0, 104.0],
            ["flow", 105.0, 114.0],
            ["mlflow reconcile", 112.0, 112.5],  # inside the track stage: not a row of its own
            ["dask cluster close", 114.0, 115.0],
            ["prefect server stop", 115.0, 115.5],
        ],
        "stage_compute_s": {"gather": 0.5, "evaluate": 2.0, "consensus": 0.5, "emit": 1.0},
        "prefect_api_url": "http://127.0.0.1:9/api",
        "exit_code": 0,
    }
    child.update(overrides)
    return child


def test_breakdown_splits_the_wall_time_exactly() -> None:
    result = breakdown(spawn_s=100.0, exit_s=117.0, child=_child())
    rows = dict(result.rows)
    assert rows == {
        "interpreter start": 0.5,
        "CLI imports and argument parsing": 0.5,
        "flow-stack imports, ledger reads": 0.5,  # 101 → 105 minus 101.5 → 105 measured
        "MLflow backfill before the flow": 1.0,
        "Prefect server start (time waited)": 1.0,
        "Dask cluster start": 1.5,
        "stage gather": 0.5,
        "stage evaluate": 2.0,
        "stage consensus": 0.5,
        "stage emit": 1.0,
        "Prefect orchestration (flow run minus the above)": 5.0,  # 9 s flow minus 4 s stages
        "Dask cluster close": 1.0,
        "Prefect server stop": 0.5,
        "output after the flow": 0.5,  # 114 → 116 minus close and stop
        "threads and exit handlers": 0.5,
        "interpreter exit": 0.5,
    }
    assert sum(rows.values()) == pytest.approx(result.wall_s) == 17.0
    assert result.compute_s == 4.0 and result.ratio == 17.0 / 4.0
    assert result.verdict() == "FAIL"  # 4.25× > 3×
    assert (result.prefect, result.dask) == ("temporary server started", "LocalCluster started")


def test_breakdown_names_reused_services_and_a_failed_run() -> None:
    events = [["settings", 101.0, 101.01], ["flow", 105.0, 114.0]]
    result = breakdown(spawn_s=100.0, exit_s=117.0, child=_child(events=events, exit_code=1))
    assert result.prefect == "server reused (http://127.0.0.1:9/api)"
    assert result.dask == "scheduler reused"
    assert result.verdict() == "FAIL (exit 1)"
    rows = dict(result.rows)
    assert rows["Prefect server start (time waited)"] == 0.0
    assert rows["flow-stack imports, ledger reads"] == 4.0
