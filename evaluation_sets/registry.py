"""Name → builder registry for evaluation sets, with a per-process cache and Hub ids.

Names: the packaged sets (``digits``, ``reviews``, ``wine``), fixed at import time, and
``hub:<owner>/<name>[@<revision>]`` for a Hugging Face Hub dataset that is already in the
canonical schema (``train``/``test`` splits with ``features`` = fixed-length numeric lists and
``label`` = integer / ``ClassLabel``; its features are read as ``float32``).

Invariants: :func:`load_evaluation_set` returns the *same* object for the same name within a
process (builders are deterministic, so this is only a speed optimisation); failed builds are
not cached (``functools.cache`` never caches exceptions).

Fault model:

* an unknown packaged name, or a malformed Hub id, raises :class:`UnknownEvaluationSet`
  (a ``KeyError``) listing the known names;
* a Hub id is matched against a strict pattern (no paths, no ``..``) and refused if a local
  path of that name exists -- ``datasets.load_dataset`` would otherwise load local files;
* a Hub dataset that cannot be loaded -- in particular offline (``HF_HUB_OFFLINE=1``, the
  default everywhere here), where ``datasets`` fails immediately -- raises
  :class:`EvaluationSetUnavailable` (a subclass of :class:`UnknownEvaluationSet`) with the cause;
  nothing is ever downloaded unless the environment allows it.  A Hub set is identified by its
  :attr:`~evaluation_sets.base.EvaluationSet.content_hash`; pin a ``@revision`` for
  reproducible builds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Final

import datasets

from taoflow.evaluation_sets.base import (
    FEATURES_COLUMN,
    LABEL_COLUMN,
    EvaluationSet,
    InvalidEvaluationSet,
    dataset_arrays,
)
from taoflow.evaluation_sets.digits import DIGITS_NAME, build_digits
from taoflow.evaluation_sets.reviews import REVIEWS_NAME, build_reviews
from taoflow.evaluation_sets.wine import WINE_NAME, build_wine

REGISTRY: Mapping[str, Callable[[], EvaluationSet]] = MappingProxyType(
    {DIGITS_NAME: build_digits, REVIEWS_NAME: build_reviews, WINE_NAME: build_wine}
)
HUB_PREFIX: Final = "hub:"
_HUB_PART: Final = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID: Final = re.compile(
    rf"(?P<repo>{_HUB_PART}/{_HUB_PART})(?:@(?P<revision>[A-Za-z0-9._-]{{1,64}}))?"
)


class UnknownEvaluationSet(KeyError):
    """No evaluation set is registered under the requested name (or the Hub id is malformed)."""

    def __init__(self, name: str, known: list[str], reason: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.known = known
        self.reason = reason

    def __str__(self) -> str:
        detail = f" ({self.reason})" if self.reason else ""
        return (
            f"unknown evaluation set {self.name!r}{detail}; known: {', '.join(self.known)}, "
            f"or {HUB_PREFIX}<owner>/<name>"
        )


class EvaluationSetUnavailable(UnknownEvaluationSet):
    """A Hub evaluation set could not be loaded (offline, missing, or not in our schema)."""

    def __str__(self) -> str:
        return f"evaluation set {self.name!r} is unavailable: {self.reason}"


def known_evaluation_sets() -> list[str]:
    """Registered (packaged) names, sorted."""
    return sorted(REGISTRY)


def _label_classes(dataset_dict: Any, labels_max: int) -> int:
    feature = dataset_dict["train"].features.get(LABEL_COLUMN)
    if isinstance(feature, datasets.ClassLabel):
        return int(feature.num_classes)
    return labels_max + 1


def _load_hub(name: str) -> EvaluationSet:
    match = _HUB_ID.fullmatch(name[len(HUB_PREFIX) :])
    if match is None or ".." in match.group("repo"):
        raise UnknownEvaluationSet(
            name, known_evaluation_sets(), "not a Hub dataset id hub:<owner>/<name>[@<revision>]"
        )
    repo_id, revision = match.group("repo"), match.group("revision")
    if os.path.exists(repo_id):
        raise EvaluationSetUnavailable(
            name, known_evaluation_sets(), f"a local path {repo_id!r} would shadow the Hub id"
        )
    try:
        dataset_dict = datasets.load_dataset(repo_id, revision=revision)
    except Exception as exc:  # datasets raises many unrelated types; the cause is kept
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = " (HF_HUB_OFFLINE is set: nothing is downloaded)" if offline else ""
        raise EvaluationSetUnavailable(
            name, known_evaluation_sets(), f"{type(exc).__name__}: {exc}{hint}"
        ) from exc
    if not isinstance(dataset_dict, datasets.DatasetDict) or {"train", "test"} - set(dataset_dict):
        raise EvaluationSetUnavailable(
            name, known_evaluation_sets(), "a Hub evaluation set needs 'train' and 'test' splits"
        )
    try:
        first = dataset_dict["train"][0][FEATURES_COLUMN]
        input_dim = len(first)
        labels_max = max(
            int(dataset_arrays(dataset_dict[split], input_dim=input_dim)[1].max(initial=0))
            for split in ("train", "test")
        )
        return EvaluationSet(
            name=name,
            task="classification",
            metric="accuracy",
            train=dataset_dict["train"],
            test=dataset_dict["test"],
            input_dim=input_dim,
            num_classes=_label_classes(dataset_dict, labels_max),
        )
    except (InvalidEvaluationSet, KeyError, IndexError, TypeError) as exc:
        raise EvaluationSetUnavailable(
            name, known_evaluation_sets(), f"not in the evaluation-set schema: {exc}"
        ) from exc


@cache
def load_evaluation_set(name: str) -> EvaluationSet:
    """Build (once per process) and return the evaluation set called ``name``."""
    if name.startswith(HUB_PREFIX):
        return _load_hub(name)
    builder = REGISTRY.get(name)
    if builder is None:
        raise UnknownEvaluationSet(name, known_evaluation_sets())
    evaluation_set = builder()
    if evaluation_set.name != name:
        raise ValueError(f"builder for {name!r} returned set named {evaluation_set.name!r}")
    return evaluation_set
