"""Text as numbers, without downloading anything: tokens, TF-IDF and hashed embeddings.

`embed()` is feature hashing: each word lands in one of `EMBEDDING_DIMENSIONS` buckets chosen
by a stable hash (blake2b, not Python's per-process salted `hash()`), with a hashed sign so
that collisions cancel out rather than pile up, weighted by log term frequency and scaled to
unit length. Two texts sharing words then have a cosine near their word overlap, which is what
search needs. `tfidf_vectors()` is the classic weighting for comparing texts of one corpus.
"""

from __future__ import annotations

import hashlib
import math
import re
from array import array
from collections import Counter

EMBEDDING_DIMENSIONS = 1024

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "out",
        "over",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "vs",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers, stopwords and one-letter tokens left out."""
    return [word for word in _WORD.findall(text.lower()) if len(word) > 1 and word not in STOPWORDS]


def embed(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word, count in Counter(tokenize(text)).items():
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[bucket] += sign * (1.0 + math.log(count))
    return _unit(vector)


def pack(vector: list[float]) -> bytes:
    return array("f", vector).tobytes()


def unpack(blob: bytes) -> list[float]:
    values = array("f")
    values.frombytes(blob)
    return values.tolist()


def dot(a: list[float], b: list[float]) -> float:
    """The cosine of two unit vectors."""
    return sum(x * y for x, y in zip(a, b))


def tfidf_vectors(documents: list[str]) -> list[dict[str, float]]:
    """Sparse unit TF-IDF vectors (word -> weight), smoothed idf as in scikit-learn."""
    counts = [Counter(tokenize(document)) for document in documents]
    document_frequency = Counter(word for count in counts for word in count)
    total = len(documents)
    vectors = []
    for count in counts:
        weights = {
            word: times * (math.log((1 + total) / (1 + document_frequency[word])) + 1) for word, times in count.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({word: w / norm for word, w in weights.items()})
    return vectors


def sparse_cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(weight * b.get(word, 0.0) for word, weight in a.items())


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector
