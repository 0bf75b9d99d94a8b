"""The report's first page: index.html, and report.json beside it.

`write_index(report_dir, info)` is called before the first notebook and after each one, so the
page always shows where the report stands: status and failure, a warning when the training
stopped at its time cap (the run's `run_card.json`), the notebooks with their wall times and
links, a headline per metrics.json section, the figures, and the provenance (commit, seed,
machine, library versions, run config, parameters).
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from .assets import write_page
from .tables import TABLE_CSS, format_cell

__all__ = ["write_index", "read_run_card", "time_cap_text"]

RUN_CARD = "run_card.json"      # written by train() into the run folder


_INDEX_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.status-ok{color:#18794e;font-weight:600}.status-failed{color:#c62828;font-weight:600}
.status-skipped{color:#777}
.error{background:#fff0f0;border:1px solid #f3b5b5;padding:.6em;border-radius:4px;white-space:pre-wrap}
.timecap{background:#fff8e1;border:1px solid #f0c36d;padding:.6em;border-radius:4px;font-size:15px}
.status-incomplete{color:#b26a00;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;width:22em}
.figs img{max-width:100%;border:1px solid #ddd}.figs figcaption{font-size:12px}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}
table.kv td{padding:.15em .8em .15em 0;vertical-align:top}
"""


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _headline(section: dict[str, Any]) -> str:
    """A few scalar numbers of one metrics section, for the index."""
    parts = []
    flat: list[tuple[str, Any]] = []
    for key, value in section.items():
        if isinstance(value, dict) and key != "card" and len(value) <= 6:
            flat += [(f"{key}[{k}]", v) for k, v in value.items()]
        else:
            flat.append((key, value))
    for key, value in flat:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} = {format_cell(float(value) if isinstance(value, float) else value, '{:.4g}')}")
        if len(parts) >= 10:
            break
    return "; ".join(parts)


def write_index(report_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write report_dir/index.html (and report.json) from the report's `info` dict: profile,
    name, status, notebooks (name, status, wall_time_s, html, ipynb, error), parameters, config,
    environment, total time. Figures are listed from report_dir/figures; the training run's
    card (`run_card.json` in the `run_dir` parameter, when the run has one) goes into
    report.json as `run_card`, and a training stopped by its time cap is said at the top."""
    report_dir = Path(report_dir)
    run_card = read_run_card(info)
    lines = (_index_header(info, run_card) + _index_notebooks(info) + _index_numbers(report_dir)
             + _index_figures(report_dir) + _index_provenance(info))
    record = {**info, "run_card": run_card} if run_card is not None else info
    write_page(report_dir / "report.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    path = report_dir / "index.html"
    write_page(path, "\n".join(lines))
    return path


def read_run_card(info: dict[str, Any]) -> dict[str, Any] | None:
    """The report's training run card (run_dir/run_card.json, written by train()), or None when
    the report has no run (yet) or the card cannot be read."""
    run_dir = (info.get("parameters") or {}).get("run_dir")
    if not run_dir:
        return None
    path = Path(str(run_dir)) / RUN_CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return card if isinstance(card, dict) else None


def time_cap_text(run_card: dict[str, Any] | None) -> str | None:
    """One sentence when the training stopped at its time cap (`train.max_minutes`), e.g.
    "Training stopped by the time cap at step 21,400 of 30,000 (45 min): the model is
    undertrained."; None when it did not (or nothing says so)."""
    if not run_card or run_card.get("stopped_by_time_cap") is not True:
        return None
    steps, max_steps, minutes = (run_card.get(k) for k in ("steps", "max_steps", "max_minutes"))
    number = (int, float)
    at = f" at step {int(steps):,}" if isinstance(steps, number) else ""
    of = f" of {int(max_steps):,}" if at and isinstance(max_steps, number) and max_steps > 0 else ""
    cap = f" ({float(minutes):g} min)" if isinstance(minutes, number) and minutes > 0 else ""
    return f"Training stopped by the time cap{at}{of}{cap}: the model is undertrained."


def _index_header(info: dict[str, Any], run_card: dict[str, Any] | None = None) -> list[str]:
    """The index's head, title, status line, the time-cap warning and the failure (if any), and
    the static-figure renderer."""
    esc = html.escape
    status = info.get("status", "running")
    lines = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DiffuPose report {esc(info.get('name', ''))}</title>"
             f"<style>{_INDEX_CSS}</style></head><body>",
             f"<h1>DiffuPose report: {esc(str(info.get('name', '')))}</h1>",
             f"<p>Profile <b>{esc(str(info.get('profile')))}</b> — {esc(str(info.get('description', '')))}. "
             f"Status: <span class='status-{esc(status)}'>{esc(status)}</span>. "
             f"Started {esc(str(info.get('started', '')))}; total wall time {_fmt_seconds(info.get('total_wall_time_s'))}.</p>"]
    cap = time_cap_text(run_card)
    if cap:
        lines.append(f"<div class='timecap'><strong>{esc(cap)}</strong> Running the same report again "
                     "continues its training from the last checkpoint.</div>")
    if info.get("error"):
        lines.append(f"<div class='error'><b>Failure</b>: {esc(info['error'])}</div>")
    lines.append(f"<p>Static figures (PNG/SVG under <code>figures/</code>): {esc(_static_export_text(info))}. "
                 "Pages and interactive figures load plotly.js from this folder "
                 "(<code>plotly.min.js</code>); nothing is fetched from the network.</p>")
    return lines


