"""benchmarks/card_commands.py: it runs each card's evaluate command on the right file and says
whether the numbers agree (the evaluate runs themselves are replaced here by their JSON)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffupose.inference import zoo


@pytest.fixture(scope="module")
def card_commands(benchmark_script):
    return benchmark_script("card_commands")


def test_a_missing_prepared_file_is_refused_before_any_run(card_commands, tmp_path, monkeypatch):
    monkeypatch.setattr(card_commands.subprocess, "run", lambda *a, **k: pytest.fail("ran before checking files"))
    with pytest.raises(SystemExit, match=r"h36m[/\\]data.npz: no prepared file for h36m"):
        card_commands.main(["--work", str(tmp_path), "--models", "h36m"])


@pytest.mark.parametrize("offset, code", [(0.0, 0), (0.5, 1)])
def test_each_command_runs_on_the_given_file_and_is_compared(card_commands, tmp_path, monkeypatch, capsys,
                                                              offset, code):
    data = tmp_path / "he.npz"
    data.write_bytes(b"")
    rows = zoo.card("humaneva")["val_results"]
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        row = rows[len(seen) - 1]
        out = Path(cmd[cmd.index("--json") + 1])
        out.write_text(json.dumps({"per_action": {"MPJPE": {"Average": row["mpjpe"] + offset},
                                                  "P-MPJPE": {"Average": row["p_mpjpe"]}}}))

    monkeypatch.setattr(card_commands.subprocess, "run", fake_run)
    assert card_commands.main(["--models", "humaneva", "--data", f"humaneva={data}"]) == code
    assert len(seen) == len(rows) and all(str(data) in cmd and "data.npz" not in cmd for cmd in seen)
    assert all(cmd[cmd.index("--hypotheses") + 1] == str(r["num_hypotheses"]) for cmd, r in zip(seen, rows))
    table = capsys.readouterr().out
    assert table.count("| humaneva |") == len(rows) and ("| NO |" in table) == bool(code)
