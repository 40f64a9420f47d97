"""The text of every track a model knows ("title — artist — album" + first lyric lines, as
`musicrec.text.track_text` builds it), from MPD files or the database, and its embedding matrix
in the model's item order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select

from ml_pipeline.data.sequences import SequenceData, is_mpd_source
from ml_pipeline.models.text_encoder import TextEncoder, embed_texts
from musicrec.config import Settings, get_settings
from musicrec.db.models import Artist, Track
from musicrec.errors import UserError
from musicrec.text import track_text


def texts_from_mpd(paths: list[Path]) -> dict[str, str]:
    from ml_pipeline.ingest.errors import IngestError
    from ml_pipeline.ingest.mpd import mpd_files, parse_file

    texts: dict[str, str] = {}
    try:
        for path in mpd_files(paths):
            for uri, t in parse_file(path).batch.tracks.items():
                texts.setdefault(uri, track_text(t.name, t.artist_name, t.album_name))
    except IngestError as exc:
        raise UserError(str(exc)) from exc
    return texts


def texts_from_database(engine: Engine) -> dict[str, str]:
    """Track URI -> text for every track of the catalog."""
    query = select(Track.spotify_uri, Track.name, Artist.name, Track.album_name, Track.lyrics).join(
        Artist, Artist.id == Track.artist_id
    )
    with engine.connect() as conn:
        return {
            uri: track_text(name, artist, album, lyrics)
            for uri, name, artist, album, lyrics in conn.execute(query)
        }


def track_names(engine: Engine, uris: list[str]) -> dict[str, tuple[str, str]]:
    """Track URI -> (title, artist) for the catalog's tracks among `uris`."""
    query = select(Track.spotify_uri, Track.name, Artist.name).join(
        Artist, Artist.id == Track.artist_id
    )
    with engine.connect() as conn:
        rows = conn.execute(query.where(Track.spotify_uri.in_(uris))).all()
    return {uri: (name, artist) for uri, name, artist in rows}


def load_track_texts(source: Path | None, engine: Engine | None = None) -> dict[str, str]:
    """Texts for the data a command names: an MPD folder or slice, or the database."""
    if source is None:
        if engine is None:
            raise ValueError("no source: give a path or an engine")
        return texts_from_database(engine)
    if is_mpd_source(source):
        return texts_from_mpd([source])
    raise UserError(
        f"{source}: a `user item` file has no track names; text-based models need MPD data "
        "or the database"
    )


def text_matrix(
    vocabulary: list[str],
    texts: dict[str, str],
    encoder: TextEncoder,
    cache_dir: Path,
    progress: bool = False,
) -> NDArray[np.float32]:
    """[len(vocabulary), dim] embeddings in item order; row 0 (padding) is zeros."""
    missing = [key for key in vocabulary[1:] if key not in texts]
    if missing:
        raise UserError(f"{len(missing)} items have no text, e.g. {missing[0]!r}")
    vectors, _ = embed_texts([texts[k] for k in vocabulary[1:]], encoder, cache_dir, progress)
    return np.vstack([np.zeros((1, encoder.dim), np.float32), vectors])


def item_text_matrix(
    data: SequenceData, source: Path | None, settings: Settings | None = None
) -> NDArray[np.float32]:
    """The text embeddings of a loaded dataset's items (rows in item order, row 0 zeros), with
    the encoder and cache the settings name; without `source`, texts from their database."""
    from musicrec.db.engine import make_engine

    settings = settings or get_settings()
    texts = load_track_texts(source, None if source else make_engine(settings=settings))
    encoder = TextEncoder(settings.text_encoder_path)
    assert settings.embedding_cache_dir is not None  # the settings derive it
    return text_matrix(data.vocabulary, texts, encoder, settings.embedding_cache_dir, True)
