"""Backtests attached to governance proposals (``tasks.governance.backtest``).

One small simulated subnet (``MINERS`` × ``VALIDATORS``, ``EPOCHS`` epochs) is shared by the
module. A κ change must give exactly the what-if's own numbers and delta table over the last
``epochs`` epochs; the report's bytes must be the same twice and hash to the sha256 it carries;
a change with nothing to recompute, a malformed change, a bad sha256, a changed file or a report
attached to another change must each be refused in one line; the flow stores the file, logs an
MLflow run (SQLite file under the test's directory) tagged with the sha256 and publishes the
markdown and table artifacts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import taoflow.tasks.governance.backtest as backtest_module
from taoflow.ledger.store import Ledger
from taoflow.settings import Settings
from taoflow.tasks.audit.whatif import WhatIfParams, delta_table, whatif
from taoflow.tasks.governance.backtest import (
    META_CHANGE,
    META_SUMMARY,
    Backtest,
    BacktestError,
    BacktestMismatch,
    check_backtest_for,
    load_backtest,
    not_simulated,
    overrides_of_change,
    report_path,
    run_backtest,
    store_backtest,
    summary_lines,
)
from taoflow.tasks.simulate import SimulationSpec, simulate

SUBNET = "gv"
MINERS = 10
VALIDATORS = 4
EPOCHS = 6
BACKTESTED = 4
KAPPA_U16 = 58_982
KAPPA_CHANGE: dict[str, Any] = {"yuma": {"kappa_u16": KAPPA_U16}}
SPLIT = {"validators": 450_000, "owner": 100_000, "miners": 450_000}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backtest") / "home"
    spec = SimulationSpec(subnet=SUBNET, epochs=EPOCHS, miners=MINERS, validators=VALIDATORS)
    simulate(Settings.load(root).ledger_dir, spec)
    return root


@pytest.fixture(scope="module")
def ledger(home: Path) -> Ledger:
    return Ledger.open(Settings.load(home).ledger_dir)


@pytest.fixture(scope="module")
def kappa(ledger: Ledger) -> Backtest:
    return run_backtest(ledger, subnet=SUBNET, values=KAPPA_CHANGE, epochs=BACKTESTED)


def test_a_kappa_change_reports_the_whatifs_own_numbers(ledger: Ledger, kappa: Backtest) -> None:
    overrides = WhatIfParams(yuma=(("kappa_u16", KAPPA_U16),))
    first, last = EPOCHS - BACKTESTED, EPOCHS - 1
    report = whatif(ledger, subnet=SUBNET, first=first, last=last, overrides=overrides)
    want = report.summary()
    s = kappa.summary
    assert (kappa.subnet, kappa.first_epoch, kappa.last_epoch) == (SUBNET, first, last)
    assert kappa.values == '{"yuma":{"kappa_u16":58982}}'
    assert s.epochs == want["epochs"] == BACKTESTED
    assert (s.baseline_rao, s.whatif_rao) == (want["baseline_rao"], want["whatif_rao"])
    assert (s.baseline_owner_rao, s.whatif_owner_rao) == (
        want["baseline_owner_rao"],
        want["whatif_owner_rao"],
    )
    assert (s.gini_before, s.gini_after) == (want["baseline_gini_mean"], want["whatif_gini_mean"])
    assert (s.trust_spread_before, s.trust_spread_after) == (
        want["baseline_vt_spread_mean"],
        want["whatif_vt_spread_mean"],
    )
    assert s.trust_spread_after != s.trust_spread_before
    assert kappa.deltas.equals(delta_table(report))
    changed = [h for h in report.hotkeys if h.delta_rao != 0]
    assert s.hotkeys_changed == len(changed) > 0
    gain = max(changed, key=lambda h: h.delta_rao)
    loss = min(changed, key=lambda h: h.delta_rao)
    assert (s.largest_gain_hotkey, s.largest_gain_rao) == (gain.hotkey, gain.delta_rao)
    assert (s.largest_loss_hotkey, s.largest_loss_rao) == (loss.hotkey, -loss.delta_rao)
    assert s.largest_gain_rao > 0 and s.largest_loss_rao > 0
    assert s.not_simulated == ()


def test_the_report_is_the_same_bytes_twice_and_hashes_to_its_sha(
    ledger: Ledger, kappa: Backtest
) -> None:
    again = run_backtest(ledger, subnet=SUBNET, values=dict(KAPPA_CHANGE), epochs=BACKTESTED)
    assert again.report_bytes == kappa.report_bytes
    assert kappa.sha256 == hashlib.sha256(kappa.report_bytes).hexdigest()
    assert again.sha256 == kappa.sha256
    other = run_backtest(ledger, subnet=SUBNET, values=KAPPA_CHANGE, epochs=BACKTESTED - 1)
    assert other.sha256 != kappa.sha256
    assert other.first_epoch == EPOCHS - BACKTESTED + 1


def test_the_report_file_carries_the_change_and_the_summary(
    kappa: Backtest, tmp_path: Path
) -> None:
    path = tmp_path / "report.parquet"
    path.write_bytes(kappa.report_bytes)
    table = pq.read_table(path)
    metadata = table.schema.metadata
    assert json.loads(metadata[META_CHANGE]) == {
        "subnet": SUBNET,
        "first_epoch": EPOCHS - BACKTESTED,
        "last_epoch": EPOCHS - 1,
        "values": KAPPA_CHANGE,
    }
    assert json.loads(metadata[META_SUMMARY]) == kappa.summary.to_dict()
    assert table.column_names == [
        "hotkey",
        "uid",
        "role",
        "baseline_rao",
        "whatif_rao",
        "delta_rao",
        "delta_pct",
    ]
    assert table.num_rows == kappa.deltas.num_rows > 0


def test_more_epochs_than_stored_backtests_them_all(ledger: Ledger) -> None:
    values = {"emission_split_ppm": SPLIT, "tempo_blocks": 50}
    result = run_backtest(ledger, subnet=SUBNET, values=values, epochs=EPOCHS + 10)
    assert (result.first_epoch, result.last_epoch) == (0, EPOCHS - 1)
    s = result.summary
    assert s.epochs == EPOCHS
    assert s.whatif_rao == s.baseline_rao
    assert s.baseline_owner_rao - s.whatif_owner_rao == s.baseline_rao * 80_000 // 1_000_000
    assert s.not_simulated == ("tempo_blocks",)
    assert "not simulated: tempo_blocks" in summary_lines(result)


def test_overrides_of_a_change() -> None:
    values = {"yuma": {"yuma3": False, "kappa_u16": 100, "immunity_period_blocks": 10}}
    assert overrides_of_change(values) == WhatIfParams(yuma=(("kappa_u16", 100), ("yuma3", False)))
    assert not_simulated(values) == ("yuma.immunity_period_blocks",)
    split = overrides_of_change({"emission_split_ppm": SPLIT})
    assert split == WhatIfParams(
        split_ppm=(("owner", 100_000), ("miners", 450_000), ("validators", 450_000))
    )
    nothing = {"tempo_blocks": 10, "registration_cost_rao": 5, "emission_share": 3}
    assert overrides_of_change(nothing) is None
    assert not_simulated(nothing) == ("emission_share", "registration_cost_rao", "tempo_blocks")
    assert overrides_of_change({"yuma": {"immunity_period_blocks": 10}}) is None


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"tempo_blocks": 10}, "the change sets only tempo_blocks: a backtest recomputes"),
        ({"yuma": {"immunity_period_blocks": 9}}, "the change sets only yuma"),
        ({"bogus": 1}, "unknown subnet setting 'bogus'"),
        ({"yuma": {"kappa": 1}}, "unknown yuma setting 'kappa'"),
        ({"yuma": {"kappa_u16": "1"}}, "yuma.kappa_u16 must be an integer"),
        ({"yuma": {"kappa_u16": True}}, "yuma.kappa_u16 must be an integer"),
        ({"yuma": {"yuma3": 1}}, "yuma.yuma3 must be true or false"),
        ({"yuma": {"kappa_u16": 0}}, "kappa_u16 must be in [1, 65535]"),
        ({"yuma": {"alpha_low_u16": 65_000}}, "alpha_low_u16"),
        ({"yuma": [1]}, "yuma must be an object"),
        ({"emission_split_ppm": {"owner": 1}}, "emission_split_ppm must have exactly"),
        ({"yuma": {"kappa_u16": float("nan")}}, "must be JSON"),
        ({f"s{i}": 1 for i in range(65)}, "at most 64 settings"),
    ],
)
def test_a_change_that_cannot_be_backtested_is_one_line(
    ledger: Ledger, values: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(BacktestError) as caught:
        run_backtest(ledger, subnet=SUBNET, values=values, epochs=2)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("subnet", "epochs", "fragment"),
    [
        ("nope", 2, "no subnet 'nope' in this ledger"),
        (SUBNET, 0, "backtest epochs must be in [1, 1000], got 0"),
        (SUBNET, 1_001, "backtest epochs must be in [1, 1000], got 1001"),
    ],
)
def test_a_bad_subnet_or_epoch_count_is_one_line(
    ledger: Ledger, subnet: str, epochs: int, fragment: str
) -> None:
    with pytest.raises(BacktestError, match=None) as caught:
        run_backtest(ledger, subnet=subnet, values=KAPPA_CHANGE, epochs=epochs)
    assert fragment in str(caught.value)


def test_a_subnet_without_epochs_has_no_backtest(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backtest_module, "committed_epochs", lambda *_a, **_k: 0)
    with pytest.raises(BacktestError) as caught:
        run_backtest(ledger, subnet=SUBNET, values=KAPPA_CHANGE)
    assert str(caught.value) == f"subnet {SUBNET!r} has no committed epoch to backtest"


def test_store_and_load_round_trip(kappa: Backtest, tmp_path: Path) -> None:
    folder = tmp_path / "governance" / "backtests"
    path = store_backtest(folder, kappa)
    assert path == folder.resolve() / f"{kappa.sha256}.parquet"
    assert path.read_bytes() == kappa.report_bytes
    assert store_backtest(folder, kappa) == path  # the same bytes again: nothing new
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    loaded = load_backtest(folder, kappa.sha256)
    assert loaded == kappa
    assert loaded.whatif is None
    assert loaded.deltas.equals(kappa.deltas)
    assert summary_lines(loaded) == summary_lines(kappa)


def test_a_changed_file_is_refused(kappa: Backtest, tmp_path: Path) -> None:
    path = store_backtest(tmp_path, kappa)
    data = bytearray(kappa.report_bytes)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BacktestMismatch) as caught:
        load_backtest(tmp_path, kappa.sha256)
    assert str(caught.value) == (
        f"backtest report {kappa.sha256[:12]} does not match its hash: the file was changed"
    )
    with pytest.raises(BacktestMismatch, match="already stored with other bytes"):
        store_backtest(tmp_path, kappa)
    assert path.read_bytes() == bytes(data)  # left as it was


def test_an_absent_or_malformed_report_is_one_line(tmp_path: Path) -> None:
    missing = "ab" * 32
    with pytest.raises(BacktestError, match=f"no backtest report {missing[:12]} in "):
        load_backtest(tmp_path, missing)
    junk = b"not a parquet file"
    sha = hashlib.sha256(junk).hexdigest()
    (tmp_path / f"{sha}.parquet").write_bytes(junk)
    with pytest.raises(BacktestError) as caught:
        load_backtest(tmp_path, sha)
    assert str(caught.value) == f"backtest report {sha[:12]} is not Parquet"


def test_a_symlink_out_of_the_folder_is_refused(kappa: Backtest, tmp_path: Path) -> None:
    folder, outside = tmp_path / "backtests", tmp_path / "outside.parquet"
    folder.mkdir()
    outside.write_bytes(kappa.report_bytes)
    (folder / f"{kappa.sha256}.parquet").symlink_to(outside)
    with pytest.raises(BacktestError, match="leads outside"):
        load_backtest(folder, kappa.sha256)


@pytest.mark.parametrize(
    "sha",
    ["", "../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "a" * 63 + "g", "a" * 64 + "\n", None, 7],
)
def test_bad_sha_strings_are_refused_before_any_path_is_built(
    sha: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[Any, ...]] = []
    monkeypatch.setattr(backtest_module, "path_under", lambda *parts: built.append(parts))
    for call in (lambda: load_backtest(tmp_path, sha), lambda: report_path(tmp_path, sha)):
        with pytest.raises(BacktestError) as caught:
            call()
        assert str(caught.value) == "a backtest sha256 must be 64 lowercase hex digits"
    assert built == []


def test_a_report_attached_to_another_change_is_refused(kappa: Backtest) -> None:
    check_backtest_for(kappa, subnet=SUBNET, values={"yuma": {"kappa_u16": KAPPA_U16}})
    with pytest.raises(BacktestMismatch) as caught:
        check_backtest_for(kappa, subnet="other", values=KAPPA_CHANGE)
    assert str(caught.value) == (
        f"backtest report {kappa.sha256[:12]} is of subnet {SUBNET!r}, not 'other'"
    )
    with pytest.raises(BacktestMismatch) as caught:
        check_backtest_for(kappa, subnet=SUBNET, values={"yuma": {"kappa_u16": 40_000}})
    assert str(caught.value) == (
        f"backtest report {kappa.sha256[:12]} describes the change "
        '{"yuma":{"kappa_u16":58982}}, not {"yuma":{"kappa_u16":40000}}'
    )


def test_summary_lines(kappa: Backtest) -> None:
    lines = summary_lines(kappa)
    s = kappa.summary
    assert lines[0] == f"backtest {kappa.sha256[:12]}: {SUBNET} epochs 2..5 (4 epochs)"
    assert lines[1] == 'change: {"yuma":{"kappa_u16":58982}}'
    assert lines[3] == f"incentive Gini (mean): {s.gini_before:.4f} → {s.gini_after:.4f}"
    assert lines[5].startswith(f"hotkeys changed: {s.hotkeys_changed}; largest gain ")
    assert len(lines) == 6  # same owner cut, nothing unsimulated
    assert s.largest_gain_hotkey is not None and s.largest_loss_hotkey is not None
    names = {s.largest_gain_hotkey: "winner/default", s.largest_loss_hotkey: "loser/default"}
    named = summary_lines(kappa, labels=names)[5]
    assert "largest gain winner/default +" in named and "largest loss loser/default -" in named


def test_the_flow_stores_tracks_and_publishes(
    home: Path, kappa: Backtest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.artifacts
    from mlflow.tracking import MlflowClient

    from taoflow.flows.governance_backtest import backtest_flow
    from taoflow.tasks.track import experiment_name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow 3 refuses its plain file store
    monkeypatch.setenv("TAOFLOW_MLFLOW_URI", uri)
    published: list[dict[str, Any]] = []
    for name in ("create_markdown_artifact", "create_table_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, lambda **kw: published.append(kw))
    artifacts_dir = tmp_path / "mlflow-artifacts"
    monkeypatch.setattr(Settings, "mlflow_artifacts_dir", property(lambda _: artifacts_dir))
    backtests_dir = tmp_path / "backtests"
    monkeypatch.setattr(Settings, "governance_backtests_dir", property(lambda _: backtests_dir))
    result = backtest_flow.fn(
        home=str(home),
        subnet=SUBNET,
        values_json='{"yuma": {"kappa_u16": 58982}}',
        epochs=BACKTESTED,
        proposal_title="Raise kappa",
    )
    assert result.sha256 == kappa.sha256
    assert result.summary == kappa.summary
    assert Path(result.path) == backtests_dir.resolve() / f"{kappa.sha256}.parquet"
    assert Path(result.path).read_bytes() == kappa.report_bytes
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(SUBNET))
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == result.mlflow_run_id
    assert run.data.tags["taoflow.kind"] == "backtest"
    assert run.data.tags["taoflow.backtest_sha256"] == kappa.sha256
    assert run.data.tags["taoflow.proposal.title"] == "Raise kappa"
    assert run.data.params["kappa_u16"] == str(KAPPA_U16)
    assert run.data.params["change"] == kappa.values
    assert run.data.metrics["gini_after"] == kappa.summary.gini_after
    assert run.data.metrics["whatif_rao"] == float(kappa.summary.whatif_rao)
    files = {f.path for f in client.list_artifacts(run.info.run_id, "backtest")}
    assert files == {f"backtest/{kappa.sha256}.parquet", "backtest/deltas.csv"}
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    assert (local / "backtest" / f"{kappa.sha256}.parquet").read_bytes() == kappa.report_bytes
    assert (local / "plots" / "gini_by_epoch.png").read_bytes().startswith(PNG_MAGIC)
    keys = [p["key"] for p in published]
    assert keys == [f"backtest-{kappa.sha256[:12]}", f"backtest-{kappa.sha256[:12]}-deltas"]
    text = published[0]["markdown"]
    assert text.splitlines()[0] == f"# Backtest {kappa.sha256[:12]} · Raise kappa"
    assert f"- {summary_lines(kappa)[0]}" in text.splitlines()
    assert len(published[1]["table"]) == kappa.deltas.num_rows


def test_the_flow_refuses_bad_values_json_before_anything_is_stored(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taoflow.flows.governance_backtest import backtest_flow

    backtests_dir = tmp_path / "backtests"
    monkeypatch.setattr(Settings, "governance_backtests_dir", property(lambda _: backtests_dir))
    for text, message in (
        ("{", "values_json is not valid JSON"),
        ("[1]", "values_json must be a JSON object of setting → value"),
        ('{"tempo_blocks": 9}', "the change sets only tempo_blocks"),
    ):
        with pytest.raises(BacktestError) as caught:
            backtest_flow.fn(home=str(home), subnet=SUBNET, values_json=text, epochs=2)
        assert str(caught.value).startswith(message)
    assert not backtests_dir.exists()
