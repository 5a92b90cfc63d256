"""The subnet and neuron pages as plain data (see ``pages`` for the invariants they share).

The metagraph and the submissions are the CLI's own (``taoflow.queries``); histories are SQL
over every committed ``uids`` record and emission row (``ExplorerData``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from typing import Any, Final

from taoflow.dashboards.explorer.data import ExplorerData
from taoflow.dashboards.explorer.pages import (
    HISTORY_POINTS_MAX,
    NEURON_EPOCHS_SHOWN_MAX,
    SUBMISSIONS_SHOWN_MAX,
    TOP_SERIES_MAX,
    Labels,
    NotFound,
    stride,
)

SORT_COLUMNS: Final = (
    "uid",
    "hotkey",
    "role",
    "stake_rao",
    "score",
    "validator_trust",
    "consensus",
    "incentive",
    "dividends",
    "emission_rao",
)
"""Columns a metagraph can be sorted by (anything else is a 400)."""

EMISSION_HISTORY_SQL: Final = """
SELECT epoch, owner_rao, miners_rao, validators_rao, delegators_rao FROM epoch_emission
WHERE subnet = $subnet AND (epoch % $stride = 0 OR epoch = $last)
ORDER BY epoch
"""

TOP_HOTKEYS_SQL: Final = """
-- the hotkeys with the most of ``column`` summed over the subnet's history
SELECT hotkey FROM hotkey_totals WHERE subnet = $subnet AND {column} > 0
ORDER BY {column} DESC, hotkey LIMIT $top
"""

SERIES_SQL: Final = """
SELECT hotkey, epoch, incentive, dividends FROM uids_history
WHERE subnet = $subnet AND list_contains($hotkeys, hotkey)
  AND (epoch % $stride = 0 OR epoch = $last)
ORDER BY hotkey, epoch
"""

REGISTRATIONS_SQL: Final = """
SELECT batch_no, burned_rao FROM registrations WHERE subnet = $subnet ORDER BY batch_no, row_no
"""

NEURON_HISTORY_SQL: Final = """
SELECT epoch, uid, score, incentive, dividends, validator_trust, emission_rao, stake_rao, error
FROM uids_history WHERE subnet = $subnet AND hotkey = $hotkey
ORDER BY epoch
"""
EXPLAINED_CACHED_MAX: Final = 256


def _last_epoch(data: ExplorerData, subnet: str) -> int:
    return int(data.state().last_epoch.get(subnet, -1))


def _check_subnet(data: ExplorerData, subnet: str) -> None:
    if subnet not in data.state().subnets:
        raise NotFound(f"no subnet {subnet!r} in this ledger")


def _top_series(data: ExplorerData, subnet: str) -> dict[str, dict[str, Any]]:
    """Incentive and dividends of the top hotkeys by each, in one scan of the history:
    {"incentive": {hotkey: {"epoch": [...], "value": [...]}}, "dividends": {...}}."""
    last = _last_epoch(data, subnet)
    top = {
        column: [
            r["hotkey"]
            for r in data.query(
                TOP_HOTKEYS_SQL.format(column=column), {"subnet": subnet, "top": TOP_SERIES_MAX}
            )
        ]
        for column in ("incentive", "dividends")
    }
    out: dict[str, dict[str, Any]] = {
        column: {h: {"epoch": [], "value": []} for h in hotkeys} for column, hotkeys in top.items()
    }
    wanted = sorted(set(top["incentive"]) | set(top["dividends"]))
    if not wanted:
        return out
    rows = data.columns(
        SERIES_SQL, {"subnet": subnet, "hotkeys": wanted, "stride": stride(last + 1), "last": last}
    )
    for column, series in out.items():
        for hotkey, epoch, value in zip(rows["hotkey"], rows["epoch"], rows[column], strict=True):
            if hotkey in series:
                series[hotkey]["epoch"].append(int(epoch))
                series[hotkey]["value"].append(float(value))
    return out


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """``value`` under ``prefix``, nested settings (dataclasses, mappings, (name, value) pairs)
    spelled out one per key: ``yuma.kappa_u16``, ``emission_split_ppm.owner``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value)
    ):
        value = dict(value)
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}", inner, out)
    elif isinstance(value, tuple):
        out[prefix] = list(value)
    else:
        out[prefix] = value


def _hyperparameters(data: ExplorerData, subnet: str) -> dict[str, Any]:
    config = data.state().subnets[subnet].config
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name != "raw":
            _flat(f.name, getattr(config, f.name), out)
    return out


def metagraph_rows(
    data: ExplorerData, subnet: str, labels: Labels, *, sort: str, descending: bool
) -> list[dict[str, Any]]:
    """``taoflow metagraph``'s rows (names added), sorted by ``sort`` (one of SORT_COLUMNS)."""
    from taoflow.queries import metagraph

    rows = metagraph(data.ledger, subnet=subnet)
    for row in rows:
        row["label"] = labels.of(row["hotkey"])

    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = row["label"] if sort == "hotkey" else row[sort]
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return (1 if missing else 0, value if not missing else 0)

    ordered = sorted(rows, key=key, reverse=descending)
    if descending:  # missing values last either way
        ordered = [r for r in ordered if key(r)[0] == 0] + [r for r in ordered if key(r)[0] == 1]
    return ordered


def submissions(data: ExplorerData, subnet: str, labels: Labels) -> list[dict[str, Any]]:
    """Every stored commit with its state and reason (newest first, bounded)."""
    from taoflow.queries import submission_states

    rows = submission_states(data.ledger, subnet=subnet)
    rows.sort(key=lambda r: (-int(r["block"]), int(r["uid"])))
    for row in rows:
        row["label"] = labels.of(row["hotkey"])
    return rows[:SUBMISSIONS_SHOWN_MAX]


