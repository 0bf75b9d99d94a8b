"""The user-facing docs: README.md stays a short page, docs/*.md hold the rest, benchmarks/record/*.md
keep how the numbers were reached, and they hold together.

- README.md has at most 150 lines; docs/samplers.md and docs/detections.md, guides to choosing and
  using, at most 150 each, with their measurement logs in benchmarks/record/.
- Every relative Markdown link in README.md, docs/*.md, benchmarks/record/*.md, examples/README.md and
  reports/README.md points to a file that exists; a link
  with an anchor (`page.md#heading`, `#heading`) points to a heading of that page, slugged as
  GitHub slugs headings. Links inside code (fenced blocks, `inline code`) are not links.
- No sentence refers to an issue or a target ("issue 12", "target ≤ 45 mm"): the docs describe
  what the workbench does and what was measured.
- docs/lifting.md's keypoint-mapping tables are the library's (diffupose.data.keypoints).
- CITATION.cff parses as YAML (skipped without PyYAML) and names cff-version, title and authors.
- The pages agree with the code and with each other: one `lift` example, the same in README.md,
  docs/lifting.md and examples/README.md; the README's Python example before `make demo`; the files
  named in inline code exist; `present` is explained as the present joints.
(tests/test_doc_commands.py checks that every command shown parses with the real parser.)
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
    return [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks" / "record").glob("*.md")),
            ROOT / "examples" / "README.md", ROOT / "reports" / "README.md"]


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
    assert "../benchmarks/record/README.md" in index, "docs/README.md does not link the record (benchmarks/record/README.md)"
    record = {target.split("#")[0] for _, target in relative_links(ROOT / "benchmarks" / "record" / "README.md")}
    missing = [p.name for p in sorted((ROOT / "benchmarks" / "record").glob("*.md"))
               if p.name != "README.md" and p.name not in record]
    assert not missing, f"benchmarks/record/README.md does not list {missing}"
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


GUIDES = ("samplers.md", "detections.md")     # user guidance; their measurement logs live in benchmarks/record/


@pytest.mark.parametrize("name", GUIDES)
def test_guides_are_short_and_link_their_record(name: str):
    page = ROOT / "docs" / name
    lines = page.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"docs/{name} has {len(lines)} lines (at most {README_MAX_LINES}): move measurement logs to benchmarks/record/{name}")
    assert f"../benchmarks/record/{name}" in {target.split("#")[0] for _, target in relative_links(page)}
    assert (ROOT / "benchmarks" / "record" / name).is_file()


_LIFT_EXAMPLE = re.compile(r"^(?:\.venv/bin/)?diffupose lift .*examples/\S+.*$", re.MULTILINE)


def test_one_lift_example_everywhere():
    """README.md, docs/lifting.md and examples/README.md show the same quick-start command."""
    pages = [README, ROOT / "docs" / "lifting.md", ROOT / "examples" / "README.md"]
    found = {str(p.relative_to(ROOT)): set(_LIFT_EXAMPLE.findall(p.read_text(encoding="utf-8"))) for p in pages}
    commands = set().union(*found.values())
    assert len(commands) == 1 and all(found.values()), f"lift examples differ: {found}"


README_PYTHON = """from diffupose import Lifter
lifter = Lifter.from_pretrained("h36m-det-video")
result = lifter.lift("examples/coco17_S8_walking.json", image_size=(1000, 1002))"""


def test_readme_python_example_comes_before_make_demo():
    text = README.read_text(encoding="utf-8")
    assert f"```python\n{README_PYTHON}\n```" in text
    assert text.index(README_PYTHON) < text.index("make demo")
    assert README_PYTHON in (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_present_is_explained_as_present():
    """`present` is True where a joint was in the input; `keypoint_mask` is its old name."""
    for page in doc_pages():
        text = " ".join(page.read_text(encoding="utf-8").split())
        assert "mask of missing joints" not in text, f"{page.name}: the mask marks present joints"
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert "`present` is True where the joint was in the input" in readme and "`keypoint_mask`" in readme


# Pages that name module paths the code owns (their own tests check them: tests/test_imports.py).
_PATH_PAGES_ELSEWHERE = ("architecture.md", "contributing.md")
_REPO_PATH = re.compile(r"`((?:diffupose|benchmarks|notebooks|tests|examples|docs)/[^`\s<>*]+)`")


def user_pages() -> list[Path]:
    """The pages checked against today's code: not the record (it keeps what was run, as it was run)."""
    return [p for p in doc_pages() if p.name not in _PATH_PAGES_ELSEWHERE and p.parent.name != "record"]


@pytest.mark.parametrize("page", user_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_named_in_the_docs_exist(page: Path):
    text = page.read_text(encoding="utf-8")
    missing = sorted({m.group(1).rstrip(".,;:") for m in _REPO_PATH.finditer(text)
                      if not (ROOT / m.group(1).rstrip(".,;:")).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


_DOTTED = re.compile(r"`(diffupose(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`")
_LOGGERS = {"diffupose.train", "diffupose.lift", "diffupose.zoo"}      # log line names, not modules


def _resolves(name: str) -> bool:
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("page", user_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_names_in_the_docs_exist(page: Path):
    """`diffupose.x.y` in a user page is an importable module or one of its attributes."""
    names = {m.group(1) for m in _DOTTED.finditer(page.read_text(encoding="utf-8"))} - _LOGGERS
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, f"{page.relative_to(ROOT)} names Python objects that do not exist: {missing}"
