"""Names that end up in file paths: wallets, hotkeys and subnets share one rule.

A name is 1 to ``NAME_CHARS_MAX`` characters from ``A-Z a-z 0-9 _ -`` (ASCII only). Such a name
is a single path component that can never be ``.`` or ``..``, holds no separator, no NUL and no
character a filesystem or MLflow filter would treat specially, so ``<dir>/<name>`` always stays
inside ``<dir>``.

``path_under(root, *parts)`` is the one way to build a path from names that came from the
ledger or a user: it resolves the joined path (symlinks included) and raises ``PathOutsideRoot``
(one line) unless the result is ``root`` itself or inside it.

Invariants: ``NAME_RE`` is the only definition of the rule (``taoflow.wallet`` imports it); the
ledger rejects a subnet whose name breaks it (``ledger.state``), so every subnet name read from
a valid ledger is a safe path component. Nothing here writes; only ``path_under`` reads the
filesystem (to resolve symlinks).
"""

from __future__ import annotations

import re
from pathlib import Path
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


class PathOutsideRoot(ValueError):
    """A path built from names would leave the directory it must stay in."""


def path_under(root: Path, *parts: str) -> Path:
    """``root / parts…`` resolved (symlinks followed); ``PathOutsideRoot`` if it leaves ``root``.

    ``root`` is resolved too, so a home reached through a symlink is fine; a part that is
    absolute, ``..``, or a symlink pointing elsewhere is not.
    """
    base = Path(root).resolve()
    for part in parts:
        if not isinstance(part, str) or not part or "\x00" in part:
            raise PathOutsideRoot(f"path part {part!r} under {base} is empty or not a name")
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and not candidate.is_relative_to(base):
        joined = "/".join(parts)
        raise PathOutsideRoot(f"{joined!r} leads outside {base} (to {candidate}): refused")
    return candidate
