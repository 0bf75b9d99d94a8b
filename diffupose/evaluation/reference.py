"""The paper's reported numbers, as data (one place: resources/paper_tables.json).

All errors are millimetres. Helpers return fresh copies, so callers may modify them.
"""
from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from typing import Any

__all__ = [
    "H36M_ACTIONS", "H36M_ACTION_ABBREVIATIONS", "HUMANEVA_ACTIONS", "HUMANEVA_SUBJECTS",
    "HUMANEVA_PAPER_ACTION", "TABLES", "paper_tables", "paper_table",
    "table1_ours", "table2_ours", "table3_row", "table3_rows", "table3_cells", "table4", "table5",
    "table6", "fig1_points", "paper_row",
]

# The 15 canonical Human3.6M actions in the paper's column order (Tables I and II).
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
# The paper's column headers for the same actions.
H36M_ACTION_ABBREVIATIONS: dict[str, str] = dict(zip(H36M_ACTIONS, (
    "Dir.", "Disc.", "Eat", "Greet", "Phone", "Photo", "Pose", "Pur.", "Sit", "SitD.", "Smoke",
    "Wait", "WalkD.", "Walk", "WalkT.",
)))
# HumanEva-I: prepared-data action names (canonical) and the paper's Table III names.
HUMANEVA_ACTIONS: tuple[str, ...] = ("Walking", "Jog", "Box")
HUMANEVA_SUBJECTS: tuple[str, ...] = ("S1", "S2", "S3")
HUMANEVA_PAPER_ACTION: dict[str, str] = {"Walking": "Walk", "Jog": "Jog", "Box": "Box"}

# Short names -> keys of paper_tables.json.
TABLES: dict[str, str] = {
    "table1_p1": "table1_h36m_detected_2d_mpjpe_protocol1",
    "table1_p2": "table1_h36m_detected_2d_pmpjpe_protocol2",
    "table2": "table2_h36m_gt_2d_mpjpe",
    "table3": "table3_humaneva_pmpjpe",
    "table4": "table4_denoiser_ablation",
    "table5": "table5_dim_and_hypotheses_mpjpe",
    "table6": "table6_ddim_speed",
    "noise_schedule": "noise_schedule_ablation_mpjpe",
    "training": "training",
}


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    text = importlib.resources.files("diffupose").joinpath("resources/paper_tables.json").read_text()
    return json.loads(text)


def paper_tables() -> dict[str, Any]:
    """Every table of paper_tables.json (a copy)."""
    return copy.deepcopy(_load())


def paper_table(name: str) -> Any:
    """One table by short name (`table1_p1`, `table1_p2`, `table2` ... `table6`,
    `noise_schedule`, `training`) or by its full JSON key. Returns a copy."""
    data = _load()
    key = TABLES.get(name, name)
    if key not in data or key == "source":
        raise KeyError(f"unknown paper table {name!r}; known: {sorted(TABLES)}")
    return copy.deepcopy(data[key])


def paper_row(table: str, row: str) -> dict[str, float | None]:
    """One row of a per-action table (Table I/II): {action: mm, "Average": mm}."""
    rows = paper_table(table)
    if row not in rows:
        raise KeyError(f"{table}: no row {row!r}; rows: {list(rows)}")
    return rows[row]


def table1_ours(num_hypotheses: int = 1, protocol: int = 1) -> dict[str, float]:
    """The paper's "Ours (N=1)" / "Ours (N=10)" row of Table I (detected 2D input).
    protocol 1 = MPJPE, 2 = P-MPJPE. -> {action: mm, "Average": mm}"""
    if num_hypotheses not in (1, 10):
        raise KeyError(f"Table I reports N=1 and N=10, not N={num_hypotheses}")
    if protocol not in (1, 2):
        raise KeyError(f"protocol must be 1 (MPJPE) or 2 (P-MPJPE), got {protocol}")
    return paper_row(f"table1_p{protocol}", f"Ours (N={num_hypotheses})")


def table2_ours() -> dict[str, float]:
    """The paper's Table II row (ground-truth 2D input, N=10, MPJPE)."""
    return paper_row("table2", "Ours (N=10)")


def table3_rows() -> dict[int, dict[str, float]]:
    """Table III (HumanEva-I, P-MPJPE): {N: {"Walk S1": mm, ...}}."""
    t = paper_table("table3")
    return {int(k.split("=")[1]): dict(zip(t["columns"], v)) for k, v in t["rows"].items()}


def table3_row(num_hypotheses: int) -> dict[str, float]:
    """One row of Table III by N (1, 5, 10, 30): {"Walk S1": mm, ..., "Box S3": mm}."""
    rows = table3_rows()
    if num_hypotheses not in rows:
        raise KeyError(f"Table III reports N in {sorted(rows)}, not N={num_hypotheses}")
    return rows[num_hypotheses]


def table3_cells(num_hypotheses: int) -> dict[str, dict[str, float]]:
    """Table III row as {canonical action ("Walking", "Jog", "Box"): {subject: mm}}, the
    layout of `metrics.subject_action_table`."""
    paper_to_ours = {v: k for k, v in HUMANEVA_PAPER_ACTION.items()}
    out: dict[str, dict[str, float]] = {}
    for column, value in table3_row(num_hypotheses).items():
        action, subject = column.split()
        out.setdefault(paper_to_ours[action], {})[subject] = value
    return out


def table4() -> list[dict[str, Any]]:
    """Table IV (denoiser ablation): [{"denoiser", "mpjpe", "params_million"}]."""
    return [{"denoiser": k, **v} for k, v in paper_table("table4").items()]


def table5() -> list[dict[str, Any]]:
    """Table V (hypotheses x width): [{"num_hypotheses", "dim", "mpjpe"}]."""
    rows = []
    for key, by_dim in paper_table("table5").items():
        if not key.startswith("N="):
            continue
        for dim, value in by_dim.items():
            rows.append({"num_hypotheses": int(key[2:]), "dim": int(dim), "mpjpe": value})
    return rows


def table6() -> list[dict[str, Any]]:
    """Table VI (DDIM speed, RTX A5000): [{"sampler", "num_steps", "fps", "mpjpe_n1", "mpjpe_n10"}]."""
    t = paper_table("table6")
    return [{"sampler": r.get("sampler", "DDIM").lower(), "num_steps": r["ddim_steps"], "fps": r["fps"],
             "mpjpe_n1": r["mpjpe_n1"], "mpjpe_n10": r["mpjpe_n10"], "gpu": t["gpu"]} for r in t["rows"]]


_N_PATTERN = re.compile(r"\s*\(N=(\d+)\)\s*")


def fig1_points() -> list[dict[str, Any]]:
    """Fig. 1's reference points: the Table I (Protocol 1) rows that state a number of
    hypotheses N -> [{"method", "num_hypotheses", "mpjpe", "row"}]; `method` is the row name
    without its "(N=...)" part and trailing "*"."""
    points = []
    for row, values in paper_table("table1_p1").items():
        match = _N_PATTERN.search(row)
        if not match or values.get("Average") is None:
            continue
        method = _N_PATTERN.sub(" ", row).replace("*", "").strip()
        method = re.sub(r"\s+", " ", method)
        points.append({"method": method, "num_hypotheses": int(match.group(1)),
                       "mpjpe": values["Average"], "row": row})
    return points
