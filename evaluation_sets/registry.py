"""Name → builder registry for evaluation sets, with a per-process cache.

Invariants: names are fixed at import time; :func:`load_evaluation_set` returns the *same*
object for the same name within a process (builders are deterministic, so this is only a speed
optimisation); an unknown name raises :class:`UnknownEvaluationSet` listing the known names.
Failed builds are not cached (``functools.cache`` never caches exceptions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType

from evaluation_sets.base import EvaluationSet
from evaluation_sets.digits import DIGITS_NAME, build_digits

REGISTRY: Mapping[str, Callable[[], EvaluationSet]] = MappingProxyType({DIGITS_NAME: build_digits})


class UnknownEvaluationSet(KeyError):
    """No evaluation set is registered under the requested name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown evaluation set {self.name!r}; known: {', '.join(self.known)}"


def known_evaluation_sets() -> list[str]:
    """Registered names, sorted."""
    return sorted(REGISTRY)


@cache
def load_evaluation_set(name: str) -> EvaluationSet:
    """Build (once per process) and return the evaluation set registered as ``name``."""
    builder = REGISTRY.get(name)
    if builder is None:
        raise UnknownEvaluationSet(name, known_evaluation_sets())
    evaluation_set = builder()
    if evaluation_set.name != name:
        raise ValueError(f"builder for {name!r} returned set named {evaluation_set.name!r}")
    return evaluation_set