def _index_notebooks(info: dict[str, Any]) -> list[str]:
    """The table of notebooks: status, wall time and links to the HTML and executed notebook."""
    esc = html.escape
    lines = ["<h2>Notebooks</h2><table class='dp-table'><thead><tr><th>notebook</th><th>status</th>"
             "<th>wall time</th><th>HTML</th><th>executed notebook</th></tr></thead><tbody>"]
    for nb in info.get("notebooks", []):
        link = (f"<a href='{esc(nb['html'])}'>{esc(nb['html'])}</a>" if nb.get("html") else "–")
        ipynb = (f"<a href='{esc(nb['ipynb'])}'>{esc(nb['ipynb'])}</a>" if nb.get("ipynb") else "–")
        lines.append(f"<tr><td>{esc(nb['name'])}</td><td class='status-{esc(nb['status'])}'>{esc(nb['status'])}</td>"
                     f"<td>{_fmt_seconds(nb.get('wall_time_s'))}</td><td>{link}</td><td>{ipynb}</td></tr>")
    lines.append(f"<tr><td><b>total</b></td><td></td><td><b>{_fmt_seconds(info.get('total_wall_time_s'))}</b></td>"
                 "<td></td><td></td></tr></tbody></table>")
    lines.append(TABLE_CSS)
    return lines


def _index_numbers(report_dir: Path) -> list[str]:
    """A headline per metrics.json section (nothing before the first notebook records any)."""
    esc = html.escape
    metrics_path = report_dir / "metrics.json"
    if not metrics_path.exists():
        return []
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError:
        metrics = {}
    lines = ["<h2>Numbers</h2><p>All numbers: <a href='metrics.json'>metrics.json</a> "
             "(one section per notebook, each with its protocol card).</p><table class='kv'>"]
    for section, values in metrics.items():
        if isinstance(values, dict):
            lines.append(f"<tr><td><b>{esc(section)}</b></td><td>{esc(_headline(values))}</td></tr>")
    lines.append("</table>")
    return lines


def _index_figures(report_dir: Path) -> list[str]:
    """A thumbnail per figures/*.png, linking its PNG and any SVG / HTML copy."""
    esc = html.escape
    figures = sorted((report_dir / "figures").glob("*.png")) if (report_dir / "figures").is_dir() else []
    if not figures:
        return []
    lines = ["<h2>Figures</h2><div class='figs'>"]
    for png in figures:
        links = [f"<a href='figures/{esc(png.name)}'>PNG</a>"]
        for ext in ("svg", "html"):
            if png.with_suffix(f".{ext}").exists():
                links.append(f"<a href='figures/{esc(png.stem)}.{ext}'>{ext.upper()}</a>")
        lines.append(f"<figure><a href='figures/{esc(png.name)}'><img src='figures/{esc(png.name)}' "
                     f"alt='{esc(png.stem)}'></a><figcaption>{esc(png.stem)} — {' · '.join(links)}"
                     "</figcaption></figure>")
    lines.append("</div>")
    return lines


def _index_provenance(info: dict[str, Any]) -> list[str]:
    """Git commit, seed, machine and library versions, the run config and the parameters; the
    page's closing lines."""
    esc = html.escape
    env = info.get("environment", {})
    versions = env.get("versions", {})
    lines = ["<h2>Provenance</h2><table class='kv'>"
             f"<tr><td>git commit</td><td><code>{esc(str(env.get('git_commit')))}</code></td></tr>"
             f"<tr><td>seed</td><td>{esc(str(info.get('seed')))}</td></tr>"
             f"<tr><td>python</td><td>{esc(str(env.get('python')))}</td></tr>"
             f"<tr><td>platform</td><td>{esc(str(env.get('platform')))}</td></tr>"
             f"<tr><td>device</td><td>{esc(str(env.get('cuda') or 'cpu'))} "
             f"({esc(str(env.get('num_threads')))} threads)</td></tr>"
             + "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in versions.items())
             + "</table>"]
    if info.get("config") is not None:
        lines.append("<h2>Run config</h2><pre>" + esc(json.dumps(info["config"], indent=2, sort_keys=True)) + "</pre>")
    lines.append("<h2>Parameters</h2><p>Profile parameters after <code>--set</code> overrides "
                 "(each notebook receives the ones its <code>parameters</code> cell declares):</p><pre>"
                 + esc(json.dumps(info.get("parameters", {}), indent=2, sort_keys=True, default=str)) + "</pre>")
    lines.append("<p>Machine-readable: <a href='report.json'>report.json</a>.</p></body></html>")
    return lines


def _static_export_text(info: dict[str, Any]) -> str:
    """The renderer(s) the notebooks' kernels used for static figures, in words."""
    used = info.get("static_export") or []
    if not used:
        return "none written yet"
    parts = []
    for item in used:
        if item.get("renderer") == "kaleido":
            parts.append(f"rendered by plotly/kaleido ({item.get('reason')})")
        else:
            parts.append(f"matplotlib re-render of the plotly figures, with an interactive HTML copy "
                         f"beside each ({item.get('reason')})")
    return "; ".join(parts)
