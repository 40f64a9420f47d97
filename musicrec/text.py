"""Name normalization: display names and case-folded match keys for joining datasets that
spell the same track differently ("Lose Control (feat. Ciara)" vs "Lose Control")."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

_SPACE = re.compile(r"\s+")
# Featured-artist parts and version suffixes that datasets add or drop inconsistently.
_FEAT = re.compile(r"[\(\[]\s*(feat|ft|featuring|with)\b.*?[\)\]]", re.IGNORECASE)
_FEAT_TAIL = re.compile(r"\s+(feat|ft|featuring)\.?\s.*$", re.IGNORECASE)
_VERSION_TAIL = re.compile(
    r"\s+-\s+.*\b(remaster(ed)?|version|edit|mix|live|mono|stereo|acoustic)\b.*$", re.IGNORECASE
)
_NON_ALNUM = re.compile(r"[\W_]+")


_ODD_SPACE = re.compile(r"\s\s|[^\S ]")  # a run of whitespace, or any whitespace but " "


def clean_name(value: str) -> str:
    """Display form: Unicode NFKC, whitespace collapsed and trimmed."""
    if value.isascii() and not _ODD_SPACE.search(value):
        return value.strip()  # NFKC leaves ASCII as it is: the common case, made cheap
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value)).strip()


@lru_cache(maxsize=262_144)  # artist names repeat across most tracks of a catalog
def match_key(value: str) -> str:
    """Case-folded, accent-free, alphanumerics-only key with featured artists and version
    suffixes removed. Two spellings of one name map to the same key."""
    text = clean_name(value)
    text = _FEAT.sub(" ", text)
    text = _FEAT_TAIL.sub("", text)
    text = _VERSION_TAIL.sub("", text).casefold()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub("", text)


def track_key(artist_name: str, track_name: str) -> str:
    """Join key for a track known only by artist and title."""
    return f"{match_key(artist_name)}|{match_key(track_name)}"


SPOTIFY_TRACK_PREFIX = "spotify:track:"


def spotify_track_uri(value: str) -> str:
    """Accept a bare Spotify id, an open.spotify.com URL or a spotify:track: URI."""
    value = value.strip()
    if value.startswith(SPOTIFY_TRACK_PREFIX):
        return value
    if "open.spotify.com/track/" in value:
        value = value.split("open.spotify.com/track/", 1)[1].split("?", 1)[0]
    return SPOTIFY_TRACK_PREFIX + value


def track_text(name: str, artist: str, album: str | None = None, lyrics: str | None = None) -> str:
    """The text a track is embedded from: "title — artist — album", then the first lines of
    its lyrics when known. Its hash identifies the embedding (text_embedding_id)."""
    parts = [clean_name(name), clean_name(artist)]
    if album:
        parts.append(clean_name(album))
    text = " — ".join(parts)
    if lyrics:
        first_lines = [line.strip() for line in lyrics.splitlines() if line.strip()][:4]
        text += "\n" + "\n".join(first_lines)
    return text


def text_id(text: str) -> str:
    """Stable id of a text (its embedding's cache key)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
