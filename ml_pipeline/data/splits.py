"""Train / validation / test splits of item sequences for next-item evaluation.

Every split gives the training sequences and, for validation and test, one (history, target)
pair per evaluated user, so the same evaluators and baselines run on any of them:

- `leave_one_out`: the SASRec paper's split, per user.
- `temporal_split`: one global timeline cut at two instants (no training on the future).
- `cold_track_split`: a share of tracks held out of training entirely; the targets are those
  tracks (for the cold-start model, which must rank tracks it never saw in training).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ml_pipeline.data.sequences import SequenceData


@dataclass
class Split:
    name: str
    train: list[list[int]]  # one per user (possibly empty)
    valid_users: list[int]
    valid_histories: list[list[int]]
    valid_targets: list[int]
    test_users: list[int]
    test_histories: list[list[int]]
    test_targets: list[int]

    def part(self, name: str) -> tuple[list[int], list[list[int]], list[int]]:
        """(users, histories, targets) of "valid" or "test"."""
        if name == "valid":
            return self.valid_users, self.valid_histories, self.valid_targets
        if name == "test":
            return self.test_users, self.test_histories, self.test_targets
        raise ValueError(f"part must be 'valid' or 'test', got {name!r}")


def leave_one_out(sequences: list[list[int]]) -> Split:
    """Train on all but the last two items, validate on the second last, test on the last (its
    history includes the validation item). Users with fewer than three items are trained on
    whole and not evaluated, as in the authors' code."""
    evaluated = [u for u, s in enumerate(sequences) if len(s) >= 3]
    train = [s[:-2] if len(s) >= 3 else s for s in sequences]
    return Split(
        name="leave-one-out",
        train=train,
        valid_users=evaluated,
        valid_histories=[train[u] for u in evaluated],
        valid_targets=[sequences[u][-2] for u in evaluated],
        test_users=evaluated,
        test_histories=[sequences[u][:-1] for u in evaluated],
        test_targets=[sequences[u][-1] for u in evaluated],
    )


def temporal_split(data: SequenceData, valid_share: float = 0.1, test_share: float = 0.1) -> Split:
    """One timeline for everybody: the last `test_share` of all events (by time) is the test
    period, the `valid_share` before it validation, the rest training. A user is evaluated in a
    period when they have history before it and an event in it; the target is their first
    event of the period, the history everything before the period's start."""
    if data.timestamps is None:
        raise ValueError("a temporal split needs timestamps; this data source has none")
    if not (0 < valid_share and 0 < test_share and valid_share + test_share < 1):
        raise ValueError("need 0 < valid_share, 0 < test_share, valid_share + test_share < 1")
    times = [np.asarray(t, dtype=np.float64) for t in data.timestamps]
    everything = np.concatenate(times)
    valid_from, test_from = np.quantile(everything, [1 - valid_share - test_share, 1 - test_share])

    def period(start: float, end: float) -> tuple[list[int], list[list[int]], list[int]]:
        users, histories, targets = [], [], []
        for u, (items, t) in enumerate(zip(data.sequences, times, strict=True)):
            before = int(np.searchsorted(t, start, side="left"))
            if 0 < before < len(items) and t[before] < end:
                users.append(u)
                histories.append(items[:before])
                targets.append(items[before])
        return users, histories, targets

    train = [
        items[: int(np.searchsorted(t, valid_from, side="left"))]
        for items, t in zip(data.sequences, times, strict=True)
    ]
    valid = period(valid_from, test_from)
    test = period(test_from, np.inf)
    return Split("temporal", train, *valid, *test)


def cold_track_split(data: SequenceData, share: float = 0.1, seed: int = 42) -> Split:
    """Hold out `share` of the items (uniformly at random) from training entirely: training
    sequences skip them. Each user whose sequence has a held-out item after at least one other
    item is evaluated on the last such item, with everything before it as history (other
    held-out items included, as a new listener's history would hold new tracks). Validation
    uses the first such item when the user has two; the cold items are `split.cold_items`."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    cold = np.zeros(data.n_items + 1, dtype=bool)
    cold[1 + rng.permutation(data.n_items)[: max(1, round(share * data.n_items))]] = True
    train: list[list[int]] = []
    valid: tuple[list[int], list[list[int]], list[int]] = ([], [], [])
    test: tuple[list[int], list[list[int]], list[int]] = ([], [], [])
    for u, items in enumerate(data.sequences):
        train.append([i for i in items if not cold[i]])
        positions = [p for p, i in enumerate(items) if cold[i] and p > 0]
        chosen = [(test, positions[-1])] if positions else []
        if len(positions) > 1:
            chosen.append((valid, positions[0]))
        for (users, histories, targets), p in chosen:
            users.append(u)
            histories.append(items[:p])
            targets.append(items[p])
    return ColdTrackSplit("cold-track", train, *valid, *test, cold_items=np.flatnonzero(cold))


@dataclass
class ColdTrackSplit(Split):
    cold_items: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))


SPLITS = ("leave-one-out", "temporal", "cold-track")


def make_split(name: str, data: SequenceData) -> Split:
    """The evaluation split a command names (cold-track: 10% of the tracks held out)."""
    if name == "leave-one-out":
        return leave_one_out(data.sequences)
    if name == "temporal":
        return temporal_split(data)
    if name == "cold-track":
        return cold_track_split(data)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
