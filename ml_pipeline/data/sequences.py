"""Listening histories as item sequences for sequential models: loading (the SASRec authors'
`user item` files or the database), the item vocabulary, splits and training batches.

Items are 1..n_items in the vocabulary's order; 0 pads. Sequences are chronological.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray
from sqlalchemy import Engine, select

# Re-exported: training reads histories as serving does.
from inference.scoring import pad_left as pad_left
from musicrec.db.models import ListeningEvent, Track, User
from musicrec.errors import UserError
from musicrec.events import SEQUENCE_EVENTS
from musicrec.timeutil import as_utc

PAD = "<pad>"


@dataclass
class SequenceData:
    sequences: list[list[int]]  # one per user, chronological, items 1..n_items
    vocabulary: list[str]  # item index -> key (track URI, or the file's item id); [0] = PAD
    users: list[str]
    # Epoch seconds of each item of each sequence, when the source has times (not `user item`).
    timestamps: list[list[float]] | None = None

    @property
    def n_items(self) -> int:
        return len(self.vocabulary) - 1


def _index(
    histories: dict[str, list[str]],
    min_length: int,
    times: dict[str, list[float]] | None = None,
) -> SequenceData:
    kept = {u: items for u, items in histories.items() if len(items) >= min_length}
    counts = Counter(item for items in kept.values() for item in items)
    # Most frequent first (ties by key): stable across runs and cache-friendly for scoring.
    vocabulary = [PAD, *sorted(counts, key=lambda k: (-counts[k], k))]
    index = {key: i for i, key in enumerate(vocabulary)}
    users = sorted(kept)
    return SequenceData(
        [[index[k] for k in kept[u]] for u in users],
        vocabulary,
        users,
        [times[u] for u in users] if times is not None else None,
    )


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


def load_mpd(paths: list[Path], min_length: int = 1) -> SequenceData:
    """MPD slice files (full or reduced format; folders are expanded): each playlist is one
    listener's sequence of track URIs, timed as the ingest maps it (`ml_pipeline.ingest.mpd`)."""
    from ml_pipeline.ingest.errors import IngestError
    from ml_pipeline.ingest.mpd import mpd_files, parse_file

    histories: dict[str, list[str]] = {}
    times: dict[str, list[float]] = {}
    try:
        for path in mpd_files(paths):
            for playlist in parse_file(path).batch.playlists:
                user = playlist.user_external_id
                histories[user] = playlist.track_uris
                starts = playlist.plays.starts_ms if playlist.plays else []
                times[user] = [ms / 1000 for ms in starts]
    except IngestError as exc:
        raise UserError(str(exc)) from exc
    if not histories:
        raise UserError(f"no MPD playlists in {', '.join(map(str, paths))}")
    return _index(histories, min_length, times)


# The --data option of every command that reads sequences.
DataOption = Annotated[
    Path | None,
    typer.Option(help="MPD folder or slice (*.json), or a `user item` file; default: the database"),
]


# The --min-item-count option of the same commands (see drop_rare_items).
MinItemCountOption = Annotated[
    int, typer.Option(help="drop items heard fewer times in all (the paper's 5-core style)")
]


def is_mpd_source(source: Path) -> bool:
    """MPD data (a folder or a slice file), as opposed to a `user item` file."""
    return source.is_dir() or source.suffix == ".json"


def load_sequences(source: Path | None, engine: Engine | None = None) -> SequenceData:
    """The training data a command names: an MPD folder or slice (*.json), a `user item` file,
    or, without a path, the database."""
    if source is None:
        if engine is None:
            raise ValueError("no source: give a path or an engine")
        return load_from_database(engine)
    if is_mpd_source(source):
        return load_mpd([source])
    return load_interaction_file(source)


def drop_rare_items(data: SequenceData, min_count: int) -> SequenceData:
    """The data without items heard fewer than `min_count` times in all (one pass, like the
    SASRec paper's preprocessing); users left with nothing are dropped, items re-indexed."""
    counts = np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in data.sequences]))
    keep = counts >= min_count
    histories: dict[str, list[str]] = {}
    times: dict[str, list[float]] = {}
    for u, items in enumerate(data.sequences):
        kept = [p for p, i in enumerate(items) if keep[i]]
        histories[data.users[u]] = [data.vocabulary[items[p]] for p in kept]
        if data.timestamps is not None:
            times[data.users[u]] = [data.timestamps[u][p] for p in kept]
    return _index(histories, 1, times if data.timestamps is not None else None)


def load_dataset(source: Path | None, min_item_count: int = 1) -> tuple[SequenceData, str]:
    """What a command's --data and --min-item-count name: the sequences and how results call
    them (e.g. "mpd_reduced-min5")."""
    from musicrec.db.engine import make_engine

    data = load_sequences(source, None if source else make_engine())
    if min_item_count <= 1:
        return data, dataset_name(source)
    return drop_rare_items(data, min_item_count), f"{dataset_name(source)}-min{min_item_count}"


def dataset_name(source: Path | None) -> str:
    """How results name a data source: the file's stem, the folder's name, or "database"."""
    if source is None:
        return "database"
    return source.stem if source.is_file() else source.name


def load_from_database(engine: Engine, min_length: int = 1) -> SequenceData:
    """Each listener's plays and likes, in time order, as track URIs."""
    query = (
        select(User.external_id, Track.spotify_uri, ListeningEvent.occurred_at)
        .join(ListeningEvent, ListeningEvent.user_id == User.id)
        .join(Track, Track.id == ListeningEvent.track_id)
        .where(ListeningEvent.event_type.in_([e.value for e in SEQUENCE_EVENTS]))
        .order_by(User.external_id, ListeningEvent.occurred_at, ListeningEvent.position)
    )
    histories: dict[str, list[str]] = defaultdict(list)
    times: dict[str, list[float]] = defaultdict(list)
    with engine.connect() as conn:
        for user, uri, occurred_at in conn.execute(query):
            histories[user].append(uri)
            times[user].append(as_utc(occurred_at).timestamp())
    return _index(histories, min_length, times)


class TrainBatches:
    """Batches of (input, next item, sampled negative), each [B, L], for every training
    sequence. A sequence longer than L + 1 is cut into windows of L next-item steps from its
    end, so no step goes untrained (the authors' code keeps only the last L). Negatives are
    uniform over items the user never interacted with."""

    def __init__(self, train: list[list[int]], n_items: int, max_len: int, seed: int) -> None:
        inputs, positives, owners = [], [], []
        for user, s in enumerate(train):
            for end in range(len(s) - 1, 0, -max_len):
                start = max(end - max_len, 0)
                inputs.append(s[start:end])
                positives.append(s[start + 1 : end + 1])
                owners.append(user)
        self.inputs = pad_left(inputs, max_len)
        self.positives = pad_left(positives, max_len)
        self.owners = np.asarray(owners, dtype=np.int64)
        self.n_items = n_items
        self.rng = np.random.default_rng(seed)
        # Sorted (user * (n + 1) + item) keys: vectorized "did this user interact with i?".
        self.seen = np.unique(
            np.concatenate(
                [np.asarray(s, dtype=np.int64) + u * (n_items + 1) for u, s in enumerate(train)]
            )
        )

    def __len__(self) -> int:
        return len(self.inputs)

    def epoch(self, batch_size: int) -> Iterator[tuple[NDArray[np.int64], ...]]:
        order = self.rng.permutation(len(self.inputs))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            pos = self.positives[rows]
            yield self.inputs[rows], pos, self._negatives(self.owners[rows], pos.shape)

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
