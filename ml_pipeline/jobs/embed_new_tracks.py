"""Give tracks added to the catalog after training a place in the hybrid model, without
retraining: embed their texts (cached), add them as text-only items with an ID part lent by
their nearest trained neighbour, and rewrite the serving model and its ONNX graphs.

    musicrec embed-new-tracks var/models/hybrid.pt
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from musicrec.config import Settings
from musicrec.errors import UserError


@dataclass(frozen=True)
class EmbedReport:
    added: int
    embedded: int  # texts that were not in the cache
    items: int  # the serving table's size now
    written: list[Path]


def embed_new_tracks(
    checkpoint: Path, engine: Engine, settings: Settings, onnx: bool = True
) -> EmbedReport:
    """Add every catalog track the model does not know; rewrite the checkpoint (atomically)
    and the serving model beside it."""
    # torch, pandas, the tokenizer: imported when the job runs, not for the CLI's --help
    from ml_pipeline.data.track_texts import texts_from_database
    from ml_pipeline.export.serving import export_serving
    from ml_pipeline.models.hybrid import HybridSASRec
    from ml_pipeline.models.text_encoder import TextEncoder, embed_texts

    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: no such checkpoint")
    try:
        model, vocabulary, extra = HybridSASRec.load(checkpoint)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{checkpoint}: not a hybrid model checkpoint ({exc})") from exc
    known = set(vocabulary)
    texts = {uri: t for uri, t in texts_from_database(engine).items() if uri not in known}
    uris = sorted(texts)
    written: list[Path] = []
    embedded = 0
    if uris:
        encoder = TextEncoder(settings.text_encoder_path)
        if encoder.dim != model.config.text_dim:
            raise UserError(
                f"the text encoder gives {encoder.dim}-d vectors, the model was trained on "
                f"{model.config.text_dim}-d: use the encoder it was trained with"
            )
        assert settings.embedding_cache_dir is not None  # the settings derive it
        vectors, embedded = embed_texts(
            [texts[u] for u in uris], encoder, settings.embedding_cache_dir, progress=True
        )
        model.add_items(vectors)
        model.impute_ids()
        vocabulary = [*vocabulary, *uris]
        partial = checkpoint.with_suffix(".pt.partial")
        model.save(partial, vocabulary, {k: v for k, v in extra.items() if k == "dataset"})
        partial.replace(checkpoint)
        written = [checkpoint, *(export_serving(model, checkpoint, vocabulary) if onnx else [])]
    return EmbedReport(len(uris), embedded, model.config.n_items, written)


def command(
    checkpoint: Annotated[Path, typer.Argument(help="the hybrid model's checkpoint")],
    onnx: Annotated[bool, typer.Option(help="rewrite the serving ONNX graphs too")] = True,
) -> None:
    """Add catalog tracks that arrived after training to the hybrid model, from their text."""
    from musicrec.config import get_settings
    from musicrec.console import cli_errors, console
    from musicrec.db.engine import make_engine

    with cli_errors():
        settings = get_settings()
        report = embed_new_tracks(checkpoint, make_engine(settings=settings), settings, onnx)
    console.print(
        f"{report.added:,} new tracks ({report.embedded:,} texts embedded, the rest cached); "
        f"the model now ranks {report.items:,} tracks"
    )
    for path in report.written:
        console.print(f"  wrote {path}")


if __name__ == "__main__":
    typer.run(command)
