"""benchmarks/explorer.py on a small simulated home, and its table's arithmetic.

No time is asserted: the smoke run checks that every page and its JSON twin was requested over
HTTP and answered 200 (a page that is not would end the run with an error), with a target no
request can miss; the verdicts are checked on fabricated timings, where every figure is known.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks.explorer import (  # noqa: E402
    Page,
    Timing,
    main,
    percentile,
    print_table,
    shown,
    with_json_twins,
)
from taoflow.tasks.simulate import SimulationSpec, simulate  # noqa: E402

PAGES = 16
HEX = "ab" * 32


def test_smoke_every_page_and_twin_answers_over_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    simulate(home / "ledger", SimulationSpec(subnet="sn", epochs=3, miners=4, validators=2))
    args = ["--home", str(home), "--requests", "1", "--rounds", "1", "--target-ms", "1e9"]
    assert main(args) == 0

    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms |" not in line]
    assert len(rows) == 2 * PAGES
    assert all(row.endswith("| PASS |") for row in rows)
    assert "| network (json) | `/api/network` |" in out
    assert "ledger: 4 batches, 3 epochs," in out
    assert f"concurrent: 4 clients × 1 rounds × {2 * PAGES} pages = {8 * PAGES} requests" in out
    assert "every page meets the p95 < 1e+09 ms target" in out


def test_table_verdicts_and_exit_on_fabricated_timings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fast = Timing(Page("fast", "/"), first_ms=50.0, times_ms=(10.0, 20.0, 30.0), size_bytes=7)
    slow = Timing(Page("slow", "/ledger"), first_ms=1.0, times_ms=(100.0, 400.0), size_bytes=1)
    assert print_table([fast], target_ms=300.0) is True
    assert print_table([fast, slow], target_ms=300.0) is False
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "| fast | `/` | 50 | 20 | 30 | 30 | 7 | PASS |"
    assert out[-1] == "| slow | `/ledger` | 1 | 100 | 400 | 400 | 1 | FAIL |"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 … 1, unsorted on purpose
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.95) == 7.0


def test_json_twins_and_shown_urls() -> None:
    pages = with_json_twins([Page("network", "/"), Page("neuron", f"/subnet/sn/neuron/{HEX}")])
    assert [p.url for p in pages] == [
        "/",
        "/api/network",
        f"/subnet/sn/neuron/{HEX}",
        f"/api/subnet/sn/neuron/{HEX}",
    ]
    assert shown(f"/ledger?account={HEX}&kind=epoch") == "/ledger?account=abababab…&kind=epoch"
