"""Query parameters of the explorer's pages: known names, types and bounds, one-line errors.

Invariant: a page sees only parameters that passed these checks; anything else is a
``BadParameter`` (the app answers 400 with its one line) before the ledger is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from starlette.requests import Request

from taoflow.dashboards.explorer.ledger_pages import (
    KINDS,
    PAGE_MAX,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    QUERY_CHARS_MAX,
    LedgerQuery,
)
from taoflow.dashboards.explorer.pages import Labels
from taoflow.dashboards.explorer.subnet_pages import SORT_COLUMNS

EPOCH_MAX: Final = 2**62
ACCOUNT_ID: Final = re.compile(r"[0-9a-f]{64}")
PRINTABLE: Final = re.compile(r"[\x21-\x7e]*")
"""Printable ASCII without spaces: what a transaction id can hold."""
TX_ID_CHARS_MAX: Final = 256
SORT_DEFAULT: Final = "uid"


class BadParameter(ValueError):
    """A query parameter the page does not take, or a value out of its bounds (one line)."""


def only(request: Request, names: Iterable[str]) -> None:
    """Refuse any parameter not in ``names`` (and any given twice)."""
    allowed = set(names)
    for key in request.query_params:
        if key not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise BadParameter(f"unknown parameter {key!r} (this page takes {takes})")
        if len(request.query_params.getlist(key)) > 1:
            raise BadParameter(f"parameter {key!r} given more than once")


def _int(request: Request, name: str, *, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        raise BadParameter(f"{name} must be a whole number between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}, got {value}")
    return value


def _text(request: Request, name: str, *, chars_max: int = QUERY_CHARS_MAX) -> str:
    raw = (request.query_params.get(name) or "").strip()
    if len(raw) > chars_max:
        raise BadParameter(f"{name} is longer than {chars_max} characters")
    if not PRINTABLE.fullmatch(raw):
        raise BadParameter(f"{name} must be printable ASCII without spaces")
    return raw


def sort(request: Request) -> tuple[str, bool]:
    """``sort`` (a metagraph column, default uid) and whether ``order`` is descending."""
    only(request, ("sort", "order"))
    column = request.query_params.get("sort") or SORT_DEFAULT
    if column not in SORT_COLUMNS:
        raise BadParameter(f"sort must be one of {', '.join(SORT_COLUMNS)}, not {column[:32]!r}")
    order = request.query_params.get("order") or ("asc" if column in ("uid", "hotkey") else "desc")
    if order not in ("asc", "desc"):
        raise BadParameter(f"order must be asc or desc, not {order[:32]!r}")
    return column, order == "desc"


def epoch(request: Request) -> int | None:
    only(request, ("epoch",))
    return _int(request, "epoch", low=0, high=EPOCH_MAX)


def check_tx_id(tx_id: str) -> None:
    if not tx_id or len(tx_id) > TX_ID_CHARS_MAX or not PRINTABLE.fullmatch(tx_id):
        raise BadParameter(
            f"a transaction id is 1–{TX_ID_CHARS_MAX} printable characters without spaces"
        )


def _account(request: Request, labels: Labels) -> str:
    raw = _text(request, "account")
    if not raw or ACCOUNT_ID.fullmatch(raw):
        return raw
    for account, name in labels.names.items():
        if name == raw:
            return account
    raise BadParameter(f"account must be a 64-hex account id or a local wallet name, not {raw!r}")


def ledger_query(request: Request, *, labels: Labels) -> LedgerQuery:
    only(
        request,
        ("q", "account", "kind", "page", "page_size", "as_of_epoch", "subnet", "batches_before"),
    )
    kind = _text(request, "kind")
    if kind and kind not in KINDS:
        raise BadParameter(f"kind must be one of {', '.join(KINDS)}, not {kind[:32]!r}")
    as_of_epoch = _int(request, "as_of_epoch", low=0, high=EPOCH_MAX)
    subnet = _text(request, "subnet")
    if (as_of_epoch is None) != (not subnet):
        raise BadParameter("as_of_epoch and subnet go together (balances as of a subnet's epoch)")
    page = _int(request, "page", low=0, high=PAGE_MAX)
    page_size = _int(request, "page_size", low=1, high=PAGE_SIZE_MAX)
    return LedgerQuery(
        q=_text(request, "q", chars_max=TX_ID_CHARS_MAX),
        account=_account(request, labels),
        kind=kind,
        page=page or 0,
        page_size=page_size or PAGE_SIZE_DEFAULT,
        as_of_epoch=as_of_epoch,
        subnet=subnet,
        batches_before=_int(request, "batches_before", low=1, high=EPOCH_MAX),
    )
