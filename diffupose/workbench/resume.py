"""The rule for running a report into a folder that already holds one.

- No folder, or an empty one: a new report.
- A report (report.json) of the same profile: resumed. Its training run continues from the last
  checkpoint (or is already done; train() itself refuses a run whose config differs in more
  than its budget), the chosen notebooks run again and their pages, figures and metrics are
  rewritten; notebooks not run this time keep their pages and stay listed on the index. A
  finished report (status ok) is resumed only with the settings it was made with (its `--set`
  items; `allow_pickle` aside, an opt-in that changes no number): other settings would replace
  it by a different report. An unfinished one (failed, interrupted) may be completed with new
  settings: nothing finished is replaced.
- Another profile, or a finished report with other settings: refused (ReportError naming the
  difference and the ways out) unless `overwrite`, which deletes the report folder (its
  training run too, when the run is inside it) and starts a new report.
- A folder that is not empty and holds no report.json: refused, also with `overwrite` (it is not
  a report; nothing in it is deleted).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from .assets import ReportError
from .profiles import parse_set

__all__ = ["REPORT_JSON", "IGNORED_SETTINGS", "report_settings", "read_report", "open_report_dir"]

log = logging.getLogger("diffupose.reports")

REPORT_JSON = "report.json"
# `--set` items that change no number of a report: they do not make it another report.
IGNORED_SETTINGS = ("allow_pickle",)


def report_settings(overrides: list[str] | dict[str, Any] | None) -> dict[str, str]:
    """A report's `--set` items as {key: value text}, without IGNORED_SETTINGS."""
    return {key: str(value) for key, value in parse_set(overrides).items() if key not in IGNORED_SETTINGS}


def read_report(report_dir: Path) -> dict[str, Any] | None:
    """The report.json of `report_dir` ({} when it is there but unreadable), None when absent."""
    path = report_dir / REPORT_JSON
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def open_report_dir(report_dir: Path, profile: str, overrides, overwrite: bool = False) -> dict[str, Any] | None:
    """Apply the module's rule to `report_dir` before a report starts: the earlier report's
    info when it is resumed, None for a new report (after deleting the old one with
    `overwrite`); ReportError when the folder must not be touched."""
    if not report_dir.exists():
        return None
    if not report_dir.is_dir():
        raise ReportError(f"{report_dir}: exists and is not a folder; choose another --name or --out-root")
    previous = read_report(report_dir)
    if previous is None:
        if any(report_dir.iterdir()):
            raise ReportError(f"{report_dir}: folder is not empty and holds no report ({REPORT_JSON}); choose "
                              "another --name or --out-root (--overwrite replaces report folders only)")
        return None
    if overwrite:
        log.warning("%s: replacing the report there (overwrite): deleting the folder", report_dir)
        shutil.rmtree(report_dir)
        return None
    refusal = _refusal(previous, profile, overrides)
    if refusal:
        raise ReportError(f"{report_dir} holds {refusal}; choose another --name (or --out-root) for a new "
                          "report, or pass --overwrite to delete it and start over")
    return previous


def _refusal(previous: dict[str, Any], profile: str, overrides) -> str | None:
    """Why the earlier report cannot be resumed by this one (a phrase), or None."""
    before = previous.get("profile")
    if before != profile:
        what = f"a report of profile {before!r}" if before else "a report whose report.json cannot be read"
        return f"{what}, not of {profile!r}" + (f" (rerun with --profile {before} to resume it)" if before else "")
    if previous.get("status") != "ok":
        return None
    old, new = report_settings(previous.get("overrides")), report_settings(overrides)
    if old == new:
        return None
    changed = [f"{key}: {old.get(key, '(profile value)')} then, {new.get(key, '(profile value)')} now"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return (f"a finished {profile} report made with other --set values ({'; '.join(changed)}); rerun with "
            "its values to resume it")
