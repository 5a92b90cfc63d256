"""Names that end up in file paths: wallets, hotkeys and subnets share one rule.

A name is 1 to ``NAME_CHARS_MAX`` characters from ``A-Z a-z 0-9 _ -`` (ASCII only). Such a name
is a single path component that can never be ``.`` or ``..``, holds no separator, no NUL and no
character a filesystem or MLflow filter would treat specially, so ``<dir>/<name>`` always stays
inside ``<dir>``.

Invariants: ``NAME_RE`` is the only definition of the rule (``taoflow.wallet`` imports it); the
ledger rejects a subnet whose name breaks it (``ledger.state``), so every subnet name read from
a valid ledger is a safe path component. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

NAME_CHARS_MAX: Final = 64
NAME_RE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{NAME_CHARS_MAX}}}")
NAME_RULE: Final = f"use 1-{NAME_CHARS_MAX} characters from A-Z, a-z, 0-9, '_' and '-'"


def name_problem(value: object, *, kind: str) -> str | None:
    """Why ``value`` is not a valid ``kind`` name (one line), or ``None`` if it is one."""
    if isinstance(value, str) and NAME_RE.fullmatch(value) is not None:
        return None
    shown = repr(value) if len(repr(value)) <= 2 * NAME_CHARS_MAX else f"{repr(value)[:80]}…"
    return f"invalid {kind} name {shown}: {NAME_RULE}"


def check_subnet_name(name: object) -> str | None:
    """Why ``name`` is not a valid subnet name, or ``None`` if it is one."""
    return name_problem(name, kind="subnet")
