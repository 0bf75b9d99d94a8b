"""The user-facing docs: README.md stays a short page, docs/*.md hold the rest, and they hold together.

- README.md has at most 150 lines.
- Every relative Markdown link in README.md and docs/*.md points to a file that exists; a link
  with an anchor (`page.md#heading`, `#heading`) points to a heading of that page, slugged as
  GitHub slugs headings. Links inside code (fenced blocks, `inline code`) are not links.
- No sentence refers to an issue or a target ("issue 12", "target ≤ 45 mm"): the docs describe
  what the workbench does and what was measured.
- docs/lifting.md's keypoint-mapping tables are the library's (diffupose.data.keypoints).
- CITATION.cff parses as YAML (skipped without PyYAML) and names cff-version, title and authors.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 150


def doc_pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks, inline code removed."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, _INLINE_CODE.sub("", line)))
    return out


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: markup stripped, lower case, punctuation dropped
    (letters, marks, digits, '_', '-' and spaces kept), spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)     # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text
                   if c.isalnum() or c in " -_" or unicodedata.category(c).startswith("M"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page, with GitHub's -1, -2 … for repeated headings."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    return [(number, m.group(1)) for number, line in prose_lines(path) for m in _LINK.finditer(line)
            if not _SCHEME.match(m.group(1))]


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/")


def test_the_docs_index_and_readme_link_every_page():
    index = {target.split("#")[0] for _, target in relative_links(ROOT / "docs" / "README.md")}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "README.md" and p.name not in index]
    assert not missing, f"docs/README.md does not list {missing}"
    assert "docs/README.md" in {target.split("#")[0] for _, target in relative_links(README)}


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for number, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{page.name}:{number}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            broken.append(f"{page.name}:{number}: {target} (no heading #{anchor} in {dest.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


_ISSUE = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
_TARGET = re.compile(r"\b(?:target|goal)s?\b\s*(?:of\s*)?(?:≤|<=|<|≥|>=)", re.IGNORECASE)


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sentence_refers_to_an_issue_or_a_target(page: Path):
    found = [f"{page.name}:{number}: {line.strip()}" for number, line in prose_lines(page)
             if _ISSUE.search(line) or _TARGET.search(line)]
    assert not found, "describe what the workbench does, not the issue or target behind it:\n" + "\n".join(found)


def test_github_slug_matches_github():
    assert github_slug("CPU speed: bf16 and torch.compile") == "cpu-speed-bf16-and-torchcompile"
    assert github_slug("Protocols: ground-truth free, or the released code's oracle") == \
        "protocols-ground-truth-free-or-the-released-codes-oracle"
    assert github_slug("Lifting your own keypoints: `diffupose lift`") == "lifting-your-own-keypoints-diffupose-lift"
    assert github_slug("Robustness: missing joints and pixel noise") == "robustness-missing-joints-and-pixel-noise"


def test_lifting_page_states_the_library_mapping():
    """docs/lifting.md's keypoint-mapping tables say what diffupose.data.keypoints does."""
    from diffupose.data.keypoints import derived_joints_table, layout_table

    page = (ROOT / "docs" / "lifting.md").read_text(encoding="utf-8")
    assert derived_joints_table() in page
    library_rows = set(layout_table().splitlines())
    for joint in ("hip", "spine", "thorax", "neck_nose", "head"):
        rows = [line for line in page.splitlines()          # the 5-column layout table only
                if line.startswith(f"| {joint} |") and line.count("|") == 6]
        assert len(rows) == 1 and rows[0] in library_rows, f"docs/lifting.md: mapping row of {joint}"


def test_citation_cff_names_the_paper():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(cff["cff-version"]).startswith("1.")
    assert cff["title"] and cff["authors"] and all(isinstance(a, dict) and a for a in cff["authors"])
    paper = cff.get("preferred-citation")
    if paper is not None:
        assert paper["title"] and paper["authors"] and paper["year"]
