"""benchmarks/consensus.py at a tiny size (16 × 256): every column of its table, the
yuma-simulation column when the anchor is present, its one skip line when it is not, the
per-statement profile, and the arithmetic behind the verdicts.

Timings are printed, never asserted; what is checked is the table's shape, the agreement cells
(DuckDB and NumPy store identical u16 bonds; the simulator's incentive ranks like DuckDB's) and
the exact verdict texts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks import consensus as bench  # noqa: E402

TINY_LABEL = "16 × 256 dense"
SIM_COLUMNS = ("yuma-sim s", "yuma-sim peak MiB", "yuma-sim ÷ DuckDB")
MIN_RHO_TINY = 0.9  # both rank miners by the same stake-weighted, clipped quality


def _table_row(output: str, label: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    head = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if cells[0] == label:
            assert len(cells) == len(head)
            return dict(zip(head, cells, strict=True))
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_tiny_run_has_every_column_and_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    if bench.load_anchor().yumas is None:
        pytest.skip(f"yuma-simulation anchor absent at {bench.yuma_sim_dir()}")
    assert bench.main(["--sizes", "tiny", "--repeat", "1", "--profile"]) == 0
    output = capsys.readouterr().out
    row = _table_row(output, TINY_LABEL)
    assert tuple(row) == bench.HEADER
    assert row["weights nnz"] == "4,096"
    for column in ("DuckDB s", "DuckDB peak MiB", *SIM_COLUMNS):
        assert row[column] != "skipped", column
    assert float(row["yuma-sim s"]) > 0
    assert row["yuma-sim ÷ DuckDB"].endswith("×")
    assert row["NumPy s (layout)"].endswith("(dense)")
    assert row["DuckDB target (issue 15)"] == "—"
    assert row["DuckDB vs NumPy: max|ΔI| / max|ΔD| / u16 equal"].endswith("/ yes")
    assert float(row["DuckDB vs yuma-sim: Spearman ρ(I)"]) >= MIN_RHO_TINY
    assert "- yuma-simulation: Yuma3 from " in output
    assert "threads (torch's default here)" in output
    assert f"## run_epoch: seconds per statement at {TINY_LABEL}" in output
    assert "| statement " in output and "| total " in output
    assert "per-statement profile unavailable" not in output


def test_absent_anchor_prints_one_skip_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bench.YUMA_SIM_ENV, str(tmp_path))
    assert bench.main(["--sizes", "tiny", "--repeat", "1"]) == 0
    output = capsys.readouterr().out
    skip_line = (
        f"- yuma-simulation anchor not found at {tmp_path / 'yumas.py'}: its column is skipped"
    )
    assert output.splitlines().count(skip_line) == 1
    row = _table_row(output, TINY_LABEL)
    assert (row["yuma-sim s"], row["yuma-sim peak MiB"]) == ("skipped", "skipped")
    assert row["yuma-sim ÷ DuckDB"] == "—"
    assert row["DuckDB vs yuma-sim: Spearman ρ(I)"] == "—"
    assert row["DuckDB vs NumPy: max|ΔI| / max|ΔD| / u16 equal"].endswith("/ yes")
    assert "## run_epoch" not in output  # no --profile, not --sizes all


def test_average_ranks_share_ties_and_spearman_is_exact() -> None:
    ranks = bench.average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 0.0]))
    assert ranks.tolist() == [4.5, 2.0, 4.5, 3.0, 1.0]
    values = np.array([0.1, 0.5, 0.2, 0.9])
    assert bench.spearman_rho(values, values * 7) == pytest.approx(1.0, abs=1e-12)
    assert bench.spearman_rho(values, -values) == pytest.approx(-1.0, abs=1e-12)
    assert np.isnan(bench.spearman_rho(values, np.zeros(4)))


def test_target_verdicts_name_the_issue_targets() -> None:
    fast = {"duckdb": 0.1, "numpy": 0.2, bench.SIM: 0.4}
    slow = {"duckdb": 0.6, "numpy": 0.3, bench.SIM: 1.0}
    assert bench.target_verdicts(bench.SMALL, fast) == "not slower than NumPy: met"
    assert bench.target_verdicts(bench.SMALL, slow) == "not slower than NumPy: NOT met"
    assert bench.target_verdicts(bench.MEDIUM, fast) == "≥ 3× yuma-sim: met"
    assert bench.target_verdicts(bench.MEDIUM, slow) == "≥ 3× yuma-sim: NOT met"
    assert bench.target_verdicts(bench.LARGE, fast) == "< 0.5 s: met; ≥ 3× yuma-sim: met"
    assert (
        bench.target_verdicts(bench.LARGE, {"duckdb": 0.6, "numpy": 1.0})
        == "< 0.5 s: NOT met; ≥ 3× yuma-sim: not measured"
    )
    assert bench.target_verdicts(bench.TINY, fast) == "—"


def test_simulator_is_refused_when_memory_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    needed = bench.sim_memory_needed_bytes(bench.LARGE)
    assert needed == 13 * 4096 * 65536 * 4 + 2 * bench.GIB
    monkeypatch.setattr(bench, "mem_available_bytes", lambda: needed - 1)
    refusal = bench.sim_memory_refusal(bench.LARGE)
    assert refusal is not None
    assert refusal.startswith("yuma-simulation skipped at 4,096 × 65,536 1%: it is dense")
    assert refusal.endswith("MemAvailable is 15.0 GiB")
    monkeypatch.setattr(bench, "mem_available_bytes", lambda: needed)
    assert bench.sim_memory_refusal(bench.LARGE) is None


def test_statement_names_fall_back_to_the_created_table() -> None:
    names = {"SELECT 1": "_ONE"}
    assert bench.statement_name("SELECT 1", names) == "_ONE"
    created = "\n-- comment\nCREATE OR REPLACE TEMP TABLE yuma_X AS SELECT 2"
    assert bench.statement_name(created, names) == "create yuma_X"
    assert bench.statement_name("\n  SET threads = 1\n", names) == "SET threads = 1"


def test_profile_says_why_when_run_epoch_cannot_be_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    case = bench.build_case(bench.TINY)
    connection = bench.duckdb.connect()

    def untraced(*args: object, connection: object) -> None:
        del args, connection  # runs no statement through the connection it is given

    def refuses(*args: object, connection: object) -> None:
        raise TypeError("connection must be a DuckDBPyConnection")

    monkeypatch.setattr(bench, "run_epoch", untraced)
    assert bench.profile_statements(case, connection, 1) == (
        "per-statement profile unavailable: run_epoch ran no statement through its connection"
    )
    monkeypatch.setattr(bench, "run_epoch", refuses)
    assert bench.profile_statements(case, connection, 1) == (
        "per-statement profile unavailable: run_epoch could not be traced "
        "(connection must be a DuckDBPyConnection)"
    )
    connection.close()


def test_failed_simulator_memory_run_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if command[-1] == bench.SIM:
            return subprocess.CompletedProcess(command, -9, stdout="", stderr="Killed\n")
        return subprocess.CompletedProcess(command, 0, stdout="12.5\n", stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    case = bench.build_case(bench.TINY)
    peaks = bench.measure_memory(case, ("duckdb", "numpy", bench.SIM))
    assert peaks == {"duckdb": 12.5, "numpy": 12.5}
    assert capsys.readouterr().out == (
        f"- yuma-simulation skipped at {TINY_LABEL}: its memory run exited with -9 (Killed)\n"
    )
