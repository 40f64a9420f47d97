"""ONNX export of SASRec (ml_pipeline.export.onnx): the fp32 graph scores like torch, the int8
graph keeps torch's ranking, any batch size runs, padding is never recommended, and the command
writes its parity check or fails on bad input with one line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from ml_pipeline.data.sequences import SequenceData, load_interaction_file, pad_left
from ml_pipeline.data.splits import Split
from ml_pipeline.export.onnx import (
    SCORING_WEIGHT,
    OnnxScorer,
    app,
    export_onnx,
    op_counts,
    quantize_int8,
    top_items,
)
from ml_pipeline.export.parity import parity
from ml_pipeline.models.sasrec import SASRec, SASRecConfig
from ml_pipeline.training.train_transformer import train_sasrec
from tests.ml_pipeline.chain_data import chain_data

MAX_LEN, K = 10, 10
runner = CliRunner()


@dataclass
class Exported:
    model: SASRec
    data: SequenceData
    split: Split
    data_file: Path
    checkpoint: Path
    fp32: Path
    int8: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A SASRec that learned the chain data (read back from a `user item` file, as the command
    reads it), saved, and exported to fp32 and int8 graphs with an in-graph top 10."""
    tmp = tmp_path_factory.mktemp("onnx")
    chain = chain_data()
    data_file = tmp / "chain.txt"
    data_file.write_text(
        "".join(
            f"{user} {chain.vocabulary[item]}\n"
            for user, items in zip(chain.users, chain.sequences, strict=True)
            for item in items
        )
    )
    data = load_interaction_file(data_file)
    config = SASRecConfig(
        n_items=data.n_items, max_seq_len=MAX_LEN, embedding_dim=32, dropout=0.1, lr=0.01
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: a second thread only adds synchronisation
    try:
        result = train_sasrec(data, config, epochs=10, batch_size=64, eval_every=0)
    finally:
        torch.set_num_threads(threads)
    checkpoint = tmp / "model.pt"
    result.model.save(checkpoint, data.vocabulary)
    fp32 = export_onnx(result.model, tmp / "model.onnx", top_k=K)
    int8 = quantize_int8(fp32, tmp / "model.int8.onnx")
    return Exported(result.model, data, result.split, data_file, checkpoint, fp32, int8)


def _torch_scores(model: SASRec, seqs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.full_sort_scores(torch.from_numpy(seqs)).numpy()


def test_fp32_graph_scores_like_torch(exported: Exported) -> None:
    seqs = pad_left([*exported.split.test_histories, [], [1]], MAX_LEN)  # + empty, 1 item
    onnx_scores = OnnxScorer(exported.fp32).full_sort_scores(seqs)
    torch_scores = _torch_scores(exported.model, seqs)
    assert onnx_scores.shape == torch_scores.shape == (len(seqs), exported.data.n_items + 1)
    np.testing.assert_allclose(onnx_scores[:, 1:], torch_scores[:, 1:], rtol=0, atol=1e-4)
    assert np.isneginf(onnx_scores[:, 0]).all()


def test_int8_graph_keeps_torch_ranking(exported: Exported) -> None:
    split, n_items = exported.split, exported.data.n_items
    check = parity(
        exported.model, OnnxScorer(exported.int8), split.test_histories, split.test_targets, n_items
    )
    assert check["torch"]["ndcg@10"] > 0.5  # learned the chains: a ranking worth comparing
    assert check["top10_overlap"] >= 0.9
    assert check["ndcg@10_relative_loss"] <= 0.01

    # ... and the int8 graph really scores with int8 weights.
    ops = op_counts(exported.int8)
    assert ops["MatMulInteger"] == 1 and ops["DynamicQuantizeLinear"] == 1
    weights = {t.name: t for t in onnx.load(str(exported.int8)).graph.initializer}
    quantized = numpy_helper.to_array(weights[f"{SCORING_WEIGHT}_quantized"])
    assert quantized.dtype == np.int8 and quantized.shape == (32, n_items + 1)
    assert SCORING_WEIGHT not in weights  # no float copy left
    seqs = pad_left(split.test_histories, MAX_LEN)
    fp32_scores = OnnxScorer(exported.fp32).full_sort_scores(seqs)
    int8_scores = OnnxScorer(exported.int8).full_sort_scores(seqs)
    assert (
        0
        < np.abs(int8_scores[:, 1:] - fp32_scores[:, 1:]).max()
        < 0.05 * np.abs(fp32_scores[:, 1:]).max()
    )


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("graph", ["fp32", "int8"])
def test_any_batch_size_and_padding_never_in_top_k(
    exported: Exported, batch: int, graph: str
) -> None:
    scorer = OnnxScorer(getattr(exported, graph))
    n_items = exported.data.n_items
    seqs = pad_left([[], *exported.split.test_histories][:batch], MAX_LEN)
    scores = scorer.full_sort_scores(seqs)
    assert scores.shape == (batch, n_items + 1) and not np.isnan(scores).any()

    values, items = scorer.top_k(seqs, K)  # the graph's own TopK
    assert values.shape == items.shape == (batch, K)
    assert (items >= 1).all() and (items <= n_items).all()
    assert (np.diff(values, axis=1) <= 0).all()
    np.testing.assert_array_equal(values, np.take_along_axis(scores, items, axis=1))
    expected = top_items(scores, K)
    for got_row, expected_row in zip(items, expected, strict=True):
        assert set(got_row) == set(expected_row)

    _, every = scorer.top_k(seqs, n_items)  # beyond the graph's k: ranked from the scores
    assert (np.sort(every, axis=1) == np.arange(1, n_items + 1)).all()


def test_command_exports_and_writes_parity(exported: Exported, tmp_path: Path) -> None:
    out = tmp_path / "parity.json"
    args = [str(exported.checkpoint), "--output-dir", str(tmp_path / "graphs")]
    result = runner.invoke(app, [*args, "--data", str(exported.data_file), "--results", str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "graphs" / "model.onnx").is_file()
    assert (tmp_path / "graphs" / "model.int8.onnx").is_file()
    document = json.loads(out.read_text())
    assert document["dataset"] == "chain" and document["model"] == "sasrec"
    assert set(document["metrics"]) == {"torch", "fp32", "int8"}
    assert document["metrics"]["fp32"]["ndcg@10"] == pytest.approx(
        document["metrics"]["torch"]["ndcg@10"], abs=1e-3
    )
    assert document["overlap"]["fp32"]["top10"] >= 0.99
    assert document["overlap"]["int8"]["targets_met"] is True
    assert document["commit"] and document["seconds"] >= 0


def test_command_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"model": "other"}, other)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for path, message in [
        (tmp_path / "nope.pt", "nope.pt: no such checkpoint file"),
        (other, "other.pt: not a SASRec checkpoint"),
        (text, "notes.pt: not a SASRec checkpoint"),
    ]:
        result = runner.invoke(app, [str(path)])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output
        assert lines[0].startswith("error:")


def test_command_refuses_data_of_another_vocabulary(exported: Exported, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("u1 a\nu1 b\nu1 c\n")
    graphs = tmp_path / "graphs"
    args = [str(exported.checkpoint), "--data", str(other), "--output-dir", str(graphs)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "other.txt: its items are not the checkpoint's vocabulary" in result.output
    assert not graphs.exists()  # refused before exporting anything
