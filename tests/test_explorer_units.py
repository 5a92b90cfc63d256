"""Small pure parts of the explorer: strides, τ text, labels, verification results and pacing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taoflow.dashboards.explorer import data as data_module
from taoflow.dashboards.explorer.data import Head, Verifier, VerifyResult, _verify_result
from taoflow.dashboards.explorer.pages import HISTORY_POINTS_MAX, Labels, stride
from taoflow.dashboards.explorer.views import short, tao, tao_display


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, 1), (1, 1), (HISTORY_POINTS_MAX, 1), (HISTORY_POINTS_MAX + 1, 2), (5_000, 5)],
)
def test_stride_keeps_a_history_within_the_points_bound(count: int, expected: int) -> None:
    assert stride(count) == expected
    assert len(range(0, count, stride(count))) <= HISTORY_POINTS_MAX


@pytest.mark.parametrize(
    ("rao", "text"),
    [
        (0, "0 τ"),
        (12_345_678_900_000, "12,345.68 τ"),
        (12_345_678_900, "12.3457 τ"),
        (123_456, "0.0001235 τ"),
        (1, "0.000000001 τ"),
        (-2_500_000_000, "-2.5000 τ"),
    ],
)
def test_tao_is_shown_with_sensible_precision(rao: int, text: str) -> None:
    assert tao_display(rao) == text


def test_tao_keeps_the_exact_rao_and_tau_beside_the_rounded_text() -> None:
    html = str(tao(123_456_789_012))
    assert 'data-rao="123456789012"' in html
    assert 'title="123.456789012 τ"' in html


def test_short_hash_escapes_and_keeps_the_full_value() -> None:
    html = str(short("<b>" + "a" * 60))
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert 'data-full="&lt;b&gt;' in html


def test_labels_name_known_accounts_and_shorten_others() -> None:
    labels = Labels({"a" * 64: "alice"})
    assert labels.of("a" * 64) == "alice"
    assert labels.of("b" * 64) == "bbbbbbbb…"
    assert labels.of("") == ""


def test_verify_result_reads_ledger_verify_json_and_its_errors() -> None:
    ok = _verify_result(b'{"ok": true, "batches": 7, "problem": null}', b"", batches=7)
    assert ok == VerifyResult(state="ok", batches=7)
    bad = _verify_result(
        b'{"ok": false, "batches": 7, "problem": "batch 3 hash", "first_bad_batch": 3}',
        b"",
        batches=7,
    )
    assert (bad.state, bad.problem, bad.first_bad_batch) == ("failed", "batch 3 hash", 3)
    broken = _verify_result(b"", b"Traceback\nerror: no ledger at /x\n", batches=7)
    assert (broken.state, broken.problem) == ("error", "error: no ledger at /x")


def test_verifier_runs_one_check_per_head_and_paces_new_heads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    release = threading.Event()

    def fake_run(self: Verifier, head: Head) -> None:
        calls.append(head.head_hash)
        release.wait(5)
        with self._lock:
            self.result = VerifyResult(state="ok", batches=head.batches)
            self._done_for, self._running_for = head.head_hash, None
        self.finished.set()

    monkeypatch.setattr(Verifier, "_run", fake_run)
    clock = [1_000.0]
    monkeypatch.setattr(data_module.time, "monotonic", lambda: clock[0])
    verifier = Verifier(tmp_path)
    first = Head(batches=3, head_hash="a", epochs=1, refreshed_at_s=0.0)
    assert verifier.check(first).state == "verifying"
    verifier.check(first)  # already running: no second check
    release.set()
    assert verifier.finished.wait(5)
    assert verifier.check(first).state == "ok"  # done for this head: nothing new
    second = Head(batches=4, head_hash="b", epochs=2, refreshed_at_s=0.0)
    verifier.check(second)  # the head moved, but within the interval: not yet
    assert calls == ["a"]
    clock[0] += data_module.VERIFY_INTERVAL_S
    verifier.check(second)
    assert verifier.finished.wait(5)
    assert calls == ["a", "b"]


def test_verifier_runs_ledger_verify_on_the_home(demo_home: Path) -> None:
    verifier = Verifier(demo_home)
    head = Head(batches=0, head_hash="any", epochs=0, refreshed_at_s=0.0)
    verifier.check(head)
    assert verifier.finished.wait(300)
    result = verifier.result
    assert (result.state, result.problem) == ("ok", None)
    assert result.batches >= 3


def test_epoch_links_name_each_epochs_prefect_flow_run_and_mlflow_run(demo_home: Path) -> None:
    from mlflow.tracking import MlflowClient

    from taoflow.dashboards.explorer.links import EpochLinks

    uri = f"sqlite:///{demo_home / 'mlflow.db'}"
    links = EpochLinks(
        prefect_ui_url="http://127.0.0.1:4200/",
        mlflow_ui_url="http://127.0.0.1:5000",
        mlflow_tracking_uri=uri,
    )
    links.look_up_now("digits")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("subnet-digits")
    assert experiment is not None
    for epoch in (0, 1):
        (run,) = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`taoflow.epoch` = '{epoch}'"
        )
        flow_run_id = run.data.tags["taoflow.prefect_flow_run_id"]
        prefect, mlflow = links.for_epoch("digits", epoch)
        assert prefect.url == f"http://127.0.0.1:4200/runs/flow-run/{flow_run_id}"
        assert mlflow.url.startswith(
            f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        )
    assert links.for_epoch("digits", 99) == []
    no_ui = EpochLinks(prefect_ui_url=None, mlflow_ui_url=None, mlflow_tracking_uri=uri)
    assert not no_ui.enabled and no_ui.for_epoch("digits", 0) == []


def test_after_a_full_pass_the_verifier_replays_rules_from_the_newest_snapshot(
    tmp_path: Path,
) -> None:
    verifier = Verifier(tmp_path)
    assert "--from-snapshot" not in verifier._command()
    assert verifier._command()[-4:] == ["verify", "--home", str(tmp_path), "--json"]
    verifier._full_pass = True
    assert verifier._command()[-1] == "--from-snapshot"
    from_snapshot = _verify_result(
        b'{"ok": true, "batches": 9, "rules_from_batch": 8}', b"", batches=9
    )
    assert from_snapshot.rules_from_batch == 8


def test_an_all_zero_series_sits_on_a_zero_to_one_axis() -> None:
    from taoflow.dashboards.explorer.charts import Series, line_chart

    svg = str(
        line_chart(
            "stake",
            series=[Series(name="stake", xs=[0, 1, 2], ys=[0, 0, 0])],
            x_label="epoch",
            y_label="τ",
            y_format="tao",
        )
    )
    assert 'data-points="3"' in svg
    assert "-0" not in svg.split("<polyline")[0]  # no negative tick below a zero line


def test_long_histories_are_sampled_at_a_stride_keeping_the_last_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from taoflow.dashboards.explorer import pages, subnet_pages
    from taoflow.dashboards.explorer.app import ExplorerConfig, create_app
    from taoflow.tasks.simulate import SimulationSpec, simulate

    home = tmp_path / "home"
    simulate(home / "ledger", SimulationSpec(subnet="sn", epochs=8, miners=4, validators=2))
    every_third = lambda count, **_: 3  # noqa: E731  (as if the history were 3× the bound)
    monkeypatch.setattr(pages, "stride", every_third)
    monkeypatch.setattr(subnet_pages, "stride", every_third)
    client = TestClient(create_app(ExplorerConfig(home=home)))
    subnet = client.get("/api/subnet/sn").json()
    assert subnet["history"]["emission"]["epoch"] == [0, 3, 6, 7]
    for series in subnet["history"]["incentive"].values():
        assert series["epoch"] == [0, 3, 6, 7]
    miner = next(r["hotkey"] for r in subnet["metagraph"] if r["role"] == "miner")
    neuron = client.get(f"/api/subnet/sn/neuron/{miner}").json()
    assert neuron["history"]["epoch"] == [0, 3, 6, 7]
    assert [r["epoch"] for r in neuron["recent"]] == list(range(7, -1, -1))  # never sampled
    supply = client.get("/api/network").json()["supply"]["history"]["batch_no"]
    last = client.get("/api/network").json()["head"]["batches"]
    assert supply[-1] == last and all(b % 3 == 0 for b in supply[:-1])
