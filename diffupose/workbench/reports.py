"""Reports and the notebooks' helpers: `from diffupose.workbench import reports; reports.X`.

The code lives in the other `diffupose.workbench` modules, one per job; this module re-exports it, so the
notebooks, tests and scripts keep one name for everything:

- the papermill runner (`workbench.runner`, `workbench.execute`): `run_report` executes the
  notebooks of a profile into reports/<name>/ (executed `.ipynb`, offline `.html`, `figures/`,
  `metrics.json`); running the same report again resumes it (its training run continues from
  the last checkpoint), and a report the user made is never deleted or replaced without
  `overwrite` (the rule: `workbench.resume`);
- the index page (`workbench.index_page`): `write_index` writes index.html and report.json, with
  a warning at the top when the training stopped at its time cap;
- the notebook helpers (`workbench.notebook`, `workbench.tables`): `setup_notebook`,
  `table_html`, `card_html`, `resolve_split`, `evaluation_checkpoint`, `resolve_inputs`,
  `evaluation_table`, `TrainingCurveDisplay`, ...;
- where the notebooks are (`workbench.assets`): the checkout's `notebooks/`, else the copies an
  installed wheel carries; running a report needs the `workbench` extra
  (`pip install 'diffupose[workbench]'`), and says so in one line when it is missing.
"""
from __future__ import annotations

from .assets import MissingExtraError, ReportError, notebook_dir, require_workbench
from .execute import (NotebookFailed, check_kernel, execute_notebook, kernel_pythonpath, notebook_to_html,
                      remote_code_references, strip_remote_scripts)
from .index_page import read_run_card, time_cap_text, write_index
from .notebook import (FALLBACK_REPORT, PLOTLY_RENDERER, STANDALONE_RUNS, TrainingCurveDisplay,
                       evaluation_checkpoint, resolve_inputs, resolve_split, setup_notebook)
from .profiles import NOTEBOOKS
from .runner import run_report
from .tables import (card_html, count_rows, evaluation_table, gallery_indices, paper_comparison_hypotheses,
                     table_card, table_html)

__all__ = [
    "ReportError", "NOTEBOOKS", "notebook_dir", "check_kernel", "table_html", "card_html",
    "resolve_split", "execute_notebook", "notebook_to_html", "strip_remote_scripts", "remote_code_references",
    "write_index", "run_report", "PLOTLY_RENDERER", "setup_notebook", "count_rows", "gallery_indices",
    "TrainingCurveDisplay", "evaluation_table", "table_card", "resolve_inputs", "evaluation_checkpoint",
    "paper_comparison_hypotheses", "STANDALONE_RUNS", "FALLBACK_REPORT", "kernel_pythonpath",
    "MissingExtraError", "require_workbench", "NotebookFailed", "read_run_card", "time_cap_text",
]
