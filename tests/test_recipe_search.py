"""benchmarks/recipe_search.py: trains named recipes, scores them on val, skips logged runs and
tabulates mean ± sd over seeds."""
from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recipe_search(benchmark_script):
    return benchmark_script("recipe_search")


def test_search_logs_scores_skips_and_tabulates(recipe_search, synthetic_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(recipe_search.RECIPES, "tiny-eps", ("tiny", {}))
    monkeypatch.setitem(recipe_search.RECIPES, "tiny-x0", ("tiny", {"diffusion.prediction": "x0"}))
    argv = ["recipe_search.py", "--data", str(synthetic_npz), "--out", str(tmp_path), "--recipes", "tiny-eps,tiny-x0",
            "--steps", "12", "--seeds", "0,1", "--eval-samples", "16", "--set", "train.val_every=6"]
    monkeypatch.setattr(sys, "argv", argv)
    recipe_search.main()
    rows = [json.loads(line) for line in (tmp_path / "recipes.jsonl").read_text().splitlines()]
    assert [(r["recipe"], r["seed"]) for r in rows] == [("tiny-eps", 0), ("tiny-x0", 0), ("tiny-eps", 1), ("tiny-x0", 1)]
    for r in rows:
        assert r["steps"] == 12 and len(r["val_curve_mm"]) == 2
        assert all(r[k] > 0 for k in ("mpjpe_n1", "mpjpe_n10", "p_mpjpe_n1", "p_mpjpe_n10", "oracle_n10"))
        assert r["spread_n10"] >= 0
        assert "train.seed=%d" % r["seed"] in r["overrides"] and "train.val_every=6" in r["overrides"]
    assert json.loads((tmp_path / "tiny-x0-12-s1" / "config.json").read_text())["diffusion"]["prediction"] == "x0"
    table = capsys.readouterr().out
    eps = [r["mpjpe_n10"] for r in rows if r["recipe"] == "tiny-eps"]
    mean, sd = sum(eps) / 2, abs(eps[0] - eps[1]) / 2 ** 0.5
    assert f"| tiny-eps | 12 | 2 |" in table and f"{mean:.1f} ± {sd:.1f}" in table
    # a second call skips what is logged: nothing retrains, the log is unchanged
    before = (tmp_path / "recipes.jsonl").read_text()
    recipe_search.main()
    assert (tmp_path / "recipes.jsonl").read_text() == before


def test_unknown_recipe_is_refused_before_training(recipe_search, synthetic_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["recipe_search.py", "--data", str(synthetic_npz), "--out", str(tmp_path),
                                      "--recipes", "eps,nonsense"])
    with pytest.raises(SystemExit):
        recipe_search.main()
    assert not (tmp_path / "eps-5000-s0").exists()


def test_every_recipe_trains_the_parameterisation_its_name_says(recipe_search):
    """A recipe inheriting the preset's parameterisation trained v under the name `eps` once the
    h36m_cpu preset moved from eps to v; each recipe now pins its own."""
    from diffupose.config import preset

    for name, (preset_name, overrides) in recipe_search.RECIPES.items():
        named = [tok for tok in name.split("-") if tok in ("eps", "x0", "v")]
        assert len(named) == 1, f"recipe {name!r} does not name one parameterisation"
        assert preset(preset_name, overrides).diffusion.prediction == named[0], name
