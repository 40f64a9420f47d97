"""What a track says about taste beyond its identity: its artist's genres, moods and eras, and
the mood of its sound. The graph's nodes are made of these, and tracks are scored against a
graph by them.

Where do an artist's genres come from, when the catalog has almost none (the MPD has no genres,
and the audio-feature files with a genre cover a few percent of its tracks)? From the names
listeners give the playlists the artist is in: "country", "90s rock", "workout" — the MPD's own
folksonomy. A small lexicon maps name words to genre, mood and era labels; an artist's weight for
a label is the share of its named playlists that carry it (smoothed, so one playlist is weak
evidence). A track's own genre, where the catalog has one, counts as well. The mood of the
sound comes from the audio features (energy and valence quadrants), where a track has them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from inference.interest_graph.schema import NodeKind

# Label -> the playlist-name words that stand for it.
LEXICON: dict[NodeKind, dict[str, set[str]]] = {
    "genre": {
        "country": {"country", "bluegrass"},
        "rock": {"rock", "grunge"},
        "alternative & indie": {"alternative", "alt", "indie"},
        "punk & emo": {"punk", "emo", "screamo"},
        "metal": {"metal", "metalcore"},
        "pop": {"pop"},
        "k-pop": {"kpop"},
        "hip hop": {"rap", "hop", "hiphop", "trap"},
        "r&b & soul": {"r&b", "rnb", "soul", "motown"},
        "electronic": {"edm", "house", "techno", "dubstep", "trance", "electronic", "electro"},
        "latin": {"latin", "latino", "reggaeton", "salsa", "bachata", "spanish", "musica"},
        "christian": {"worship", "christian", "jesus", "gospel", "praise", "church", "hymns"},
        "jazz & blues": {"jazz", "blues", "swing"},
        "classical": {"classical", "orchestra", "piano", "instrumental"},
        "folk & acoustic": {"folk", "acoustic", "singer", "songwriter"},
        "reggae": {"reggae", "ska"},
        "funk & disco": {"funk", "disco", "groove"},
        "holiday": {"christmas", "xmas", "holiday", "holidays"},
        "soundtrack": {"disney", "soundtrack", "broadway", "musicals", "musical"},
    },
    "mood": {
        "chill": {"chill", "chillin", "calm", "relax", "relaxing", "mellow", "lofi", "coffee"},
        "focus & sleep": {"study", "studying", "sleep", "sleepy", "focus", "reading"},
        "party": {"party", "lit", "turnt", "hype", "pregame", "bangers", "dance", "dancing"},
        "workout": {"workout", "gym", "running", "run", "pump", "lifting", "cardio"},
        "sad": {"sad", "melancholy", "feels", "heartbreak", "crying", "cry"},
        "happy": {"happy", "sunshine", "upbeat", "smile"},
        "romantic": {"love", "romantic", "sexy", "wedding", "romance"},
        "road trip": {"road", "roadtrip", "drive", "driving", "car", "trip"},
    },
    "era": {
        "1960s": {"60s", "60"},
        "1970s": {"70s", "70"},
        "1980s": {"80s", "80"},
        "1990s": {"90s", "90"},
        "2000s": {"2000s", "00s"},
        "oldies & classics": {"oldies", "oldie", "classic", "classics"},
        "throwback": {"throwback", "throwbacks", "tbt", "nostalgia"},
    },
}
_WORD_LABELS: dict[str, list[tuple[NodeKind, str]]] = defaultdict(list)
for _kind, _labels in LEXICON.items():
    for _label, _words in _labels.items():
        for _word in _words:
            _WORD_LABELS[_word].append((_kind, _label))
_WORD = re.compile(r"[a-z0-9&]+")
_YEAR = re.compile(r"^(19[5-9]\d|20[0-2]\d)$")
# A label seen once among an artist's named playlists is weak evidence: weights are
# count / (named playlists + SMOOTHING).
SMOOTHING = 2.0

# Sound moods from audio features: (energy high?, valence high?) -> label.
SOUND_MOODS = {
    (True, True): "energetic & bright",
    (True, False): "energetic & dark",
    (False, True): "calm & warm",
    (False, False): "calm & melancholic",
}
HIGH_ENERGY, HIGH_VALENCE = 0.6, 0.5


def name_labels(name: str) -> set[tuple[NodeKind, str]]:
    """The (kind, label) pairs a playlist (or genre) name carries: "90s Rock!" -> rock, 1990s."""
    labels: set[tuple[NodeKind, str]] = set()
    for word in _WORD.findall(name.lower()):
        labels.update(_WORD_LABELS.get(word, ()))
        if _YEAR.match(word):
            labels.add(("era", f"{word[:3]}0s"))
    return labels


def sound_mood(energy: float | None, valence: float | None) -> str | None:
    if energy is None or valence is None:
        return None
    return SOUND_MOODS[(energy >= HIGH_ENERGY, valence >= HIGH_VALENCE)]


@dataclass
class Facets:
    """Labels per artist (by artist match key) and sound mood per track (by URI), and which
    artists are listened to together (playlists shared), for the graph's artist edges."""

    artist_labels: dict[str, dict[tuple[NodeKind, str], float]]
    track_artist: dict[str, str]
    track_genre: dict[str, str] = field(default_factory=dict)
    track_mood: dict[str, str] = field(default_factory=dict)
    artist_index: dict[str, int] = field(default_factory=dict)
    artist_playlists: sparse.csr_matrix | None = None  # artists x playlists, 1 = artist in it

    @classmethod
    def build(
        cls,
        memberships: Iterable[tuple[str, str, str]],
        tracks: Iterable[tuple[str, str, str | None, float | None, float | None]],
    ) -> Facets:
        """`memberships`: (playlist key, playlist name, artist key), one per playlist track;
        `tracks`: (uri, artist key, genre, energy, valence)."""
        playlists: dict[str, int] = {}
        artist_index: dict[str, int] = {}
        named: Counter[str] = Counter()
        counts: dict[str, Counter[tuple[NodeKind, str]]] = defaultdict(Counter)
        pairs: set[tuple[int, int]] = set()
        label_cache: dict[str, set[tuple[NodeKind, str]]] = {}
        for playlist, name, artist in memberships:
            p = playlists.setdefault(playlist, len(playlists))
            a = artist_index.setdefault(artist, len(artist_index))
            if (a, p) in pairs:
                continue
            pairs.add((a, p))
            if name not in label_cache:
                label_cache[name] = name_labels(name)
            if labels := label_cache[name]:
                named[artist] += 1
                counts[artist].update(labels)
        artist_labels = {
            artist: {label: n / (named[artist] + SMOOTHING) for label, n in found.items()}
            for artist, found in counts.items()
        }
        rows, cols = zip(*pairs, strict=True) if pairs else ((), ())
        incidence = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(artist_index), len(playlists)),
        )
        facets = cls(artist_labels, {}, artist_index=artist_index, artist_playlists=incidence)
        for uri, artist, genre, energy, valence in tracks:
            facets.track_artist[uri] = artist
            if genre:
                genre_labels = [label for kind, label in name_labels(genre) if kind == "genre"]
                facets.track_genre[uri] = genre_labels[0] if genre_labels else genre.lower()
            if mood := sound_mood(energy, valence):
                facets.track_mood[uri] = mood
        return facets

    def labels(self, uri: str) -> dict[tuple[NodeKind, str], float]:
        """A track's (kind, label) weights: its artist's, its own genre and its sound mood."""
        found = dict(self.artist_labels.get(self.track_artist.get(uri, ""), {}))
        if genre := self.track_genre.get(uri):
            found[("genre", genre)] = 1.0
        if mood := self.track_mood.get(uri):
            found[("mood", mood)] = 1.0
        return found

    def co_listening(self, artists: list[str]) -> np.ndarray:
        """Jaccard similarity of the artists' playlist sets (0 for artists not seen)."""
        n = len(artists)
        if self.artist_playlists is None or n == 0:
            return np.zeros((n, n))
        index = [self.artist_index.get(a, -1) for a in artists]
        known = [i for i in index if i >= 0]
        block = self.artist_playlists[known]
        shared = (block @ block.T).toarray()
        sizes = np.asarray(block.sum(axis=1)).ravel()
        union = sizes[:, None] + sizes[None, :] - shared
        jaccard = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        out = np.zeros((n, n))
        positions = [i for i, a in enumerate(index) if a >= 0]
        out[np.ix_(positions, positions)] = jaccard
        return out
