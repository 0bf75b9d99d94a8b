"""HTML tables and protocol cards for the notebooks, and the paper-layout tables.

`table_html(rows, columns, caption, card)` renders a list of dicts as a pandas-free HTML table
followed by its protocol card (`card_html`); `evaluation_table` lays our numbers out beside the
paper's (Table I / II for Human3.6M, Table III for HumanEva-I); `table_card` picks the card
fields shown under a table; `count_rows` and `gallery_indices` summarise a prepared dataset.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..evaluation import reference


__all__ = ["TABLE_CSS", "format_cell", "card_html", "table_html", "count_rows", "gallery_indices",
           "evaluation_table", "table_card", "paper_comparison_hypotheses"]


def format_cell(value: Any, float_format: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return float_format.format(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy scalar
        return format_cell(value.item(), float_format)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_cell(v, float_format) for v in value)
    return str(value)


TABLE_CSS = """<style>
.dp-table{border-collapse:collapse;font:13px/1.35 system-ui,-apple-system,Segoe UI,sans-serif;margin:.4em 0}
.dp-table caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.dp-table th,.dp-table td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
.dp-table th:first-child,.dp-table td:first-child{text-align:left}
.dp-table thead th{border-bottom:2px solid #444;background:#f6f6f6}
.dp-table tr.dp-ours td{font-weight:600;background:#eef5ff}
.dp-table tr.dp-paper td{color:#555}
.dp-card{font:12px/1.35 system-ui,sans-serif;color:#333;background:#fafafa;border:1px solid #e3e3e3;
 border-radius:4px;padding:.35em .6em;margin:.2em 0 1em;max-width:70em}
.dp-card span{display:inline-block;margin-right:1.2em}.dp-card b{color:#000}
</style>"""


def card_html(card: dict[str, Any] | None, title: str = "Protocol") -> str:
    """A protocol card (dataset and split, 2D source, N, aggregation, flip, sampler, oracle,
    checkpoint, seed, ...) as one compact HTML block."""
    if not card:
        return ""
    items = "".join(f"<span><b>{html.escape(str(k))}</b>: {html.escape(format_cell(v, '{:.4g}'))}</span>"
                    for k, v in card.items())
    return f'<div class="dp-card"><b>{html.escape(title)}</b> — {items}</div>'


def table_html(rows: Sequence[dict[str, Any]], columns: Sequence[str | tuple[str, str]] | None = None,
               caption: str | None = None, card: dict[str, Any] | None = None, *,
               float_format: str = "{:.1f}", row_class_key: str | None = "source") -> str:
    """rows: list of dicts -> a standalone HTML table (own CSS, no pandas), then the protocol card.

    columns: keys to show in order, or (key, header label) pairs; default: keys of the first row.
    Floats use `float_format` (errors in mm: one decimal). A row whose `row_class_key` value is
    "ours" or "paper" is styled as such (bold / grey) and that key is not shown as a column
    unless listed.
    """
    rows = list(rows)
    if columns is None:
        columns = [k for k in (rows[0] if rows else {}) if k != row_class_key]
    cols = [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    body = []
    for row in rows:
        kind = str(row.get(row_class_key, "")) if row_class_key else ""
        cls = f' class="dp-{html.escape(kind)}"' if kind in ("ours", "paper") else ""
        cells = "".join(f"<td>{html.escape(format_cell(row.get(key), float_format))}</td>" for key, _ in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'{TABLE_CSS}<table class="dp-table">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{card_html(card)}')


def count_rows(data, by: str) -> list[dict[str, Any]]:
    """Sample counts of a PreparedData per value of `by` (subject, action, camera, split), one
    column per split plus the total -> rows for table_html."""
    values = getattr(data, by)
    splits = [s for s in ("train", "val", "test") if np.any(data.split == s)]
    rows = []
    for value in sorted(np.unique(values).tolist()):
        mask = values == value
        row: dict[str, Any] = {by: value}
        row.update({s: int(np.count_nonzero(mask & (data.split == s))) for s in splits})
        row["total"] = int(np.count_nonzero(mask))
        rows.append(row)
    return rows


def gallery_indices(data, num_examples: int, seed: int = 0) -> list[int]:
    """Indices of `num_examples` samples spread over the actions (one per action first, seeded)."""
    rng = np.random.default_rng(seed)
    actions = sorted(np.unique(data.action).tolist())
    rng.shuffle(actions)
    picks = []
    for i in range(num_examples):
        pool = np.flatnonzero(data.action == actions[i % len(actions)]) if actions else np.arange(len(data))
        picks.append(int(rng.choice(pool)))
    return picks


def paper_comparison_hypotheses(numbers: Iterable[int], paper_n: int = 10) -> int:
    """The N of ours to put beside the paper's N=`paper_n` rows: `paper_n` itself when we
    evaluated it, else the closest N we have (the caption then says so)."""
    numbers = sorted({int(n) for n in numbers})
    if not numbers:
        raise ConfigError("no numbers of hypotheses to compare")
    return min(numbers, key=lambda n: (abs(n - paper_n), n))


def _action_label(action: str) -> str:
    return reference.H36M_ACTION_ABBREVIATIONS.get(action, action)


def _ours_label(n: int, card: dict[str, Any]) -> str:
    """"ours (N=10)" for a single-frame model, "ours (N=10, T = 27 †)" for a windowed one, so a
    windowed number is never read as a single-frame one."""
    frames = card.get("frames", "T = 1")
    return f"ours (N={n})" if frames == "T = 1" else f"ours (N={n}, {frames})"


def evaluation_table(results: dict[int, Any], metric: str = "MPJPE") -> tuple[list[dict], list, str]:
    """Ours vs the paper in the paper's layout -> (rows, columns, caption) for table_html.

    results: {H: EvalResult}. Human3.6M (or any per-action data): Table I layout, one column per
    action + Average, our row per H and the paper's "Ours (N=1)/(N=10)" rows of Table I (Table II
    for MPJPE with ground-truth 2D). HumanEva-I: Table III layout (subject x action cells, P-MPJPE)
    with the paper's rows for N = 1, 5, 10, 30.
    """
    first = next(iter(results.values()))
    dataset = first.card.get("dataset")
    source = str(first.card.get("keypoints_2d_source", ""))
    rows: list[dict[str, Any]] = []
    if dataset == "humaneva":
        cols = [f"{reference.HUMANEVA_PAPER_ACTION[a]} {s}" for a in reference.HUMANEVA_ACTIONS
                for s in reference.HUMANEVA_SUBJECTS]
        for n, result in results.items():
            cells = result.subject_action.get(metric, {})
            row = {"method": _ours_label(n, result.card), "source": "ours"}
            row.update({f"{reference.HUMANEVA_PAPER_ACTION[a]} {s}": cells.get(a, {}).get(s)
                        for a in reference.HUMANEVA_ACTIONS for s in reference.HUMANEVA_SUBJECTS})
            row["Average"] = result.per_action.get(metric, {}).get("Average")
            rows.append(row)
        if metric == "P-MPJPE":
            for n, paper in reference.table3_rows().items():
                rows.append({"method": f"paper (N={n})", "source": "paper", **paper,
                             "Average": sum(paper.values()) / len(paper)})
        caption = f"{metric} (mm) per subject and action — layout of the paper's Table III (HumanEva-I)"
        return rows, ["method", *cols, "Average"], caption
    actions = [a for a in first.per_action.get(metric, {}) if a != "Average"]
    for n, result in results.items():
        table = result.per_action.get(metric, {})
        rows.append({"method": _ours_label(n, result.card), "source": "ours", **{a: table.get(a) for a in actions},
                     "Average": table.get("Average")})
    protocol = 1 if metric == "MPJPE" else 2
    for n in (1, 10):
        paper = reference.table1_ours(n, protocol)
        rows.append({"method": f"paper Table I (N={n}, detected 2D)", "source": "paper",
                     **{a: paper.get(a) for a in actions}, "Average": paper.get("Average")})
    if metric == "MPJPE" and source == "gt":
        paper = reference.table2_ours()
        rows.append({"method": "paper Table II (N=10, GT 2D)", "source": "paper",
                     **{a: paper.get(a) for a in actions}, "Average": paper.get("Average")})
    same = set(actions) <= set(reference.H36M_ACTIONS)
    caption = (f"{metric} (mm) per action — layout of the paper's Table I"
               + ("" if same else f" ({dataset} actions: only the paper's Average is comparable in kind, "
                                 "not in value)"))
    return rows, ["method", *[(a, _action_label(a)) for a in actions], "Average"], caption


def table_card(card: dict[str, Any], checkpoint_selected_on: str | None = None) -> dict[str, Any]:
    """The protocol-card fields shown under a table (the full card is in metrics.json):
    which weights (and on which split they were chosen: `checkpoint_selected_on`, from the card
    or given) and the count of samples with a non-finite prediction when the card has it."""
    keys = ("dataset", "split", "keypoints_2d_name", "keypoints_2d_source", "frames", "num_samples", "num_hypotheses", "aggregation", "flip",
            "objective", "sampler", "num_steps", "protocol", "oracle", "seed", "device")
    out = {k: card[k] for k in keys if k in card}
    ckpt = card.get("checkpoint")
    if isinstance(ckpt, dict):
        which = ckpt.get("checkpoint")
        out["checkpoint"] = f"{which} @ {Path(str(ckpt.get('path'))).name}"
    selected = checkpoint_selected_on or card.get("checkpoint_selected_on")
    if selected:
        out["checkpoint_selected_on"] = selected
    if card.get("num_nan_samples") is not None:
        out["num_nan_samples"] = card["num_nan_samples"]
    return out
