"""Notebook 08 (uncertainty) executed by papermill with the `tiny` profile after 01 and 02, then
its recorded `uncertainty` section read back; plus the style rules every notebook follows."""
from __future__ import annotations

import json
import math
import re

import nbformat
import pytest

from diffupose.profiles import get_profile
from diffupose.reports import notebook_dir, run_report

pytestmark = pytest.mark.timeout(900)

NAME = "08_uncertainty"


def test_notebook_follows_the_style_rules():
    nb = nbformat.read(str(notebook_dir() / f"{NAME}.ipynb"), as_version=4)
    assert nb.metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs")
            assert not re.search(r"^\s*(def|class) ", cell.source, re.M)
    assert "record_metrics" in [c for c in nb.cells if c.cell_type == "code"][-1].source


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    report = run_report("tiny", name="tiny08", out_root=tmp_path_factory.mktemp("reports"),
                        notebooks=["01_data_prep", "02_train", NAME])
    return report, json.loads((report / "metrics.json").read_text())["uncertainty"]


def test_uncertainty_section(section):
    report, unc = section
    params = get_profile("tiny")["params"]                     # notebook defaults unless the profile sets them
    h = params.get("cache_hypotheses", 50)
    prefixes = {n for n in params.get("hypothesis_prefixes", [1, 5, 10, 20, 50]) if n <= h} | {h}
    assert unc["num_hypotheses"] == h and set(unc["mpjpe_mm"]["mean"]) == {f"N={n}" for n in prefixes}
    assert set(unc["oracle_aggregators"]) == {"oracle_pose", "oracle_joint", "reproject_gt_root"}
    for name, row in unc["mpjpe_mm"].items():
        assert all(math.isfinite(v) and v > 0 for v in row.values()), name
        # N = 1: every aggregator is the single hypothesis
        assert row["N=1"] == pytest.approx(unc["mpjpe_mm"]["mean"]["N=1"])
    # the ORACLE bounds: joint-wise <= pose-wise <= a single hypothesis
    assert unc["mpjpe_mm"]["oracle_joint"][f"N={h}"] <= unc["mpjpe_mm"]["oracle_pose"][f"N={h}"] + 1e-9
    assert unc["mpjpe_mm"]["oracle_pose"][f"N={h}"] <= unc["mpjpe_mm"]["oracle_pose"]["N=1"] + 1e-9
    assert 0 <= unc["calibration_error"] <= 1 and len(unc["calibration"]["fraction"]) == 19
    assert 0 <= unc["pck_150_mean"] <= 100 and 0 <= unc["cps_mm_mean"] <= 300
    assert -1 <= unc["spearman_per_sample"] <= 1
    assert unc["most_ambiguous_joints"] and unc["most_ambiguous_actions"]
    for row in unc["table"]:
        assert row["oracle"] == (row["aggregator"] in unc["oracle_aggregators"])
    assert unc["card"]["oracle"] is False and unc["calibration"]["card"]["oracle"] is False
    assert unc["card"]["dataset"] == "synthetic" and unc["cache_reused"] is False
    for stem in ("08_error_vs_n_per_aggregator", "08_reliability", "08_spread_vs_error", "08_ambiguity"):
        assert (report / "figures" / f"{stem}.png").stat().st_size > 1000, stem
    assert "plotly-graph-div" in (report / f"{NAME}.html").read_text()
