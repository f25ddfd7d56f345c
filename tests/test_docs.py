"""README.md and docs/*.md: every relative link resolves, every `probes ...` command shown parses."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from probes.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Commands whose arguments are placeholders (`...`): they show a launcher's shape, not a run.
PLACEHOLDER_COMMANDS = (
    "torchrun --nproc_per_node 8 -m probes.cli segment ... --launcher pytorch",
    "srun -N 2 --ntasks-per-node 8 --gpus-per-task 1 probes segment ... --launcher slurm",
)


def fenced_blocks(text: str) -> Iterator[Tuple[str, str]]:
    """(info string, body) of each fenced code block."""
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2)


def command_lines(body: str) -> List[str]:
    """The block's shell lines, continuation lines (ending in a backslash) joined into one."""
    lines, current = [], ""
    for raw in body.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append((current + raw).strip())
        current = ""
    if current:
        lines.append(current.strip())
    return [line for line in lines if line]


def probes_args(line: str) -> List[List[str]]:
    """The argument lists of every `probes ...` / `-m probes.cli ...` command in one shell line."""
    found = []
    for part in re.split(r"&&|\|\||;|\|", line):
        words = shlex.split(part, comments=True)
        for i, word in enumerate(words):
            if word == "probes" or (word == "probes.cli" and i > 0 and words[i - 1] == "-m"):
                found.append(words[i + 1:])
                break
    return found


def shown_commands() -> List[Tuple[str, str, List[str]]]:
    """(page, command line, arguments) for each probes command in a shell block of README.md and docs/."""
    commands = []
    for page in PAGES:
        for info, body in fenced_blocks(page.read_text(encoding="utf-8")):
            if info not in SHELL_BLOCKS:
                continue
            for line in command_lines(body):
                for args in probes_args(line):
                    commands.append((page.relative_to(ROOT).as_posix(), line, args))
    return commands


def strict_parser() -> argparse.ArgumentParser:
    """The real `probes` parser, refusing abbreviated flags (a page shows every flag in full)."""
    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.allow_abbrev = False
    return parser


def parse_error(args: List[str]) -> Optional[str]:
    """None when the real `probes` parser accepts `args` in full spelling, else why not."""
    try:
        strict_parser().parse_args(args)
    except SystemExit as exc:
        return f"argparse exit {exc.code}"
    return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def broken_links(page: Path) -> List[str]:
    """Relative links (and their #anchors) of a Markdown page that point at nothing."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue   # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+\s+(.*)$", FENCE.sub("", dest.read_text(encoding="utf-8")), re.M)
            if anchor not in {slug(h) for h in headings}:
                bad.append(f"{target} (no such heading)")
    return bad


COMMANDS = shown_commands()


def test_the_pages_show_commands() -> None:
    shown = {args[0] for _, _, args in COMMANDS if args}
    # One example per command in the README, so each of these must be found and parsed.
    assert {"classify", "segment", "prepare", "report", "check-data", "inspect", "demo"} <= shown


@pytest.mark.parametrize("page,line,args", COMMANDS, ids=[f"{p}:{' '.join(a)[:60]}" for p, _, a in COMMANDS])
def test_every_shown_command_parses(page: str, line: str, args: List[str]) -> None:
    if line in PLACEHOLDER_COMMANDS:
        pytest.skip("placeholder arguments")
    assert parse_error(args) is None, f"{page}: `{line}` does not parse"


def test_placeholder_list_names_only_shown_commands() -> None:
    lines = {line for _, line, _ in COMMANDS}
    assert set(PLACEHOLDER_COMMANDS) <= lines


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checks_catch_a_misspelt_flag_and_a_broken_link(tmp_path: Path) -> None:
    body = "probes classify --encoder timm:vit_base_patch16_224 \\\n    --data /d --epoch 3\n"
    [line] = command_lines(body)
    [args] = probes_args(line)
    assert parse_error(args) is not None
    assert parse_error(args[:-2]) is None
    assert parse_error([*args[:-2], "--epochs", "3"]) is None
    assert parse_error([*args[:-2], "--epohcs", "3"]) is not None
    [args] = probes_args("torchrun --nproc_per_node 2 -m probes.cli reportt results/")
    assert parse_error(args) is not None
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n")
    page.write_text("[ok](there.md#a-heading) [gone](missing.md) [anchor](there.md#nope) [web](https://x.org)\n"
                    "```bash\n[not a link](inside-code.md)\n```\n")
    assert broken_links(page) == ["missing.md (no such file)", "there.md#nope (no such heading)"]