def subnet_page(
    data: ExplorerData, subnet: str, labels: Labels, *, sort: str, descending: bool
) -> dict[str, Any]:
    _check_subnet(data, subnet)
    state = data.state()
    last = _last_epoch(data, subnet)
    params = {"subnet": subnet, "stride": stride(last + 1), "last": last}
    emission = data.columns(EMISSION_HISTORY_SQL, params)
    registrations = data.columns(REGISTRATIONS_SQL, {"subnet": subnet})
    info = state.subnets[subnet]
    return {
        "name": subnet,
        "owner": info.owner_coldkey,
        "owner_label": labels.of(info.owner_coldkey),
        "last_epoch": None if last < 0 else last,
        "registration_cost_rao": state.registration_cost(subnet),
        "metagraph": metagraph_rows(data, subnet, labels, sort=sort, descending=descending),
        "sort": sort,
        "order": "desc" if descending else "asc",
        "history": {
            "emission": {
                k: [int(v or 0) if k != "epoch" else v for v in vs] for k, vs in emission.items()
            },
            **_top_series(data, subnet),
            "registration_cost": {
                "batch_no": [int(b) for b in registrations["batch_no"]],
                "burned_rao": [int(v) for v in registrations["burned_rao"]],
            },
        },
        "hyperparameters": _hyperparameters(data, subnet),
        "submissions": submissions(data, subnet, labels),
        "history_points_max": HISTORY_POINTS_MAX,
    }


class ExplainCache:
    """Explanations already built (an epoch's explanation never changes once committed: the
    key holds the hash of the batch that committed it); at most ``EXPLAINED_CACHED_MAX``."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self._items: OrderedDict[tuple[str, str, int, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data: ExplorerData, subnet: str, hotkey: str, epoch: int) -> dict[str, Any]:
        batch_no = data.batch_of_epoch(subnet, epoch)
        key = (subnet, hotkey, epoch, data.record(batch_no).batch_hash if batch_no else "")
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = _explain(data, subnet, hotkey, epoch, labels=self.labels)
        with self._lock:
            self._items[key] = value
            while len(self._items) > EXPLAINED_CACHED_MAX:
                self._items.popitem(last=False)
        return value


def _explain(
    data: ExplorerData, subnet: str, hotkey: str, epoch: int, *, labels: Labels
) -> dict[str, Any]:
    from taoflow.tasks.audit.explain import explain
    from taoflow.tasks.audit.history import HistoryError

    try:
        explained = explain(
            data.ledger, subnet=subnet, hotkey=hotkey, epoch=epoch, labels=labels.names
        )
        return explained.to_dict()
    except HistoryError as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else "cannot explain this epoch"}


def _neuron_history(
    data: ExplorerData, subnet: str, hotkey: str
) -> tuple[dict[str, list[Any]], list[dict[str, Any]], set[int]]:
    """One scan of the hotkey's records: the history sampled for charts (a stride, last point
    kept), the newest ``NEURON_EPOCHS_SHOWN_MAX`` epochs, and every epoch it was recorded in."""
    rows = data.columns(NEURON_HISTORY_SQL, {"subnet": subnet, "hotkey": hotkey})
    epochs = [int(e) for e in rows["epoch"]]
    step = stride(len(epochs))
    keep = [i for i in range(len(epochs)) if i % step == 0 or i == len(epochs) - 1]
    history = {name: [_plain(values[i]) for i in keep] for name, values in rows.items()}
    newest = range(len(epochs) - 1, max(-1, len(epochs) - 1 - NEURON_EPOCHS_SHOWN_MAX), -1)
    recent = [{name: _plain(values[i]) for name, values in rows.items()} for i in newest]
    return history, recent, set(epochs)


def neuron_page(
    data: ExplorerData,
    subnet: str,
    hotkey: str,
    labels: Labels,
    *,
    epoch: int | None,
    explained: ExplainCache,
) -> dict[str, Any]:
    """One hotkey on one subnet: identity, histories, submissions and the explain breakdown."""
    _check_subnet(data, subnet)
    state = data.state()
    history, recent, recorded = _neuron_history(data, subnet, hotkey)
    uid = state.uid_of(subnet=subnet, hotkey=hotkey)
    if uid is None and not recorded:
        raise NotFound(f"hotkey {hotkey[:16]}… has never been a neuron of subnet {subnet!r}")
    damaged = {p.epoch: p.problem for p in data.problems if p.subnet == subnet}
    if epoch is not None and epoch in damaged:
        raise NotFound(f"epoch {epoch} of {subnet!r}: {damaged[epoch]}")
    if epoch is not None and epoch not in recorded:
        raise NotFound(f"hotkey {hotkey[:16]}… has no record in epoch {epoch} of {subnet!r}")
    chosen = epoch if epoch is not None else (max(recorded) if recorded else None)
    neuron = state.neurons.get(subnet, {}).get(uid) if uid is not None else None
    coldkey = neuron.coldkey if neuron is not None else state.hotkey_owner.get(hotkey, "")
    return {
        "subnet": subnet,
        "hotkey": hotkey,
        "label": labels.of(hotkey),
        "uid": uid,
        "coldkey": coldkey,
        "coldkey_label": labels.of(coldkey),
        "role": neuron.role if neuron is not None else None,
        "registered_block": neuron.registered_block if neuron is not None else None,
        "stake_rao": state.hotkey_stake(hotkey),
        "take_ppm": state.take_ppm(hotkey),
        "history": history,
        "recent": recent,
        "submissions": [r for r in submissions(data, subnet, labels) if r["hotkey"] == hotkey],
        "explain_epoch": chosen,
        "explain": None if chosen is None else explained.get(data, subnet, hotkey, chosen),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
