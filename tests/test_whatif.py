"""What-if over stored epochs (``tasks.audit.whatif``) on a small simulated network.

One simulated subnet (``MINERS`` × ``VALIDATORS``, ``EPOCHS`` epochs; the first pays validators
only, later ones earn incentive) is shared by the module. The recorded parameters must reproduce
every epoch's per-uid payout and the owner's cut to the rao; other κ, fixed-α bonds with another
moving average, the legacy bonds (the subnet records Yuma3 + liquid alpha, new subnets' default)
must change per-hotkey numbers and still pay the same total; a changed
split moves the owner's cut exactly and still pays the schedule. The fast NumPy engine must
give the same report as DuckDB on these inputs. Bad ``--set`` values are one line, and the flow
logs one MLflow run (SQLite store under the test's directory) with its PNGs and delta table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cli_helpers import cli

from taoflow.ledger.schema import Kind
from taoflow.ledger.store import Ledger
from taoflow.settings import HOME_ENV, Settings
from taoflow.tasks.audit.history import HistoryError, stored_epochs
from taoflow.tasks.audit.stats import gini, spread
from taoflow.tasks.audit.whatif import (
    WhatIfError,
    WhatIfParams,
    compare_epoch,
    parse_overrides,
    whatif,
)
from taoflow.tasks.consensus.stage import previous_state
from taoflow.tasks.simulate import SimulationSpec, simulate

SUBNET = "wi"
MINERS = 24
VALIDATORS = 6
EPOCHS = 6
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OWNER_PPM = 180_000
FLOAT_REL = 1e-12
FLOAT_SUMMARY = (
    "baseline_gini_mean",
    "whatif_gini_mean",
    "baseline_vt_spread_mean",
    "whatif_vt_spread_mean",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("whatif") / "home"
    spec = SimulationSpec(subnet=SUBNET, epochs=EPOCHS, miners=MINERS, validators=VALIDATORS)
    simulate(Settings.load(root).ledger_dir, spec)
    return root


@pytest.fixture(scope="module")
def ledger(home: Path) -> Ledger:
    return Ledger.open(Settings.load(home).ledger_dir)


def _run(ledger: Ledger, text: str, **kwargs: Any) -> Any:
    overrides = parse_overrides(text)
    return whatif(ledger, subnet=SUBNET, first=0, last=EPOCHS - 1, overrides=overrides, **kwargs)


def _paid_by_uid(rows: pa.Table, n: int) -> tuple[np.ndarray, int]:
    """Rao per uid and the owner's cut, from an epoch's payout rows."""
    out = np.zeros(n, dtype=np.int64)
    owner = 0
    for kind, uid, amount in zip(
        rows.column("kind").to_pylist(),
        rows.column("uid").to_pylist(),
        rows.column("amount_rao").to_pylist(),
        strict=True,
    ):
        if kind == Kind.EMISSION_OWNER.value:
            owner += amount
        elif kind != Kind.EPOCH.value:
            out[uid] += amount
    return out, owner


def test_recorded_parameters_reproduce_every_payout_row(ledger: Ledger) -> None:
    engine_state = None
    import duckdb

    from taoflow.tasks.audit.whatif import _Engine

    engine = _Engine(name="numpy", connection=duckdb.connect())
    paid_epochs = 0
    for stored in stored_epochs(ledger, subnet=SUBNET, first=0, last=EPOCHS - 1):
        state = engine_state if engine_state is not None else previous_state(stored.ctx)
        result = compare_epoch(ledger, stored, overrides=WhatIfParams(), state=state, engine=engine)
        engine_state = result.next_state
        want, owner = _paid_by_uid(stored.rows, stored.ctx.n)
        np.testing.assert_array_equal(result.whatif.uid_rao, want)
        assert result.whatif.owner_rao == owner
        assert result.comparison.reproduced
        paid_epochs += int(want.sum() > 0)
    assert paid_epochs == EPOCHS
    report = _run(ledger, "")
    assert report.reproduces_ledger
    assert all(h.delta_rao == 0 for h in report.hotkeys)
    assert report.whatif_rao == report.baseline_rao == report.scheduled_rao


@pytest.mark.parametrize(
    "text", ["kappa=0.6", "liquid_alpha=false,bonds_moving_average=0.5", "yuma3=false"]
)
def test_other_parameters_conserve_the_total_to_the_rao(ledger: Ledger, text: str) -> None:
    report = _run(ledger, text)
    assert report.whatif_rao == report.baseline_rao == report.scheduled_rao
    assert report.conserved
    assert report.whatif_owner_rao == report.baseline_owner_rao
    assert not report.reproduces_ledger
    assert sum(h.delta_rao for h in report.hotkeys) == 0
    assert max(abs(h.delta_rao) for h in report.hotkeys) > 0


def test_kappa_change_moves_incentive_gini_and_trust(ledger: Ledger) -> None:
    report = _run(ledger, "kappa=0.9")
    summary = report.summary()
    assert summary["whatif_vt_spread_mean"] != summary["baseline_vt_spread_mean"]
    assert [e.epoch for e in report.epochs] == list(range(EPOCHS))


def test_numpy_engine_equals_duckdb_on_these_epochs(ledger: Ledger) -> None:
    for text in ("", "kappa=0.6,bonds_moving_average=0.7", "yuma3=true,liquid_alpha=true"):
        fast = _run(ledger, text).to_dict()
        slow = _run(ledger, text, engine="duckdb").to_dict()
        assert slow.pop("duckdb_epochs") == EPOCHS
        fast.pop("duckdb_epochs")
        assert fast.pop("engine") == "numpy" and slow.pop("engine") == "duckdb"
        assert _money(fast) == _money(slow), text
        for name in FLOAT_SUMMARY:  # Gini and VT spread: float sums, equal to rounding
            assert fast[name] == pytest.approx(slow[name], rel=FLOAT_REL), (text, name)


def _money(report: dict[str, Any]) -> dict[str, Any]:
    """The exact part of a report: every rao figure, per hotkey and per epoch."""
    return {
        "hotkeys": [(h["hotkey"], h["baseline_rao"], h["whatif_rao"]) for h in report["hotkeys"]],
        "epochs": [
            (e["epoch"], e["baseline_rao"], e["whatif_rao"], e["whatif_owner_rao"], e["reproduced"])
            for e in report["per_epoch"]
        ],
    }


def test_split_change_moves_the_owner_share_and_pays_the_schedule(ledger: Ledger) -> None:
    report = _run(ledger, "split=10/45/45")
    per_epoch = {e.scheduled_rao for e in report.epochs}
    assert len(per_epoch) == 1
    scheduled = per_epoch.pop()
    assert report.baseline_owner_rao == EPOCHS * (scheduled * OWNER_PPM // 1_000_000)
    assert report.whatif_owner_rao == EPOCHS * (scheduled * 100_000 // 1_000_000)
    assert report.whatif_rao == report.baseline_rao == report.scheduled_rao
    paid_to_uids = sum(h.whatif_rao for h in report.hotkeys)
    assert paid_to_uids == report.scheduled_rao - report.whatif_owner_rao
    assert parse_overrides("split=100000/450000/450000") == parse_overrides("split=10/45/45")


def test_overrides_parse_to_chain_units() -> None:
    params = parse_overrides("kappa=0.6, bonds_moving_average=0.8,yuma3=true,liquid_alpha=on")
    assert dict(params.yuma) == {
        "kappa_u16": 39_321,
        "bonds_moving_average_ppm": 800_000,
        "yuma3": True,
        "liquid_alpha": True,
    }
    assert parse_overrides("kappa_u16=100").yuma == (("kappa_u16", 100),)
    assert parse_overrides("split=18/41/41").split_ppm == (
        ("owner", 180_000),
        ("miners", 410_000),
        ("validators", 410_000),
    )
    assert parse_overrides("").is_empty


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kappa=2", "fraction in [0, 1]"),
        ("kappa=abc", "not a number"),
        ("kappa=0", "kappa_u16 must be in [1, 65535]"),
        ("foo=1", "unknown key 'foo'"),
        ("kappa=0.5,kappa_u16=3", "sets kappa_u16 twice"),
        ("split=50/50", "owner/miners/validators"),
        ("split=10/10/10", "add up to 1,000,000"),
        ("split=a/b/c", "three numbers"),
        ("yuma3=maybe", "true or false"),
        ("kappa", "key=value"),
        ("bonds_moving_average=0.99", "975000"),
        ("max_validators=-1", "max_validators must be in [1"),
        ("max_validators=1.5", "must be an integer"),
        ("kappa=nan", "fraction in [0, 1]"),
        ("x" * 2_000, "longer than"),
    ],
)
def test_bad_set_values_are_one_line(text: str, fragment: str) -> None:
    with pytest.raises(WhatIfError) as caught:
        parse_overrides(text)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_invalid_combination_with_the_subnet_is_one_line(ledger: Ledger) -> None:
    with pytest.raises(WhatIfError, match=r"alpha_low_u16 .* must be <= alpha_high_u16"):
        _run(ledger, "alpha_low=0.99")


def test_unknown_range_is_one_line(ledger: Ledger) -> None:
    with pytest.raises(HistoryError, match=f"no committed epoch {EPOCHS + 3}"):
        whatif(ledger, subnet=SUBNET, first=0, last=EPOCHS + 3, overrides=WhatIfParams())


def test_cli_prints_deltas_and_refuses_bad_input(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(capsys, home, "whatif", "--subnet", SUBNET, "--epochs", "1..3", "--set", "kappa=0.6")
    assert ran.code == 0, ran.err
    assert "conserved to the rao" in ran.out
    assert "kappa_u16=39321" in ran.out
    same = cli(capsys, home, "whatif", "--subnet", SUBNET, "--epochs", "0..2", "--json")
    assert same.code == 0, same.err
    assert '"reproduces_ledger": true' in same.out
    bad = cli(capsys, home, "whatif", "--subnet", SUBNET, "--epochs", "0..2", "--set", "kappa=7")
    assert bad.code == 2
    assert bad.err_lines == ["error: --set kappa must be a fraction in [0, 1], got 7"]


def test_stats_exact_values() -> None:
    assert gini([0, 0, 0, 4]) == pytest.approx(0.75)
    assert gini([2, 2, 2]) == 0.0
    assert gini([]) == 0.0
    assert spread([1.0, 3.0]).max_minus_min == 2.0
    assert spread([1.0, 3.0]).std == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        gini([1, -1])


def test_flow_logs_an_mlflow_run_with_plots(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.artifacts
    from mlflow.tracking import MlflowClient

    from taoflow.flows.whatif import whatif_flow
    from taoflow.tasks.track import experiment_name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv("TAOFLOW_MLFLOW_URI", uri)
    published: list[dict[str, Any]] = []
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, lambda **kw: published.append(kw))
    artifacts_dir = tmp_path / "mlflow-artifacts"
    monkeypatch.setattr(Settings, "mlflow_artifacts_dir", property(lambda _: artifacts_dir))
    result = whatif_flow.fn(subnet=SUBNET, first=1, last=4, kappa=0.6, split="10/45/45")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(SUBNET))
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == result["mlflow_run_id"]
    assert (
        run.info.run_name == "whatif · epochs 1..4 · kappa_u16=39321,split_ppm=100000/450000/450000"
    )
    assert run.data.params["kappa_u16"] == "39321"
    assert run.data.metrics["whatif_rao"] == run.data.metrics["baseline_rao"] > 0
    assert 0 < run.data.metrics["copier/ratio_stored"] != run.data.metrics["copier/ratio_whatif"]
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"plots", "whatif_deltas.csv", "whatif_deltas.parquet"} <= names
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/emission_by_hotkey.png", "plots/gini_by_epoch.png"}
    local = Path(client.download_artifacts(run.info.run_id, "plots", str(tmp_path / "dl")))
    assert (local / "gini_by_epoch.png").read_bytes().startswith(PNG_MAGIC)
    keys = [p["key"] for p in published]
    assert keys == [f"whatif-{SUBNET}-summary", f"whatif-{SUBNET}-deltas"]
    assert "conserved to the rao" in published[0]["markdown"]
    copier_line = f"- {result['copier']} (the copier: the median stake of the epoch's permitted"
    assert any(line.startswith(copier_line) for line in published[0]["markdown"].splitlines())
    assert pc.sum(pa.array([r["delta_rao"] for r in published[1]["table"]])).as_py() is not None
