"""A ``LedgerState`` as Arrow tables and back: what a snapshot stores.

Invariants:
- ``state_from_tables(state_to_tables(s)) == s`` for every state at a batch boundary (no epoch
  open: ``check_epochs_complete`` holds after every committed batch); ``state_to_tables`` refuses
  a state with an open epoch.
- Amounts, nonces, blocks and counters are typed integer columns; the growing parts (balances,
  stakes, nonces, neurons, the transaction index) are typed tables read column-wise. Documents
  that are JSON in the ledger itself (subnet configs, proposals, the latest epoch payload per
  subnet, the network entry, revealed weights) stay canonical JSON, one row each.
- Tables are sorted by their keys, so equal states give equal tables and equal hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

import pyarrow as pa

from taoflow.ledger.config import SubnetConfig
from taoflow.ledger.network import NetworkParams
from taoflow.ledger.proposals import record_from_doc, record_to_doc
from taoflow.ledger.schema import canonical_json
from taoflow.ledger.state import LedgerState, Neuron, Subnet
from taoflow.ledger.submissions import SubmissionCommit
from taoflow.ledger.tx_index import TxIndex

_STR = pa.string()
_I64 = pa.int64()
COUNTER_MAPS: Final = (
    "locked",
    "registration_cost_rao",
    "last_epoch",
    "takes_ppm",
    "take_raised_block",
)
"""Small ``str → int`` fields of the state, kept in one ``counters`` table."""
SCALARS: Final = ("issued_rao", "burned_rao", "block")


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in columns])


SNAPSHOT_SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "scalars": _schema(("name", _STR), ("value", _I64)),
    "balances": _schema(("coldkey", _STR), ("amount_rao", _I64)),
    "stakes": _schema(("coldkey", _STR), ("hotkey", _STR), ("amount_rao", _I64)),
    "nonces": _schema(("account", _STR), ("nonce", _I64)),
    "counters": _schema(("map", _STR), ("key", _STR), ("value", _I64)),
    "hotkey_owner": _schema(("hotkey", _STR), ("coldkey", _STR)),
    "neurons": _schema(
        ("subnet", _STR),
        ("uid", _I64),
        ("hotkey", _STR),
        ("coldkey", _STR),
        ("registered_block", _I64),
        ("role", _STR),
        ("validator_settings", _STR),
    ),
    "uid_emission": _schema(("subnet", _STR), ("uid", _I64), ("amount_rao", _I64)),
    "submissions": _schema(
        ("subnet", _STR),
        ("hotkey", _STR),
        ("seq", _I64),
        ("digest", _STR),
        ("uri", _STR),
        ("block", _I64),
        ("tx_id", _STR),
    ),
    "weight_commits": _schema(
        ("subnet", _STR), ("hotkey", _STR), ("commit_hash", _STR), ("block", _I64)
    ),
    "votes": _schema(("proposal_id", _STR), ("coldkey", _STR), ("choice", _I64)),
    "documents": _schema(("kind", _STR), ("key", _STR), ("json", _STR)),
}


def _table(name: str, rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = SNAPSHOT_SCHEMAS[name]
    rows = sorted(rows)
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


def _documents(state: LedgerState) -> list[tuple[str, str, str]]:
    docs = [
        (
            "subnet",
            name,
            canonical_json(
                {
                    "owner_coldkey": s.owner_coldkey,
                    "owner_hotkey": s.owner_hotkey,
                    "created_block": s.created_block,
                    "config": dict(s.config.raw),
                }
            ),
        )
        for name, s in state.subnets.items()
    ]
    docs += [
        ("proposal", pid, canonical_json(record_to_doc(p))) for pid, p in state.proposals.items()
    ]
    docs += [("epoch_payload", k, canonical_json(p)) for k, p in state.last_epoch_payload.items()]
    docs += [
        ("revealed_weights", f"{subnet}\x00{hotkey}", canonical_json(value))
        for (subnet, hotkey), value in state.revealed_weights.items()
    ]
    if state.network is not None:
        docs.append(("network", state.network_id, canonical_json(state.network.to_payload())))
    return docs


def state_to_tables(state: LedgerState) -> dict[str, pa.Table]:
    """The snapshot tables of ``state`` (a state between batches: no epoch open)."""
    if state.open_epochs:
        raise ValueError("a state with an open epoch cannot be snapshotted")
    return {
        "scalars": _table("scalars", [(n, getattr(state, n)) for n in SCALARS]),
        "balances": _table("balances", list(state.balances.items())),
        "stakes": _table("stakes", [(c, h, v) for (c, h), v in state.stakes.items()]),
        "nonces": _table("nonces", list(state.nonces.items())),
        "counters": _table(
            "counters",
            [(m, k, v) for m in COUNTER_MAPS for k, v in getattr(state, m).items()],
        ),
        "hotkey_owner": _table("hotkey_owner", list(state.hotkey_owner.items())),
        "neurons": _table(
            "neurons",
            [
                (
                    s,
                    n.uid,
                    n.hotkey,
                    n.coldkey,
                    n.registered_block,
                    n.role,
                    canonical_json(n.validator_settings),
                )
                for s, uids in state.neurons.items()
                for n in uids.values()
            ],
        ),
        "uid_emission": _table(
            "uid_emission",
            [(s, uid, v) for s, per in state.uid_emission_rao.items() for uid, v in per.items()],
        ),
        "submissions": _table(
            "submissions",
            [
                (c.subnet, c.hotkey, seq, c.digest, c.uri, c.block, c.tx_id)
                for history in state.submission_history.values()
                for seq, c in enumerate(history)
            ],
        ),
        "weight_commits": _table(
            "weight_commits",
            [(s, h, ch, b) for (s, h), (ch, b) in state.weight_commits.items()],
        ),
        "votes": _table("votes", [(p, c, v) for (p, c), v in state.votes.items()]),
        "documents": _table("documents", _documents(state)),
        "tx_index": state.tx_index.to_table(),
    }


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns, strict=True))


def _load_documents(state: LedgerState, table: pa.Table) -> None:
    loaders: dict[str, Callable[[str, Any], None]] = {
        "subnet": lambda key, doc: state.subnets.__setitem__(
            key,
            Subnet(
                name=key,
                owner_coldkey=doc["owner_coldkey"],
                owner_hotkey=doc["owner_hotkey"],
                created_block=doc["created_block"],
                config=SubnetConfig.from_payload(doc["config"]),
            ),
        ),
        "proposal": lambda key, doc: state.proposals.__setitem__(key, record_from_doc(doc)),
        "epoch_payload": lambda key, doc: state.last_epoch_payload.__setitem__(key, doc),
        "revealed_weights": lambda key, doc: state.revealed_weights.__setitem__(
            (key.split("\x00", 1)[0], key.split("\x00", 1)[1]), doc
        ),
    }
    for kind, key, text in _rows(table):
        doc = json.loads(text)
        if kind == "network":
            state.network = NetworkParams.from_payload(doc)
            state.network_id = key
        else:
            loaders[kind](key, doc)


def state_from_tables(tables: Mapping[str, pa.Table]) -> LedgerState:
    """The state that ``state_to_tables`` stored (``ValueError`` if a table is malformed)."""
    for name, schema in SNAPSHOT_SCHEMAS.items():
        if tables[name].schema.remove_metadata() != schema:
            raise ValueError(f"snapshot table {name!r} does not have its schema")
    state = LedgerState(tx_index=TxIndex(tables["tx_index"]))
    for name, value in _rows(tables["scalars"]):
        if name not in SCALARS:
            raise ValueError(f"unknown snapshot scalar {name!r}")
        setattr(state, name, value)
    state.balances = dict(_rows(tables["balances"]))
    state.stakes = {(c, h): v for c, h, v in _rows(tables["stakes"])}
    state.nonces = dict(_rows(tables["nonces"]))
    for m, k, v in _rows(tables["counters"]):
        if m not in COUNTER_MAPS:
            raise ValueError(f"unknown snapshot counter map {m!r}")
        getattr(state, m)[k] = v
    state.hotkey_owner = dict(_rows(tables["hotkey_owner"]))
    for s, uid, hotkey, coldkey, block, role, settings in _rows(tables["neurons"]):
        state.neurons.setdefault(s, {})[uid] = Neuron(
            uid=uid,
            hotkey=hotkey,
            coldkey=coldkey,
            registered_block=block,
            role=role,
            validator_settings=json.loads(settings),
        )
    for s, uid, v in _rows(tables["uid_emission"]):
        state.uid_emission_rao.setdefault(s, {})[uid] = v
    for s, h, _, digest, uri, block, tx_id in _rows(tables["submissions"]):
        commit = SubmissionCommit(s, h, digest, uri, block, tx_id)
        state.submission_history[(s, h)] = (*state.submission_history.get((s, h), ()), commit)
        state.submissions[(s, h)] = commit
    state.weight_commits = {(s, h): (ch, b) for s, h, ch, b in _rows(tables["weight_commits"])}
    state.votes = {(p, c): v for p, c, v in _rows(tables["votes"])}
    _load_documents(state, tables["documents"])
    for subnet in state.subnets:  # created empty, so present even with no row
        state.neurons.setdefault(subnet, {})
    for subnet in state.last_epoch:  # reset by every epoch
        state.uid_emission_rao.setdefault(subnet, {})
    return state
