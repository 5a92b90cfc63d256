"""benchmarks/ledger.py at a tiny scale: real epoch batches, and every issue-10 figure printed.

The benchmark's numbers are not asserted (no timed assertions); what is checked is what it
builds (one epoch entry and exactly the emission rows the ledger's plan owes per epoch batch,
a ledger that verifies) and that its table names every figure with a verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(_ROOT))

from benchmarks.ledger import (  # noqa: E402
    BATCH_ROWS_MIN,
    MINERS,
    VALIDATORS,
    build,
    keypair,
    main,
    population,
)
from taoflow.ledger.schema import EMISSION_KINDS, Kind  # noqa: E402
from taoflow.ledger.store import Ledger  # noqa: E402
from taoflow.ledger.store.ledger import default_writer_key_path  # noqa: E402
from taoflow.ledger.store.writer_key import load_or_create_writer_key  # noqa: E402


def test_epoch_batches_are_real_epochs_of_the_planned_size(tmp_path: Path) -> None:
    pop = population(writer=keypair("writer"), batch_rows=BATCH_ROWS_MIN)
    root = tmp_path / "ledger"
    load_or_create_writer_key(default_writer_key_path(root), new_key=lambda: keypair("writer"))
    ledger = Ledger.open(root, snapshot_every=0)
    result = build(ledger, pop, epochs=2)

    assert len(pop.delegators) == 12  # ceil((1000 - 2 - 192 - 64) / 64)
    assert pop.rows_per_epoch(first=True) == 2 + MINERS + VALIDATORS + 12 * VALIDATORS
    assert pop.rows_per_epoch() == pop.rows_per_epoch(first=True) + VALIDATORS
    assert (result.epochs, result.stake_rows) == (2, 12 * VALIDATORS)
    records = ledger.records()
    assert len(records) == 4
    emission_names = sorted(str(k) for k in EMISSION_KINDS)
    sizes = [pop.rows_per_epoch(first=True), pop.rows_per_epoch()]
    for record, size in zip(records[2:], sizes, strict=True):
        table = ledger.read_table(record)
        kinds = table.column("kind")
        assert table.num_rows == size >= BATCH_ROWS_MIN
        assert pc.sum(pc.equal(kinds, Kind.EPOCH.value)).as_py() == 1
        emission = pc.is_in(kinds, value_set=pa.array(emission_names))
        assert pc.sum(emission).as_py() == size - 1
    assert result.emission_rows == sum(sizes)
    assert Ledger(root).verify().ok


def test_table_names_every_issue_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("--entries", "3000", "--batch-size", str(BATCH_ROWS_MIN)),
            *("--signed", "8", "--dir", str(tmp_path)),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    judged = {
        "append: emission rows via commit",
        "signed user txs: bulk check / raw ed25519",
        "verify --from-snapshot / raw scan (sigs apart)",
        "open + state, fresh Ledger",
        "balance as of epoch 1",
        "supply as of epoch 1",
    }
    lines = out.splitlines()
    for metric in judged:
        matching = [line for line in lines if line.startswith(metric)]
        assert len(matching) == 1, metric
        assert matching[0].split()[-1] in {"PASS", "FAIL"}, matching[0]
    printed = ("open + state, fresh process: peak RSS", "state tables", "history on disk")
    for metric in printed:
        assert sum(metric in line for line in lines) == 1, metric
    assert "rows: real epoch batches" in out
    assert list(tmp_path.iterdir()) == []  # the work directory is removed


def test_age_table_names_every_operation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.ledger_age import BYTE_KINDS, REPEAT
    from benchmarks.ledger_age import main as age_main
    from taoflow.ledger.store.ledger import snapshot_every_batches

    code = age_main(
        ["--young", "1", "--old", "3", "--miners", "4", "--validators", "2", "--dir", str(tmp_path)]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    operations = (
        "gather, fresh Ledger.open",
        "gather, Ledger.shared worker",
        "emit, fresh Ledger.open",
        "emit, commit_epoch / shared",
        "ledger balance, fresh",
        "ledger supply, fresh",
        "metagraph, fresh",
        "open + state, fresh process RSS",
    )
    for name in operations:
        matching = [line for line in lines if line.startswith(name)]
        assert len(matching) == 1, name
        assert matching[0].split()[-1] in {"PASS", "FAIL"}, matching[0]
    for kind in (*BYTE_KINDS, "total"):
        assert sum(line.split()[0] == kind for line in lines if line.strip()) == 1, kind
    # young: 1 epoch (genesis + 1 batch), then 2 · REPEAT emits; the old measurement starts at
    # the young one's offset from the automatic snapshots
    after = 2 + 2 * REPEAT
    every = snapshot_every_batches()
    old_batches = after + ((2 - after) % every if every else 0)
    header = f"young 1 epochs (2 batches), old {old_batches - 1} epochs ({old_batches} batches)"
    assert sum(header in line for line in lines) == 1
    assert list(tmp_path.iterdir()) == []
