"""The demo's closing lines: what happened, computed from the run, and commands that work.

``closing_lines`` is pure in a ``DemoSummary``: the unit tests give it fabricated summaries.
``demo_summary`` is checked on the simulator's epochs (real consensus and ledger). The
integration test runs ``taoflow demo`` in a subprocess, then runs every command its closing
lines suggest, exactly as printed, and checks that ``epoch run --json`` and ``metagraph --json``
report the same rows for the same epoch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from taoflow.demo import (
    DemoSummary,
    EpochFacts,
    TopMiners,
    closing_lines,
    demo_summary,
    first_miner_commands,
)
from taoflow.ledger.store import Ledger
from taoflow.tasks.simulate import SimulationSpec, simulate

TAO = 10**9
LINES_MAX = 16
DEMO_PASSPHRASE = "taoflow-demo-network"
FOUR_COMMANDS = [
    "taoflow wallet create --name alice",
    "taoflow transfer --wallet owner --dest alice --amount 10",
    "taoflow register --subnet digits --wallet alice",
    "taoflow miner train --subnet digits --out alice-model && taoflow submit "
    "alice-model/model.safetensors alice-model/config.json --subnet digits --wallet alice",
]


def summary(**changes: object) -> DemoSummary:
    base: dict[str, object] = {
        "subnet": "digits",
        "epochs": (
            EpochFacts(epoch=0, miners_rao=0, validators_rao=82 * TAO, permits_before=0),
            EpochFacts(epoch=1, miners_rao=41 * TAO, validators_rao=41 * TAO, permits_before=4),
        ),
        "top": TopMiners(
            epoch=1,
            names=("miner-8", "miner-9", "miner-7"),
            scores=(0.99, 0.99125, 0.9875),
            share=0.9512,
            best_scores=True,
            miners=10,
        ),
        "kappa": 32_767 / 65_535,
        "temperature": 0.1,
        "miners_percent": 41.0,
        "command": "taoflow",
        "home": None,
        "owner_passphrase": DEMO_PASSPHRASE,
    }
    base.update(changes)
    return DemoSummary(**base)  # type: ignore[arg-type]


def test_closing_lines_say_what_happened_and_what_to_try() -> None:
    lines = closing_lines(summary())
    text = "\n".join(lines)
    assert len(lines) <= LINES_MAX
    assert (
        "  epoch 0 paid validators only: no validator held a permit yet (an epoch grants "
        "permits, by stake, for the next one), so consensus ignored every weight; the miners' "
        "41 % went to validators by stake."
    ) in lines
    assert (
        "  epoch 1: 3 of 10 miners (the best mean scores: miner-8 0.990, miner-9 0.991, "
        "miner-7 0.988) took 95 % of the incentive:"
    ) in lines
    assert "softmax (temperature 0.1) of pairwise wins" in text
    assert "κ = 50 % of the stake" in text
    assert any(line.startswith("  taoflow up ") for line in lines)
    assert any(line.startswith("  taoflow metagraph ") for line in lines)
    assert any(line.startswith("  taoflow ledger verify ") for line in lines)
    assert [line.strip() for line in lines[-4:]] == FOUR_COMMANDS
    assert f"the owner wallet's passphrase is {DEMO_PASSPHRASE}" in text
    assert "prefect server start" not in text and "mlflow ui" not in text
    assert "TAOFLOW_HOME" not in text  # the default home needs no export


def test_an_epoch_with_permits_but_no_incentive_gives_the_other_reason() -> None:
    facts = (EpochFacts(epoch=4, miners_rao=0, validators_rao=82 * TAO, permits_before=3),)
    lines = closing_lines(summary(epochs=facts, top=None))
    assert [line for line in lines if "paid validators only" in line] == [
        "  epoch 4 paid validators only: no weight survived consensus, so no miner earned "
        "incentive; the miners' 41 % went to validators by stake."
    ]
    assert not any("took" in line for line in lines)


def test_a_run_where_every_epoch_paid_miners_explains_only_the_incentive() -> None:
    facts = (EpochFacts(epoch=5, miners_rao=41 * TAO, validators_rao=41 * TAO, permits_before=4),)
    top = TopMiners(
        epoch=5, names=("a", "b"), scores=(0.5, None), share=0.7, best_scores=False, miners=2
    )
    lines = closing_lines(summary(epochs=facts, top=top))
    assert not any("paid validators only" in line for line in lines)
    assert "  epoch 5: 2 of 2 miners (mean scores: a 0.500, b) took 70 % of the incentive:" in lines


def test_nothing_to_explain_leaves_out_the_heading() -> None:
    lines = closing_lines(summary(epochs=(), top=None))
    assert "What happened" not in lines and "Try next" in lines


def test_a_home_elsewhere_is_exported_quoted_and_the_command_is_as_called() -> None:
    lines = closing_lines(
        summary(home=Path("/tmp/my demo"), command=".venv/bin/taoflow", owner_passphrase=None)
    )
    assert "  export TAOFLOW_HOME='/tmp/my demo'" in lines
    assert any(line.startswith("  .venv/bin/taoflow up ") for line in lines)
    assert "the owner wallet uses your TAOFLOW_WALLET_PASSPHRASE" in "\n".join(lines)
    assert lines[-1].strip().startswith(".venv/bin/taoflow miner train --subnet digits")


def test_a_first_miner_is_four_commands() -> None:
    assert first_miner_commands("taoflow", subnet="digits") == FOUR_COMMANDS


def test_demo_summary_reads_the_epochs_from_the_ledger(tmp_path: Path) -> None:
    spec = SimulationSpec(subnet="sim", epochs=3, miners=6, validators=3, seed=7)
    simulate(tmp_path / "ledger", spec)
    ledger = Ledger.open(tmp_path / "ledger")
    facts = demo_summary(ledger, subnet="sim", epochs=[0, 1, 2], home=tmp_path, labels={})
    first = facts.epochs[0]
    assert (first.epoch, first.miners_rao, first.permits_before) == (0, 0, 0)
    assert first.validators_rao > 0
    assert [f.permits_before for f in facts.epochs[1:]] == [3, 3]
    assert all(f.miners_rao > 0 for f in facts.epochs[1:])
    uids = ledger.epoch_records("sim", 2, names=("uids",))["uids"].to_pydict()
    incentive = uids["incentive"][3:]  # uids 0-2 are the validators
    assert facts.top is not None and facts.top.epoch == 2 and facts.top.miners == 6
    assert facts.top.share == pytest.approx(sum(sorted(incentive)[-3:]) / sum(incentive))
    assert facts.home == tmp_path and facts.temperature > 0
    assert facts.kappa == pytest.approx(0.5, abs=1e-4)


# --- integration: the real demo, then its suggestions as printed -----------------------------

DEMO_EPOCHS = 2
TIMEOUT_S = 600
SERVER_STARTUP_TIMEOUT_S = "120"


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("TAOFLOW_HOME", None)
    env.pop("TAOFLOW_WALLET_PASSPHRASE", None)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = SERVER_STARTUP_TIMEOUT_S
    return env


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.integration
def test_the_demos_suggestions_work_as_printed(tmp_path: Path) -> None:
    home = tmp_path / "demo home"
    env = clean_env(home)
    demo = run(
        [
            sys.executable,
            "-m",
            "taoflow.cli",
            "demo",
            "--epochs",
            str(DEMO_EPOCHS),
            "--home",
            str(home),
        ],
        cwd=tmp_path,
        env=env,
    )
    lines = demo.stdout.splitlines()
    start = lines.index("Try next")
    tail = lines[start + 1 :]
    assert "paid validators only" in demo.stdout and "of the incentive" in demo.stdout
    export, *suggested = tail
    assert export.strip() == f"export TAOFLOW_HOME={shlex.quote(str(home))}"
    first = next(i for i, line in enumerate(suggested) if "A first miner" in line)
    views, four = suggested[:first], [line.strip() for line in suggested[first + 1 :]]
    commands = [re.split(r"\s{2,}", view.strip())[0] for view in views]
    assert [c.split()[-1] for c in commands] == ["up", "metagraph", "verify"]
    assert len(four) == 4
    # The demo's wallets use the published passphrase; the new wallet takes it too, so that
    # nothing prompts here (a person types theirs at the prompt).
    script = "\n".join(["set -e", export.strip(), *four, *commands[1:]])
    env_cmds = {**env, "TAOFLOW_WALLET_PASSPHRASE": DEMO_PASSPHRASE}
    out = run(["bash", "-c", script], cwd=tmp_path, env=env_cmds)
    assert "registered alice/default on 'digits'" in out.stdout
    assert "submitted" in out.stdout and "ok:" in out.stdout
    run(["bash", "-c", f"{export.strip()}\n{commands[0]} --help"], cwd=tmp_path, env=env)

    taoflow = [sys.executable, "-m", "taoflow.cli"]
    epoch = json.loads(
        run([*taoflow, "epoch", "run", "--json", "--home", str(home)], cwd=tmp_path, env=env).stdout
    )
    assert epoch["epoch"] == DEMO_EPOCHS
    graph = json.loads(
        run([*taoflow, "metagraph", "--json", "--home", str(home)], cwd=tmp_path, env=env).stdout
    )
    assert [(r["uid"], r["stake_rao"]) for r in graph] == [
        (r["uid"], r["stake_rao"]) for r in epoch["metagraph"]
    ]
    assert graph == epoch["metagraph"]
    alice = graph[-1]
    assert alice["uid"] == 14 and alice["score"] is not None and alice["epoch"] == DEMO_EPOCHS
    before = json.loads(
        run(
            [*taoflow, "metagraph", "--json", "--epoch", str(DEMO_EPOCHS - 1), "--home", str(home)],
            cwd=tmp_path,
            env=env,
        ).stdout
    )
    assert [r["uid"] for r in before] == list(range(alice["uid"]))  # alice came after it
    assert [r["stake_rao"] for r in before] != [r["stake_rao"] for r in graph[: len(before)]]
