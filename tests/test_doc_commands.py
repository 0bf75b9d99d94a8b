"""Every `diffupose ...` command the user docs show parses with the real argument parser, and every
option of every command says what it does and its default.

Commands are read from README.md, docs/*.md (the user pages; not benchmarks/record/, which keeps
commands as they were run), examples/README.md and reports/README.md: lines of fenced shell blocks
(with `\\` continuations, `# comments` dropped, `&&` / `;` / `|` chains split), indented code
blocks, and inline code spans. A command starts with `diffupose` or `.venv/bin/diffupose` (after
any `VAR=value` prefixes). It is parsed by `diffupose.cli.build_parser()` and never run. An inline
span that is only `diffupose` names the program, and one that is only `diffupose <command>` names a
command, which must exist.
Commands meant to fail, or written with placeholders argparse cannot take, are listed in
SKIPPED with the reason; keep that list tiny.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from diffupose.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def command_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "examples" / "README.md", ROOT / "reports" / "README.md"]


# (page, command text as extracted) -> why it is not parsed
SKIPPED: dict[tuple[str, str], str] = {}

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_INLINE = re.compile(r"(`+)(.+?)\1")
_SHELL = {"", "bash", "sh", "shell", "console", "zsh"}
_CONTROL = {"&&", "||", ";", "|"}
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _code_lines(path: Path):
    """(line number, text, kind): shell lines of fenced and indented blocks ('block', continuations
    joined) and inline code spans of prose ('inline')."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fence, pending, pending_no, prev_blank, indented = None, "", 0, True, False
    for number, line in enumerate(lines, 1):
        match = _FENCE.match(line)
        if match:
            fence = None if fence is not None else match.group(2).lower()
            continue
        if fence is not None or (line.startswith("    ") and (prev_blank or indented)):
            indented = fence is None
            if fence is not None and fence not in _SHELL:
                continue
            text = line.strip()
            if not pending:
                pending_no = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            yield pending_no, pending + text, "block"
            pending = ""
            continue
        indented = False
        prev_blank = not line.strip()
        for span in _INLINE.finditer(line):
            yield number, span.group(2).strip(), "inline"


def _segments(text: str, kind: str) -> list[list[str]]:
    """The simple commands of one shell line, as argv lists."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#" if kind == "block" else ""
    try:
        tokens = list(lexer)
    except ValueError:                               # an unbalanced quote: prose, not a command
        return []
    out, current = [], []
    for token in tokens:
        if token in _CONTROL:
            out.append(current)
            current = []
        else:
            current.append(token)
    return [*out, current]


def doc_commands() -> list[tuple[str, int, str, list[str], str]]:
    """(page, line, command text, argv after the program name, kind) of every diffupose command."""
    found = []
    for page in command_pages():
        rel = str(page.relative_to(ROOT))
        for number, text, kind in _code_lines(page):
            for argv in _segments(text, kind):
                while argv and _ENV.match(argv[0]):
                    argv = argv[1:]
                if argv[:1] in (["diffupose"], [".venv/bin/diffupose"]):
                    found.append((rel, number, " ".join(argv), argv[1:], kind))
    return found


COMMANDS = doc_commands()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _parse(argv: list[str]) -> str | None:
    """None when argparse accepts argv (help and version count), else its error message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
    return None


def test_the_docs_show_commands_of_every_kind():
    used = {argv[0] for _, _, _, argv, _ in COMMANDS if argv}
    assert set(_subcommands()) <= used, f"no doc shows {sorted(set(_subcommands()) - used)}"
    assert len(COMMANDS) >= 40
    assert not [key for key in SKIPPED if key not in {(p, c) for p, _, c, _, _ in COMMANDS}], \
        "SKIPPED names a command no page shows any more"


@pytest.mark.parametrize("page,line,command,argv,kind", COMMANDS,
                         ids=[f"{p}:{n}" for p, n, *_ in COMMANDS])
def test_doc_command_parses(page, line, command, argv, kind):
    if (page, command) in SKIPPED:
        pytest.skip(SKIPPED[(page, command)])
    if kind == "inline" and not argv:
        return                                       # the program's name in prose
    if kind == "inline" and len(argv) == 1 and not argv[0].startswith("-"):
        assert argv[0] in _subcommands(), f"{page}:{line}: `{command}` names no diffupose command"
        return
    error = _parse(argv)
    assert error is None, f"{page}:{line}: `{command}` does not parse: {error}"


def test_parser_rejects_what_the_docs_must_not_show():
    """The check has teeth: placeholders and retired syntax are refused."""
    assert _parse(["lift", "--model", "h36m-det", "--keypoints", "k.json", "--image-size", "W", "H",
                   "--out", "o"]) is not None
    assert _parse(["evaluate", "--run", "r", "--data", "d.npz", "--protocol", "gt_free|official_oracle"]) is not None
    assert _parse(["lift", "--keypoints", "k.json", "--out", "o"]) is not None          # no --run / --model
    assert _parse(["lift", "--model", "h36m-det", "--keypoints", "k.json", "--out", "o"]) is None


# --- the help texts ----------------------------------------------------------------------------

def _options():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action


@pytest.mark.parametrize("command,action", list(_options()),
                         ids=[f"{n}:{'/'.join(a.option_strings) or a.dest}" for n, a in _options()])
def test_every_option_has_help_with_its_default(command, action):
    flag = "/".join(action.option_strings) or action.dest
    assert action.help and len(action.help) > 10, f"diffupose {command} {flag}: no help text"
    in_group_with_default = (action.dest in ("run", "model", "flip")
                             and command in ("lift", "evaluate", "sample", "calibrate"))
    if not (action.required or in_group_with_default):
        assert "default" in action.help.lower(), f"diffupose {command} {flag}: help does not state the default"


def test_help_says_what_is_true():
    commands = _subcommands()
    lift = {a.dest: a for a in commands["lift"]._actions}
    assert "all four are written" not in lift["out"].help
    checkpoint = lift["checkpoint"].help
    assert "best" in checkpoint and "--model" in checkpoint and "final EMA" in checkpoint
    protocol = {a.dest: a for a in commands["evaluate"]._actions}["protocol"]
    assert list(protocol.choices) == ["gt_free", "official_oracle"]
    parser = build_parser()
    top = parser.format_help()
    assert parser.description and "3D" in parser.description
    one_line = {c.dest: c.help for c in next(a for a in parser._actions
                                             if isinstance(a, argparse._SubParsersAction))._choices_actions}
    for name in commands:
        assert one_line.get(name) and name in top, f"diffupose --help: no line for {name}"


# --- the settings the commands name ------------------------------------------------------------

SETTINGS = [(p, n, c, argv) for p, n, c, argv, _ in COMMANDS
            if argv[:1] in (["train"], ["report"]) and "--help" not in argv]


@pytest.mark.parametrize("page,line,command,argv", SETTINGS, ids=[f"{p}:{n}" for p, n, *_ in SETTINGS])
def test_doc_settings_exist(page, line, command, argv, tmp_path):
    """`--preset`, `--profile` and every `--set key=value` of a shown train / report command name a
    real preset, profile, profile parameter or config key with a value of the right type."""
    from diffupose.config import apply_overrides, preset
    from diffupose.workbench.profiles import resolve_parameters

    args = build_parser().parse_args(argv)
    if args.command == "train":
        apply_overrides(preset(args.preset), list(args.overrides) + [f"data.path={args.data}"])
    else:
        resolve_parameters(args.profile, tmp_path, args.overrides)
