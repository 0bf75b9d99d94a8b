"""The report in a real browser: headless Chromium, networking off, opens index.html and the
evaluation / hypotheses pages, checks that the plotly figures rendered (SVG for 2D plots,
WebGL canvases for 3D), that no script threw, that nothing was fetched, and saves screenshots.

Uses Chromium's own command line (`--dump-dom`, `--screenshot`, console on stderr); skipped
when no chromium binary is installed (`apt-get install chromium`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from diffupose.workbench.reports import run_report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory, chromium) -> Path:
    return run_report("tiny", name="browser", out_root=tmp_path_factory.mktemp("reports"))


@pytest.mark.parametrize("page, min_plots, needs_webgl", [
    ("index.html", 0, False),
    ("03_evaluate.html", 1, False),
    ("05_hypotheses.html", 1, True),
])
def test_page_renders_offline(report, tmp_path, page, min_plots, needs_webgl, chromium):
    url = (report / page).as_uri()
    result = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    console = _console(result.stderr)
    errors = [line for line in console if "Uncaught" in line or "Failed to load resource" in line]
    assert not errors, "\n".join(errors[:5])
    if page == "index.html":
        assert "DiffuPose report" in dom and "03_evaluate.html" in dom
        assert re.search(r"<img[^>]+figures/[^>]+\.png", dom)
    else:
        plots = re.findall(r'<div[^>]+class="[^"]*js-plotly-plot', dom)
        assert len(plots) >= min_plots, f"{page}: {len(plots)} rendered plotly figures"
        assert 'class="main-svg"' in dom, f"{page}: plotly drew no SVG"
        if needs_webgl:
            assert "gl-container" in dom and "<canvas" in dom, f"{page}: no WebGL canvas for the 3D figures"
    if page == "index.html":
        from diffupose.viz import find_export_browser

        info = json.loads((report / "report.json").read_text())
        if find_export_browser() is not None:       # a browser kaleido can drive: real static export
            assert info["static_export"][0]["renderer"] == "kaleido", info["static_export"]
    shot = tmp_path / f"{Path(page).stem}.png"
    result = chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 5000, result.stderr[-2000:]
