"""infra/README.md's Redis sizing table is the measured result (results/benchmarks/
redis_sizing.json) worked out: per-key sizes, the formula and every row."""

from __future__ import annotations

import json
import re

from musicrec.config import REPO_ROOT

README = REPO_ROOT / "infra" / "README.md"
RESULT = REPO_ROOT / "results" / "benchmarks" / "redis_sizing.json"
HEADROOM = 1.5


def number(text: str) -> float:
    return float(text.replace(",", ""))


def table_rows(header_start: str) -> list[list[str]]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_sizing_table_is_the_measured_result() -> None:
    result = json.loads(RESULT.read_text())
    per_key = result["per_key"]
    pairs = result["pairs_per_listener"]
    per_listener, per_track, per_pair = (
        per_key[kind]["mean_bytes"] for kind in ("user", "track", "pair")
    )
    rows = table_rows("| listeners | tracks |")
    assert len(rows) == len(result["sizing"]) >= 3
    for row, measured in zip(rows, result["sizing"], strict=True):
        users, tracks, gib, provision = (number(cell) for cell in row)
        assert (users, tracks) == (measured["users"], measured["tracks"])
        expected = (users * per_listener + tracks * per_track + users * pairs * per_pair) / 2**30
        assert gib == measured["gib"] == round(expected, 1)
        assert provision == round(expected * HEADROOM, 1)
    sizes = {row[0]: number(row[2]) for row in table_rows("| key | holds")}
    assert sizes == {
        "listener": int(per_listener + 0.5),  # rounded half up, as written
        "track": int(per_track + 0.5),
        "listener–track pair": int(per_pair + 0.5),
    }
    text = README.read_text()
    assert f"({pairs} in the MPD data" in text and f"P = {pairs}" in text
    overhead = result["used_memory_delta_bytes"] / result["sum_of_keys_bytes"] - 1
    assert re.search(rf"overhead measured\s+{overhead * 100:.1f}%", text)
