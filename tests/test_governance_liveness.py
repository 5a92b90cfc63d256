"""No proposal stalls an epoch: a governance step the ledger refuses is logged, the epoch runs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from taoflow.ledger.errors import BatchRejected
from taoflow.tasks import shells
from taoflow.tasks.governance.boundary import GovernanceCommit
from taoflow.tasks.simulate import SimulationSpec, simulate


def test_a_refused_governance_batch_lets_the_epoch_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ledger_dir = tmp_path / "ledger"
    simulate(ledger_dir, SimulationSpec("digits", epochs=1, miners=3, validators=2, seed=5))

    def refused(ledger: object) -> GovernanceCommit:
        raise BatchRejected("governance/p/tally", "injected")

    monkeypatch.setattr(shells, "commit_governance_on", refused)
    with caplog.at_level(logging.ERROR):
        commit = shells.governance.fn(ledger_dir, "digits")
    assert commit.batch_no is None and commit.entries == ()
    assert "injected" in commit.problem
    assert "the epoch goes on" in caplog.text
    context = shells.gather.fn(ledger_dir, "digits")  # the next stage still runs
    assert context.epoch == 1
