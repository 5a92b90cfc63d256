"""A small word tokenizer we own: lowercase words → int64 ids with a train-split vocabulary.

Purpose: text evaluation sets (``reviews``) publish token-id sequences, not raw text, so every
miner and validator sees exactly the same model inputs, and nothing (no Hub tokenizer, no
download) is needed at run time.

Rules (all deterministic, independent of process, locale and ``PYTHONHASHSEED``):

* :func:`words` lowercases ASCII letters only (a fixed table, so the result does not depend on
  the Python version's Unicode database) and keeps the maximal runs matching
  ``[a-z0-9]+('[a-z]+)*`` -- ASCII letters/digits with inner apostrophes ("don't"); everything
  else (punctuation, markup, non-ASCII letters) separates words;
* the vocabulary is built from the TRAIN texts only (:meth:`WordTokenizer.fit`): words ordered
  by descending count, ties by the word itself (code-point order), the first
  ``vocab_size - 2`` kept.  Ids ``0`` and ``1`` are reserved for :data:`PAD_TOKEN` and
  :data:`UNK_TOKEN` (strings the word pattern can never produce); word ``k`` of that order has
  id ``k + 2``;
* :meth:`WordTokenizer.encode` maps a text to exactly ``max_tokens`` ids: the first
  ``max_tokens`` words (truncation keeps the head), out-of-vocabulary words as ``UNK_ID``, then
  ``PAD_ID`` padding at the end;
* :meth:`WordTokenizer.vocabulary_digest` is a sha256 over a length-prefixed encoding of
  ``max_tokens`` and the vocabulary, so the vocabulary is part of a text set's content hash.

Fault model: texts are trusted package data; constructor arguments are checked and violations
raise :class:`InvalidTokenizer` (a ``ValueError``).  Imports only the standard library and numpy.
"""

from __future__ import annotations

import hashlib
import re
import string
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Final

import numpy as np

PAD_TOKEN: Final = "<pad>"
UNK_TOKEN: Final = "<unk>"
PAD_ID: Final = 0
UNK_ID: Final = 1
RESERVED_TOKENS: Final = (PAD_TOKEN, UNK_TOKEN)
_WORD_PATTERN: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_DIGEST_DOMAIN: Final = b"taoflow.word-tokenizer.v1\x00"


class InvalidTokenizer(ValueError):
    """A tokenizer's vocabulary or length settings are malformed."""


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` in order (see the module docstring for the rule)."""
    return _WORD_PATTERN.findall(text.translate(_ASCII_LOWER))


@dataclass(frozen=True, eq=False)
class WordTokenizer:
    """A fixed vocabulary (index = token id) and a fixed output length ``max_tokens``.

    Equality is identity; compare :meth:`vocabulary_digest` to compare tokenizers.
    """

    vocabulary: tuple[str, ...]
    max_tokens: int

    def __post_init__(self) -> None:
        if type(self.max_tokens) is not int or self.max_tokens < 1:
            raise InvalidTokenizer(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if tuple(self.vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise InvalidTokenizer(f"vocabulary must start with {list(RESERVED_TOKENS)}")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise InvalidTokenizer("vocabulary contains duplicate tokens")
        for token in self.vocabulary[len(RESERVED_TOKENS) :]:
            if not isinstance(token, str) or _WORD_PATTERN.fullmatch(token) is None:
                raise InvalidTokenizer(f"vocabulary entry {token!r} is not a word")

    @classmethod
    def fit(cls, texts: Iterable[str], *, vocab_size: int, max_tokens: int) -> WordTokenizer:
        """Build the vocabulary from ``texts`` (the TRAIN split only): top words by count."""
        if type(vocab_size) is not int or vocab_size <= len(RESERVED_TOKENS):
            raise InvalidTokenizer(
                f"vocab_size must be an int > {len(RESERVED_TOKENS)}, got {vocab_size!r}"
            )
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [word for word, _ in ranked[: vocab_size - len(RESERVED_TOKENS)]]
        return cls(vocabulary=(*RESERVED_TOKENS, *kept), max_tokens=max_tokens)

    @property
    def vocab_size(self) -> int:
        """Number of ids (reserved tokens included); valid ids are ``[0, vocab_size)``."""
        return len(self.vocabulary)

    @cached_property
    def token_ids(self) -> MappingProxyType[str, int]:
        """Word → id (read-only)."""
        return MappingProxyType({token: index for index, token in enumerate(self.vocabulary)})

    def encode(self, text: str) -> list[int]:
        """Exactly ``max_tokens`` ids for ``text``: head-truncated, UNK for unknown, PAD-filled."""
        lookup = self.token_ids
        ids = [lookup.get(word, UNK_ID) for word in words(text)[: self.max_tokens]]
        return ids + [PAD_ID] * (self.max_tokens - len(ids))

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``int64 [len(texts), max_tokens]`` ids, one row per text."""
        rows = [self.encode(text) for text in texts]
        if not rows:
            return np.zeros((0, self.max_tokens), dtype=np.int64)
        return np.asarray(rows, dtype=np.int64)

    def vocabulary_digest(self) -> bytes:
        """sha256 (raw 32 bytes) of ``max_tokens`` and the vocabulary, length-prefixed."""
        digest = hashlib.sha256(_DIGEST_DOMAIN)
        digest.update(struct.pack("<QQ", self.max_tokens, len(self.vocabulary)))
        for token in self.vocabulary:
            encoded = token.encode("utf-8")
            digest.update(struct.pack("<Q", len(encoded)))
            digest.update(encoded)
        return digest.digest()
