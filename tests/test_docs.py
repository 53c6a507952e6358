"""The README stays a front door and the pages under docs/ stay true to the code.

* README.md is under 250 lines;
* every long flag (``--name``) that README.md or docs/*.md mention is an option of some qpsweep
  command, read from the real parsers' ``--help`` (or of a ``tests/perf/`` script the pages
  name, or in the short ``NOT_OURS`` list);
* every command of the CLI is named in the README;
* every relative link points to a file that exists, and a ``#fragment`` into a Markdown page to
  one of its headings.

The checks are plain functions over text, so the last tests show each of them failing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from qpsweep.cli.main import COMMANDS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = (README, *sorted((REPO / "docs").glob("*.md")))
MAX_README_LINES = 250

# Subcommands of a command (argparse subparsers); the top-level ones come from COMMANDS.
NESTED = {"dataset": ("synth",)}

# Flags the pages mention that belong to other programs, or to no program.
NOT_OURS = {
    "--check": "ruff format's, in the lint command",
    "--parallel": "llama-server's option, in docs/verdict.md's real-model run",
    "--confidence": "docs/verdict.md says it is not a flag yet",
    "--no-deps": "pip's, in docs/real-server.md",
    "--no-binary": "pip's, in docs/real-server.md",
    "--build": "cmake's, in docs/real-server.md",
    "--metrics": "llama-server's option, in docs/real-server.md",
    "--alias": "llama-server's option, in docs/real-server.md",
}

# A long flag; not the tail of a word or of a longer dash run, nor a link's #--fragment.
FLAG = re.compile(r"(?<![\w#-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PERF_SCRIPT = re.compile(r"tests/perf/(\w+\.py)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\S\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def _help_texts(commands: list[list[str]]) -> dict[str, str]:
    """``--help`` of each command line, run at once in fresh processes, wide enough not to wrap."""
    env = {**os.environ, "COLUMNS": "10000", "PYTHONIOENCODING": "utf-8"}
    procs = {
        " ".join(cmd): subprocess.Popen(
            [sys.executable, *cmd, "--help"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    }
    texts = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0 and "usage:" in out, f"{name} --help failed: {err[-2000:]}"
        texts[name] = out
    return texts


def options_of(help_text: str) -> set[str]:
    """The long options an argparse ``--help`` lists (its option lines, not its prose)."""
    found: set[str] = set()
    for line in help_text.splitlines():
        if line.startswith("usage:"):
            found.update(FLAG.findall(line))
        elif line.lstrip().startswith("-"):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found.update(FLAG.findall(invocation))
    return found


def _texts() -> dict[Path, str]:
    return {page: page.read_text(encoding="utf-8") for page in PAGES}


def known_flags() -> frozenset[str]:
    """Every long option of every qpsweep command, and of the perf scripts the pages name."""
    commands = [["-m", "qpsweep"]]
    for name in COMMANDS:
        commands.append(["-m", "qpsweep", name])
        commands += [["-m", "qpsweep", name, sub] for sub in NESTED.get(name, ())]
    scripts = {m for text in _texts().values() for m in PERF_SCRIPT.findall(text)}
    commands += [[f"tests/perf/{script}"] for script in sorted(scripts)]
    texts = _help_texts(commands)
    for name, subs in NESTED.items():
        for sub in subs:
            assert sub in texts[f"-m qpsweep {name}"], f"qpsweep {name} has no {sub!r} any more"
    flags: set[str] = set()
    for cmd, text in texts.items():
        own = options_of(text)
        assert own, f"no options found in the help of {cmd}"
        flags |= own
    return frozenset(flags)


def unknown_flags(text: str, known: frozenset[str] | set[str]) -> list[str]:
    """Flags of ``text`` that no parser defines, in order of first mention."""
    return list(
        dict.fromkeys(f for f in FLAG.findall(text) if f not in known and f not in NOT_OURS)
    )


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings (fenced code left out; repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path, markdown: str, root: Path = REPO) -> list[str]:
    """Relative links of ``page`` (outside code) whose file or heading does not exist.

    A link out of ``root`` (the repository) counts as broken: it has no target on GitHub.
    """
    problems = []
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists() or not path.is_relative_to(root):
            problems.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md":
            text = markdown if path == page else path.read_text(encoding="utf-8")
            if fragment not in anchors(text):
                problems.append(f"{target}: no heading #{fragment} in {path.name}")
    return problems


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_README_LINES, (
        f"README.md has {len(lines)} lines; move detail into docs/ (limit {MAX_README_LINES})"
    )


def test_every_flag_the_docs_mention_exists() -> None:
    known = known_flags()
    wrong = {
        page.relative_to(REPO).as_posix(): bad
        for page, text in _texts().items()
        if (bad := unknown_flags(text, known))
    }
    assert not wrong, f"flags that no qpsweep parser defines: {wrong}"
    # An allowlisted flag that qpsweep has since gained must be checked like the others.
    assert not set(NOT_OURS) & known, "NOT_OURS lists a flag qpsweep now has"


def test_readme_names_every_command() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"qpsweep {name}" not in readme]
    assert not missing, f"commands the README does not show: {missing}"


def test_relative_links_resolve() -> None:
    wrong = {
        page.relative_to(REPO).as_posix(): bad
        for page, text in _texts().items()
        if (bad := broken_links(page, text))
    }
    assert not wrong, f"broken relative links: {wrong}"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """Each check above reports a planted mistake (and passes what it should pass)."""
    text = "run `qpsweep --qps 1 --no-such-flag` or --durration; not ---x, a-b--c, #--x; --parallel"
    assert unknown_flags(text, {"--qps"}) == ["--no-such-flag", "--durration"]
    assert options_of("usage: p [-h] [--a-b X]\n\noptions:\n  -c C, --cee C  see --not-this\n") == {
        "--a-b",
        "--cee",
    }
    assert github_slug("Several models of one target: `--all-models`") == (
        "several-models-of-one-target---all-models"
    )
    (tmp_path / "other.md").write_text("# Other page\n", encoding="utf-8")
    page = tmp_path / "page.md"
    markdown = (
        "# Top\n\n## A: `b`\n\n```\n# not a heading\n[in code](nowhere.md)\n```\n\n"
        "[ok](#a-b) [ok](other.md#other-page) [gone](missing.md) [bad](#not-a-heading) "
        "[bad](other.md#top) [web](https://example.com/x) `[code](nowhere.md)`\n"
    )
    page.write_text(markdown, encoding="utf-8")
    assert anchors(markdown) == {"top", "a-b"}
    assert broken_links(page, markdown, root=tmp_path) == [
        "missing.md: no such file",
        "#not-a-heading: no heading #not-a-heading in page.md",
        "other.md#top: no heading #top in other.md",
    ]
