"""The workbench: what serves the notebooks and the reports, one module per job.

- `reports`: the one name the notebooks use (`from diffupose.workbench import reports`): it
  re-exports the public names of the modules below.
- `profiles`: the report profiles as data; `progress`: the progress lines of a running report.
- `widgets` and `explore`: the hypothesis explorer (live widget, static figures).
- `ablations`: the paper's ablations at the size a run affords (notebook 06: short trainings of
  variants, evaluated, beside the paper's tables).

- `assets`: where the notebooks and example files are (the checkout's, else the copies shipped
  in the package), the workbench extra's check, `ReportError`.
- `tables`: HTML tables and protocol cards for the notebooks, the paper-layout tables.
- `notebook`: what a notebook calls first (`setup_notebook`), the live training display, the
  choice of split, inputs and checkpoint.
- `execute`: one notebook through papermill (progress engine, kernel environment) and its
  offline HTML page.
- `runner`: `run_report`, the notebooks of one report in order, and the rule for an existing
  report folder.
- `index_page`: the report's `index.html` and `report.json`.

Nothing is imported here, so importing one module does not pull in the others.
"""
