"""Listening histories as item sequences for sequential models: loading (the SASRec authors'
`user item` files or the database), the item vocabulary, splits and training batches.

Items are 1..n_items in the vocabulary's order; 0 pads. Sequences are chronological.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select

from musicrec.db.models import ListeningEvent, Track, User
from musicrec.errors import UserError

PAD = "<pad>"
# Events that say the listener wanted the track; skips and dislikes are not positives.
POSITIVE_EVENTS = ("play", "like")


@dataclass
class SequenceData:
    sequences: list[list[int]]  # one per user, chronological, items 1..n_items
    vocabulary: list[str]  # item index -> key (track URI, or the file's item id); [0] = PAD
    users: list[str]

    @property
    def n_items(self) -> int:
        return len(self.vocabulary) - 1


def _index(histories: dict[str, list[str]], min_length: int) -> SequenceData:
    kept = {u: items for u, items in histories.items() if len(items) >= min_length}
    counts = Counter(item for items in kept.values() for item in items)
    # Most frequent first (ties by key): stable across runs and cache-friendly for scoring.
    vocabulary = [PAD, *sorted(counts, key=lambda k: (-counts[k], k))]
    index = {key: i for i, key in enumerate(vocabulary)}
    users = sorted(kept)
    return SequenceData([[index[k] for k in kept[u]] for u in users], vocabulary, users)


def load_interaction_file(path: Path, min_length: int = 1) -> SequenceData:
    """`user item` per line, sorted by user then time (the SASRec authors' format)."""
    histories: dict[str, list[str]] = defaultdict(list)
    try:
        with path.open() as f:
            for line_no, line in enumerate(f, 1):
                parts = line.split()
                if len(parts) != 2:
                    raise UserError(f"{path}: line {line_no}: expected 'user item'")
                histories[parts[0]].append(parts[1])
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from exc
    return _index(histories, min_length)


def load_from_database(engine: Engine, min_length: int = 1) -> SequenceData:
    """Each listener's plays and likes, in time order, as track URIs."""
    query = (
        select(User.external_id, Track.spotify_uri)
        .join(ListeningEvent, ListeningEvent.user_id == User.id)
        .join(Track, Track.id == ListeningEvent.track_id)
        .where(ListeningEvent.event_type.in_(POSITIVE_EVENTS))
        .order_by(User.external_id, ListeningEvent.occurred_at, ListeningEvent.position)
    )
    histories: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for user, uri in conn.execute(query):
            histories[user].append(uri)
    return _index(histories, min_length)


@dataclass
class LeaveOneOut:
    """The paper's split: train on all but the last two items, validate on the second last,
    test on the last (its history includes the validation item). Users with fewer than three
    items are trained on whole and not evaluated, as in the authors' code."""

    train: list[list[int]]  # every user
    evaluated: list[int]  # indices of users with a validation and a test item
    valid_targets: list[int]
    test_targets: list[int]

    @classmethod
    def of(cls, sequences: list[list[int]]) -> LeaveOneOut:
        evaluated = [u for u, s in enumerate(sequences) if len(s) >= 3]
        return cls(
            train=[s[:-2] if len(s) >= 3 else s for s in sequences],
            evaluated=evaluated,
            valid_targets=[sequences[u][-2] for u in evaluated],
            test_targets=[sequences[u][-1] for u in evaluated],
        )

    @property
    def valid_histories(self) -> list[list[int]]:
        return [self.train[u] for u in self.evaluated]

    @property
    def test_histories(self) -> list[list[int]]:
        return [
            self.train[u] + [v] for u, v in zip(self.evaluated, self.valid_targets, strict=True)
        ]


def pad_left(histories: list[list[int]], length: int) -> NDArray[np.int64]:
    """The last `length` items of each history, left-padded with 0."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, items in enumerate(histories):
        tail = items[-length:]
        if tail:
            out[row, -len(tail) :] = tail
    return out


class TrainBatches:
    """Batches of (input, next item, sampled negative), each [B, L], for every training
    sequence. Negatives are uniform over items the user never interacted with."""

    def __init__(self, train: list[list[int]], n_items: int, max_len: int, seed: int) -> None:
        usable = [s for s in train if len(s) >= 2]
        self.inputs = pad_left([s[:-1] for s in usable], max_len)
        self.positives = pad_left([s[1:] for s in usable], max_len)
        self.n_items = n_items
        self.rng = np.random.default_rng(seed)
        # Sorted (user * (n + 1) + item) keys: vectorized "did this user interact with i?".
        self.seen = np.unique(
            np.concatenate(
                [np.asarray(s, dtype=np.int64) + u * (n_items + 1) for u, s in enumerate(usable)]
            )
        )

    def __len__(self) -> int:
        return len(self.inputs)

    def epoch(self, batch_size: int) -> Iterator[tuple[NDArray[np.int64], ...]]:
        order = self.rng.permutation(len(self.inputs))
        for start in range(0, len(order), batch_size):
            users = order[start : start + batch_size]
            pos = self.positives[users]
            yield self.inputs[users], pos, self._negatives(users, pos.shape)

    def _negatives(self, users: NDArray[np.int64], shape: tuple[int, ...]) -> NDArray[np.int64]:
        neg = self.rng.integers(1, self.n_items + 1, size=shape)
        offsets = users[:, None] * (self.n_items + 1)
        for _ in range(20):  # collisions are rare: a user has few of many items
            keys = neg + offsets
            hit = self.seen[np.searchsorted(self.seen, keys).clip(max=len(self.seen) - 1)] == keys
            if not hit.any():
                break
            neg[hit] = self.rng.integers(1, self.n_items + 1, size=int(hit.sum()))
        return neg
