"""Backtests of governance proposals: what a subnet change would have done to recent epochs.

A parameter-change proposal names the sha256 of one report: the change recomputed over the last
``epochs`` committed epochs of the subnet by the audit what-if (``tasks.audit.whatif.whatif``),
beside what the ledger stored — per-hotkey deltas, the incentive Gini and the validator-trust
spread, both ways. The report is content-addressed: voters, the explorer and the CLI find it as
``<sha256>.parquet`` under ``Settings.governance_backtests_dir`` and check it against the hash.

Invariants:
- ``overrides_of_change`` maps a change's settings to what-if overrides: the ``yuma`` keys the
  epoch reads (``whatif.YUMA_FIELDS``, raw chain units, type-checked and within
  ``YumaParams``'s own bounds) and ``emission_split_ppm`` (the ledger's split rule, in
  ``SPLIT_NAMES`` order). Every other subnet setting is listed as not simulated; a change with
  nothing simulated has no backtest (``None``, and ``run_backtest`` refuses it). An unknown
  setting, a ``yuma`` key that is no Yuma parameter or a value of the wrong type is a one-line
  ``BacktestError``.
- The report is ONE Parquet file: the per-hotkey delta table (``whatif.delta_table``) with the
  change and the summary as canonical JSON in the schema's key/value metadata. Its bytes are a
  function of the ledger and the change only: fixed writer options and compression, no clock,
  no path (pyarrow's own ``created_by`` line is the only version text). ``sha256`` is the hex
  sha256 of those bytes.
- Stored reports are written atomically (temporary file, fsync, linked into place, directory
  fsync) and never over a different file. A path is built only from a 64-lowercase-hex sha256,
  through ``ledger.names.path_under``. Loading reads at most ``REPORT_BYTES_MAX`` bytes and
  re-hashes them: ``BacktestMismatch`` when they differ from the name, ``BacktestError`` when
  the report is absent or malformed.
- Read-only on the ledger; every refusal is one line. MLflow is imported only by
  ``track_backtest``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from taoflow.ledger.config import OBJECT_KEYS_MAX, SubnetConfig
from taoflow.ledger.names import PathOutsideRoot, path_under
from taoflow.ledger.payouts import tao_text
from taoflow.ledger.schema import RAO_PER_TAO, canonical_json
from taoflow.ledger.store import Ledger
from taoflow.tasks.audit.history import HistoryError, committed_epochs
from taoflow.tasks.audit.whatif import (
    YUMA_FIELDS,
    WhatIfError,
    WhatIfParams,
    WhatIfReport,
    delta_table,
    whatif,
)
from taoflow.tasks.consensus.params import InvalidHyperparameter, YumaParams

BACKTEST_EPOCHS_DEFAULT: Final = 20
"""Epochs a backtest covers unless asked otherwise (the last ones committed)."""
BACKTEST_EPOCHS_MAX: Final = 1_000
"""Most epochs one backtest may cover."""
REPORT_BYTES_MAX: Final = 64 * 1024 * 1024
"""Largest report file read back."""
VALUES_CHARS_MAX: Final = 16_000
"""Longest change (its canonical JSON) a backtest accepts."""
SETTINGS_MAX: Final = 64
"""Most settings in one change."""
REPORT_FORMAT: Final = "1"
META_FORMAT: Final = b"taoflow.backtest.format"
META_CHANGE: Final = b"taoflow.backtest.change"
META_SUMMARY: Final = b"taoflow.backtest.summary"
PARQUET_COMPRESSION: Final = "zstd"
PARQUET_COMPRESSION_LEVEL: Final = 3
PARQUET_ROW_GROUP_ROWS: Final = 65_536
YUMA_SETTING: Final = "yuma"
SPLIT_SETTING: Final = "emission_split_ppm"
SUBNET_SETTINGS: Final = frozenset(f.name for f in dataclasses.fields(SubnetConfig)) - {"raw"}
YUMA_PARAMS: Final = frozenset(f.name for f in dataclasses.fields(YumaParams))
SHA_SHOWN_CHARS: Final = 12
HOTKEY_SHOWN_CHARS: Final = 10
CHANGE_SHOWN_CHARS: Final = 200
MARKDOWN_ROWS_MAX: Final = 20
"""Hotkeys listed in the markdown report (the largest deltas)."""
PARAM_CHARS_MAX: Final = 500
"""Longest MLflow param or tag value written (the change's JSON is cut with an ellipsis)."""
KIND_TAG: Final = "taoflow.kind"
KIND: Final = "backtest"
SHA_TAG: Final = "taoflow.backtest_sha256"
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_DELTA_SCHEMA: Final = pa.schema(
    [
        ("hotkey", pa.string()),
        ("uid", pa.int32()),
        ("role", pa.string()),
        ("baseline_rao", pa.int64()),
        ("whatif_rao", pa.int64()),
        ("delta_rao", pa.int64()),
        ("delta_pct", pa.float64()),
    ]
)
"""The columns of ``whatif.delta_table`` (checked when a report is read)."""


class BacktestError(ValueError):
    """A backtest that cannot be run, stored or found (one line, for the user)."""


class BacktestMismatch(ValueError):
    """A report whose bytes or content do not match what names it (one line)."""


# ---- the change ------------------------------------------------------------------------------


def canonical_values(values: Mapping[str, Any]) -> str:
    """The change as canonical JSON (sorted keys, no whitespace), bounded in size."""
    if not isinstance(values, Mapping):
        raise BacktestError("a change must be an object of setting → value")
    if len(values) > SETTINGS_MAX:
        raise BacktestError(f"a change sets at most {SETTINGS_MAX} settings")
    if not all(isinstance(name, str) for name in values):
        raise BacktestError("a change's setting names must be text")
    try:
        text = json.dumps(
            dict(values), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )  # ledger.schema.canonical_json, with NaN and infinity refused
    except (TypeError, ValueError):
        raise BacktestError("a change's values must be JSON (numbers, text, objects)") from None
    if len(text) > VALUES_CHARS_MAX:
        raise BacktestError(f"a change is longer than {VALUES_CHARS_MAX} characters of JSON")
    return text


def values_from_json(text: str) -> dict[str, Any]:
    """A change given as JSON text (the flow's parameter), checked as ``canonical_values``."""
    if not isinstance(text, str) or len(text) > VALUES_CHARS_MAX:
        raise BacktestError(f"values_json must be JSON text of at most {VALUES_CHARS_MAX} chars")
    try:
        values = json.loads(text)
    except ValueError:
        raise BacktestError("values_json is not valid JSON") from None
    if not isinstance(values, dict):
        raise BacktestError("values_json must be a JSON object of setting → value")
    canonical_values(values)
    return values


def _yuma_value(key: str, value: Any) -> int | bool:
    kind = YUMA_FIELDS[key]
    is_bool = isinstance(value, bool)
    if kind is bool and not is_bool:
        raise BacktestError(f"yuma.{key} must be true or false")
    if kind is int and (is_bool or not isinstance(value, int)):
        raise BacktestError(f"yuma.{key} must be an integer")
    return bool(value) if kind is bool else int(value)


def _yuma_items(value: Any) -> tuple[list[tuple[str, int | bool]], list[str]]:
    """(simulated (field, value) sorted, not-simulated names) of a change's ``yuma`` object."""
    if not isinstance(value, Mapping) or len(value) > OBJECT_KEYS_MAX:
        raise BacktestError(f"yuma must be an object of at most {OBJECT_KEYS_MAX} keys")
    simulated: list[tuple[str, int | bool]] = []
    skipped: list[str] = []
    for key in sorted(value, key=str):
        if not isinstance(key, str) or key not in YUMA_PARAMS:
            raise BacktestError(f"unknown yuma setting {str(key)[:40]!r}")
        if key in YUMA_FIELDS:
            simulated.append((key, _yuma_value(key, value[key])))
        else:
            skipped.append(f"{YUMA_SETTING}.{key}")
    alone: dict[str, Any] = {k: v for k, v in simulated if not k.startswith("alpha_")}
    try:  # each field within its own bounds; combinations are checked per epoch by whatif
        YumaParams(**alone)
    except InvalidHyperparameter as exc:
        raise BacktestError(f"yuma: {exc}") from None
    return simulated, skipped


def _split(value: Any) -> tuple[tuple[str, int], ...]:
    try:
        config = SubnetConfig.from_payload({"tempo_blocks": 1, SPLIT_SETTING: value})
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    return config.emission_split_ppm


@dataclass(frozen=True)
class _Plan:
    overrides: WhatIfParams
    not_simulated: tuple[str, ...]


def _plan(values: Mapping[str, Any]) -> _Plan:
    canonical_values(values)
    yuma: list[tuple[str, int | bool]] = []
    split: tuple[tuple[str, int], ...] | None = None
    skipped: list[str] = []
    for name in sorted(values):
        if name not in SUBNET_SETTINGS:
            raise BacktestError(f"unknown subnet setting {name[:40]!r}")
        if name == YUMA_SETTING:
            yuma, skipped_keys = _yuma_items(values[name])
            skipped.extend(skipped_keys)
        elif name == SPLIT_SETTING:
            split = _split(values[name])
        else:
            skipped.append(name)
    return _Plan(WhatIfParams(yuma=tuple(yuma), split_ppm=split), tuple(skipped))


def overrides_of_change(values: Mapping[str, Any]) -> WhatIfParams | None:
    """The what-if overrides of a subnet change (``SubnetChange.values`` as a mapping), or
    ``None`` when it touches nothing a what-if recomputes (tempo, registration cost, …)."""
    overrides = _plan(values).overrides
    return None if overrides.is_empty else overrides


def not_simulated(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The change's settings a backtest does not recompute (``yuma.<key>`` for a Yuma key)."""
    return _plan(values).not_simulated


# ---- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestSummary:
    """A backtest's numbers: totals in rao, means over epochs, the largest movers."""

    epochs: int
    baseline_rao: int
    """Rao the epochs paid as stored (the owner's cut included)."""
    whatif_rao: int
    """Rao the epochs would have paid under the change."""
    baseline_owner_rao: int
    whatif_owner_rao: int
    gini_before: float
    """Mean over epochs of the Gini of the miners' incentive, as stored."""
    gini_after: float
    trust_spread_before: float
    """Mean over epochs of max − min validator trust of the permitted validators, as stored."""
    trust_spread_after: float
    hotkeys_changed: int
    """Hotkeys whose emission over the range differs."""
    largest_gain_hotkey: str | None
    largest_gain_rao: int
    """Rao the largest gainer would have gained (0 when none gains)."""
    largest_loss_hotkey: str | None
    largest_loss_rao: int
    """Rao the largest loser would have lost, as a non-negative amount (0 when none loses)."""
    not_simulated: tuple[str, ...] = ()
    """Settings of the change the backtest does not recompute."""

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "not_simulated": list(self.not_simulated)}

    @classmethod
    def from_dict(cls, data: Any) -> BacktestSummary:
        """The summary of a report's metadata, or one-line ``BacktestError``."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise BacktestError("backtest summary has other fields than a report's")
        for name in names:
            if not _summary_value_ok(name, data[name]):
                raise BacktestError(f"backtest summary field {name} has the wrong type")
        return cls(**{**data, "not_simulated": tuple(data["not_simulated"])})


def _summary_value_ok(name: str, value: Any) -> bool:
    if name.endswith("_hotkey"):
        return value is None or isinstance(value, str)
    if name == "not_simulated":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if name.startswith(("gini_", "trust_spread_")):
        return isinstance(value, float)
    return isinstance(value, int) and not isinstance(value, bool)


def summary_of(report: WhatIfReport, *, skipped: tuple[str, ...] = ()) -> BacktestSummary:
    """The backtest summary of a what-if report (its own totals and means)."""
    s = report.summary()
    gains = [h for h in report.hotkeys if h.delta_rao > 0]  # largest |delta| first
    losses = [h for h in report.hotkeys if h.delta_rao < 0]
    return BacktestSummary(
        epochs=int(s["epochs"]),
        baseline_rao=int(s["baseline_rao"]),
        whatif_rao=int(s["whatif_rao"]),
        baseline_owner_rao=int(s["baseline_owner_rao"]),
        whatif_owner_rao=int(s["whatif_owner_rao"]),
        gini_before=float(s["baseline_gini_mean"]),
        gini_after=float(s["whatif_gini_mean"]),
        trust_spread_before=float(s["baseline_vt_spread_mean"]),
        trust_spread_after=float(s["whatif_vt_spread_mean"]),
        hotkeys_changed=len(gains) + len(losses),
        largest_gain_hotkey=gains[0].hotkey if gains else None,
        largest_gain_rao=gains[0].delta_rao if gains else 0,
        largest_loss_hotkey=losses[0].hotkey if losses else None,
        largest_loss_rao=-losses[0].delta_rao if losses else 0,
        not_simulated=skipped,
    )


@dataclass(frozen=True)
class Backtest:
    """One backtest report: what it covers, its numbers, its table and its exact bytes."""

    subnet: str
    first_epoch: int
    last_epoch: int
    values: str
    """The change, canonical JSON (``canonical_values``)."""
    summary: BacktestSummary
    deltas: pa.Table = field(compare=False, repr=False)
    """Per hotkey: hotkey, uid, role, baseline_rao, whatif_rao, delta_rao, delta_pct."""
    report_bytes: bytes = field(repr=False)
    """The report file (Parquet)."""
    sha256: str
    """Hex sha256 of ``report_bytes``: what a proposal names."""
    whatif: WhatIfReport | None = field(default=None, compare=False, repr=False)
    """The what-if it was computed from (absent on a report loaded from a file)."""

    @property
    def change(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.values)
        return parsed


def _change_meta(*, subnet: str, first: int, last: int, values_json: str) -> dict[str, Any]:
    return {
        "subnet": subnet,
        "first_epoch": first,
        "last_epoch": last,
        "values": json.loads(values_json),
    }


def report_bytes_of(
    deltas: pa.Table, *, change: Mapping[str, Any], summary: BacktestSummary
) -> bytes:
    """The report file: ``deltas`` as one Parquet file with the change and summary as metadata
    (fixed writer options, so equal input gives equal bytes)."""
    metadata = {
        META_FORMAT: REPORT_FORMAT.encode(),
        META_CHANGE: canonical_json(change).encode(),
        META_SUMMARY: canonical_json(summary.to_dict()).encode(),
    }
    sink = pa.BufferOutputStream()
    pq.write_table(
        deltas.replace_schema_metadata(metadata),
        sink,
        row_group_size=PARQUET_ROW_GROUP_ROWS,
        version="2.6",
        use_dictionary=False,
        compression=PARQUET_COMPRESSION,
        compression_level=PARQUET_COMPRESSION_LEVEL,
        write_statistics=False,
        data_page_version="1.0",
        write_page_index=False,
        write_page_checksum=False,
        store_schema=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def run_backtest(
    ledger: Ledger,
    *,
    subnet: str,
    values: Mapping[str, Any],
    epochs: int = BACKTEST_EPOCHS_DEFAULT,
) -> Backtest:
    """The change ``values`` recomputed over the last ``epochs`` committed epochs of ``subnet``
    (fewer if it has fewer); one-line ``BacktestError`` if it cannot be backtested."""
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise BacktestError("backtest epochs must be an integer")
    if not 1 <= epochs <= BACKTEST_EPOCHS_MAX:
        raise BacktestError(f"backtest epochs must be in [1, {BACKTEST_EPOCHS_MAX}], got {epochs}")
    values_json = canonical_values(values)
    plan = _plan(values)
    if plan.overrides.is_empty:
        raise BacktestError(
            f"the change sets only {', '.join(sorted(values)) or 'nothing'}: a backtest "
            f"recomputes {YUMA_SETTING} and {SPLIT_SETTING} changes only"
        )
    try:
        committed = committed_epochs(ledger, subnet=subnet)
        if committed == 0:
            raise BacktestError(f"subnet {subnet!r} has no committed epoch to backtest")
        first, last = max(0, committed - epochs), committed - 1
        report = whatif(ledger, subnet=subnet, first=first, last=last, overrides=plan.overrides)
    except (HistoryError, WhatIfError) as exc:
        raise BacktestError(str(exc).replace("--set", "change")) from None
    summary = summary_of(report, skipped=plan.not_simulated)
    deltas = delta_table(report)
    change = _change_meta(subnet=subnet, first=first, last=last, values_json=values_json)
    data = report_bytes_of(deltas, change=change, summary=summary)
    return Backtest(
        subnet=subnet,
        first_epoch=first,
        last_epoch=last,
        values=values_json,
        summary=summary,
        deltas=deltas,
        report_bytes=data,
        sha256=hashlib.sha256(data).hexdigest(),
        whatif=report,
    )


def _meta_json(metadata: Mapping[bytes, bytes], key: bytes, *, sha: str) -> Any:
    raw = metadata.get(key)
    try:
        return json.loads(raw.decode("utf-8")) if raw is not None else None
    except ValueError:
        raise BacktestError(f"backtest report {sha[:SHA_SHOWN_CHARS]} has bad metadata") from None


def _parsed_change(change: Any, *, sha: str) -> tuple[str, int, int, str]:
    ok = (
        isinstance(change, dict)
        and sorted(change) == ["first_epoch", "last_epoch", "subnet", "values"]
        and isinstance(change["subnet"], str)
        and all(
            isinstance(change[k], int) and not isinstance(change[k], bool)
            for k in ("first_epoch", "last_epoch")
        )
        and isinstance(change["values"], dict)
    )
    if not ok:
        raise BacktestError(f"backtest report {sha[:SHA_SHOWN_CHARS]} does not name its change")
    values_json = canonical_values(change["values"])
    return change["subnet"], change["first_epoch"], change["last_epoch"], values_json


def backtest_from_bytes(data: bytes) -> Backtest:
    """The report in ``data`` (a report file's bytes), or one-line ``BacktestError``."""
    sha = hashlib.sha256(data).hexdigest()
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError):
        raise BacktestError(f"backtest report {sha[:SHA_SHOWN_CHARS]} is not Parquet") from None
    metadata = table.schema.metadata or {}
    if metadata.get(META_FORMAT) != REPORT_FORMAT.encode():
        raise BacktestError(f"backtest report {sha[:SHA_SHOWN_CHARS]} has an unknown format")
    subnet, first, last, values_json = _parsed_change(
        _meta_json(metadata, META_CHANGE, sha=sha), sha=sha
    )
    summary = BacktestSummary.from_dict(_meta_json(metadata, META_SUMMARY, sha=sha))
    deltas = table.replace_schema_metadata(None)
    if deltas.schema != _DELTA_SCHEMA:
        raise BacktestError(f"backtest report {sha[:SHA_SHOWN_CHARS]} has other columns")
    return Backtest(
        subnet=subnet,
        first_epoch=first,
        last_epoch=last,
        values=values_json,
        summary=summary,
        deltas=deltas,
        report_bytes=data,
        sha256=sha,
    )


# ---- storage ---------------------------------------------------------------------------------


def check_sha256(sha256: object) -> str:
    """``sha256`` if it is 64 lowercase hex digits, else one-line ``BacktestError``."""
    if not isinstance(sha256, str) or _SHA256_HEX.fullmatch(sha256) is None:
        raise BacktestError("a backtest sha256 must be 64 lowercase hex digits")
    return sha256


def report_path(backtests_dir: Path, sha256: str) -> Path:
    """``<backtests_dir>/<sha256>.parquet`` (refused unless ``sha256`` is 64 lowercase hex and
    the path stays inside the directory)."""
    name = f"{check_sha256(sha256)}.parquet"
    try:
        return path_under(backtests_dir, name)
    except PathOutsideRoot as exc:
        raise BacktestError(str(exc)) from None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem syncs a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _same_file(path: Path, sha256: str) -> bool:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(REPORT_BYTES_MAX + 1)).hexdigest() == sha256


def store_backtest(backtests_dir: Path, backtest: Backtest) -> Path:
    """Write the report as ``<sha256>.parquet`` atomically; the existing file if it holds the
    same bytes, one-line ``BacktestMismatch`` if it holds others (never overwritten)."""
    if hashlib.sha256(backtest.report_bytes).hexdigest() != backtest.sha256:
        raise BacktestMismatch(
            f"backtest report {backtest.sha256[:SHA_SHOWN_CHARS]} does not match its hash"
        )
    backtests_dir.mkdir(parents=True, exist_ok=True)
    path = report_path(backtests_dir, backtest.sha256)
    fd, temp_name = tempfile.mkstemp(prefix=".backtest-", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(backtest.report_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # fails if the name exists: never replaces a file
        except FileExistsError:
            if not _same_file(path, backtest.sha256):
                raise BacktestMismatch(
                    f"backtest report {backtest.sha256[:SHA_SHOWN_CHARS]} is already stored "
                    f"with other bytes at {path}: left as it is"
                ) from None
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def load_backtest(backtests_dir: Path, sha256: str) -> Backtest:
    """The stored report named ``sha256``: ``BacktestMismatch`` if its bytes hash otherwise,
    ``BacktestError`` if it is absent, too large or malformed."""
    path = report_path(backtests_dir, sha256)
    short = sha256[:SHA_SHOWN_CHARS]
    if not path.is_file():
        raise BacktestError(f"no backtest report {short} in {backtests_dir}")
    with path.open("rb") as handle:
        data = handle.read(REPORT_BYTES_MAX + 1)
    if len(data) > REPORT_BYTES_MAX:
        raise BacktestError(f"backtest report {short} is larger than {REPORT_BYTES_MAX} bytes")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BacktestMismatch(
            f"backtest report {short} does not match its hash: the file was changed"
        )
    return backtest_from_bytes(data)


def check_backtest_for(backtest: Backtest, *, subnet: str, values: Mapping[str, Any]) -> None:
    """One-line ``BacktestMismatch`` unless ``backtest`` describes this change of ``subnet``."""
    short = backtest.sha256[:SHA_SHOWN_CHARS]
    if backtest.subnet != subnet:
        raise BacktestMismatch(
            f"backtest report {short} is of subnet {backtest.subnet!r}, not {subnet!r}"
        )
    wanted = canonical_values(values)
    if backtest.values != wanted:
        raise BacktestMismatch(
            f"backtest report {short} describes the change {_cut(backtest.values)}, "
            f"not {_cut(wanted)}"
        )


# ---- for people ------------------------------------------------------------------------------


def _cut(text: str, limit: int = CHANGE_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mover(hotkey: str | None, amount_rao: int, *, sign: str, labels: Mapping[str, str]) -> str:
    if hotkey is None:
        return "none"
    name = labels.get(hotkey) or f"{hotkey[:HOTKEY_SHOWN_CHARS]}…"
    return f"{name} {sign}{tao_text(amount_rao)} τ"


def summary_lines(backtest: Backtest, *, labels: Mapping[str, str] | None = None) -> list[str]:
    """Short lines for ``taoflow proposal show`` and the explorer (hotkeys by their ``labels``
    — e.g. local wallet names — where given, else a short id)."""
    names: Mapping[str, str] = labels or {}
    s = backtest.summary
    lines = [
        f"backtest {backtest.sha256[:SHA_SHOWN_CHARS]}: {backtest.subnet} epochs "
        f"{backtest.first_epoch}..{backtest.last_epoch} ({s.epochs} epochs)",
        f"change: {_cut(backtest.values)}",
        f"emission: stored {tao_text(s.baseline_rao)} τ, with the change "
        f"{tao_text(s.whatif_rao)} τ",
        f"incentive Gini (mean): {s.gini_before:.4f} → {s.gini_after:.4f}",
        f"validator-trust spread (mean): {s.trust_spread_before:.4f} → {s.trust_spread_after:.4f}",
        f"hotkeys changed: {s.hotkeys_changed}; largest gain "
        f"{_mover(s.largest_gain_hotkey, s.largest_gain_rao, sign='+', labels=names)}; "
        f"largest loss {_mover(s.largest_loss_hotkey, s.largest_loss_rao, sign='-', labels=names)}",
    ]
    if s.baseline_owner_rao != s.whatif_owner_rao:
        lines.insert(
            3,
            f"owner: stored {tao_text(s.baseline_owner_rao)} τ, with the change "
            f"{tao_text(s.whatif_owner_rao)} τ",
        )
    if s.not_simulated:
        lines.append(f"not simulated: {', '.join(s.not_simulated)}")
    return lines


def markdown(backtest: Backtest, *, proposal_title: str = "") -> str:
    """The report as markdown (Prefect artifact): summary lines and the largest deltas."""
    title = f" · {proposal_title}" if proposal_title else ""
    lines = [f"# Backtest {backtest.sha256[:SHA_SHOWN_CHARS]}{title}", ""]
    lines += [f"- {line}" for line in summary_lines(backtest)]
    lines += [
        f"- sha256: `{backtest.sha256}`",
        "",
        "| uid | hotkey | role | stored τ | with the change τ | Δ τ | Δ % |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in backtest.deltas.slice(0, MARKDOWN_ROWS_MAX).to_pylist():
        pct = "—" if row["delta_pct"] is None else f"{row['delta_pct']:+.2f}"
        lines.append(
            f"| {row['uid']} | `{row['hotkey'][:HOTKEY_SHOWN_CHARS]}…` | {row['role']} | "
            f"{tao_text(row['baseline_rao'])} | {tao_text(row['whatif_rao'])} | "
            f"{tao_text(row['delta_rao'])} | {pct} |"
        )
    return "\n".join(lines)


# ---- MLflow ----------------------------------------------------------------------------------


def run_name(backtest: Backtest) -> str:
    return (
        f"backtest · epochs {backtest.first_epoch}..{backtest.last_epoch} · "
        f"{backtest.sha256[:SHA_SHOWN_CHARS]}"
    )


def metrics_of(backtest: Backtest) -> dict[str, float]:
    """The summary's numbers as MLflow metrics (rao also as τ)."""
    metrics: dict[str, float] = {}
    for name, value in backtest.summary.to_dict().items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        metrics[name] = float(value)
        if name.endswith("_rao"):
            metrics[name.removesuffix("_rao") + "_tao"] = value / RAO_PER_TAO
    return metrics


def params_of(backtest: Backtest) -> dict[str, str]:
    """The change as MLflow params: its JSON, the simulated overrides and the range."""
    overrides = overrides_of_change(backtest.change) or WhatIfParams()
    params = {
        "change": _cut(backtest.values, PARAM_CHARS_MAX),
        "first_epoch": str(backtest.first_epoch),
        "last_epoch": str(backtest.last_epoch),
        "not_simulated": ",".join(backtest.summary.not_simulated) or "-",
    }
    for key, value in overrides.as_params().items():
        params[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return params


def write_artifacts(backtest: Backtest, directory: Path) -> list[Path]:
    """The run's files: the report Parquet, the delta table as CSV, the what-if's plots."""
    report = directory / "backtest" / f"{backtest.sha256}.parquet"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_bytes(backtest.report_bytes)
    csv_path = directory / "backtest" / "deltas.csv"
    pa_csv.write_csv(backtest.deltas, csv_path)
    paths = [report, csv_path]
    if backtest.whatif is not None:
        from taoflow.tasks.audit.whatif_track import emission_png, gini_png

        plots = directory / "plots"
        paths.append(emission_png(backtest.whatif, plots / "emission_by_hotkey.png"))
        paths.append(gini_png(backtest.whatif, plots / "gini_by_epoch.png"))
    return paths


def track_backtest(
    backtest: Backtest, *, tracking_uri: str, artifacts_dir: Path, proposal_title: str
) -> str:
    """Log the backtest as one MLflow run in the subnet's experiment; its run id."""
    from taoflow.tasks.track import create_subnet_run

    client, run_id = create_subnet_run(
        tracking_uri=tracking_uri,
        artifacts_dir=artifacts_dir,
        subnet=backtest.subnet,
        run_name=run_name(backtest),
        tags={
            KIND_TAG: KIND,
            SHA_TAG: backtest.sha256,
            "taoflow.backtest.range": f"{backtest.first_epoch}..{backtest.last_epoch}",
            "taoflow.proposal.title": _cut(proposal_title, PARAM_CHARS_MAX),
        },
    )
    for key, text in params_of(backtest).items():
        client.log_param(run_id, key, text)
    for key, number in metrics_of(backtest).items():
        client.log_metric(run_id, key, number)
    with tempfile.TemporaryDirectory(prefix="taoflow-backtest-") as scratch:
        for path in write_artifacts(backtest, Path(scratch)):
            folder = path.parent.relative_to(scratch).as_posix()
            client.log_artifact(run_id, str(path), artifact_path=None if folder == "." else folder)
    client.set_terminated(run_id)
    return run_id


__all__ = [
    "BACKTEST_EPOCHS_DEFAULT",
    "BACKTEST_EPOCHS_MAX",
    "Backtest",
    "BacktestError",
    "BacktestMismatch",
    "BacktestSummary",
    "backtest_from_bytes",
    "canonical_values",
    "check_backtest_for",
    "check_sha256",
    "load_backtest",
    "markdown",
    "not_simulated",
    "overrides_of_change",
    "report_path",
    "run_backtest",
    "store_backtest",
    "summary_lines",
    "summary_of",
    "track_backtest",
    "values_from_json",
]
