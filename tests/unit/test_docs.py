"""The README stays short and its links resolve; the docs' generated pages match the code.

`make test` also builds the documentation site with ``mkdocs build --strict``, which fails on a
broken link inside docs/; these tests cover what that build does not see (the README, as GitHub
shows it) and what it cannot know (that the commands reference is the CLI's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

README_MAX_LINES = 320
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """The targets of the Markdown links and images in ``text`` that point into the
    repository (not web addresses, mail or in-page anchors), without their #anchor; links
    inside fenced code blocks are code, not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_link_finder_sees_links_and_skips_code():
    text = "see [a](docs/a.md#x), ![img](docs/img/b.png) and [web](https://x.org)\n```\n[c](nope.md)\n```\n[d](#top)"
    assert relative_links(text) == ["docs/a.md", "docs/img/b.png"]


def test_readme_is_short():
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}): move the detail into docs/"


def test_readme_links_resolve():
    links = relative_links((REPO / "README.md").read_text(encoding="utf-8"))
    assert any(link.startswith("docs/") for link in links), "the README links into the documentation"
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


@pytest.mark.parametrize(
    "name, page",
    [
        ("headline", "README.md"),
        ("finetuning", "docs/fine-tuning/results.md"),
        ("runs:banking77", "docs/banking77.md"),
        ("serving", "docs/serving.md"),
    ],
)
def test_results_markers_enclose_one_table(name, page):
    """Each table the results renderer writes (`results render`) sits between its markers,
    opened and closed once, with a Markdown table inside."""
    text = (REPO / page).read_text(encoding="utf-8")
    assert text.count(f"<!-- results:{name} -->") == 1 and text.count(f"<!-- /results:{name} -->") == 1, page
    inside = text.split(f"<!-- results:{name} -->", 1)[1].split(f"<!-- /results:{name} -->", 1)[0]
    assert re.search(r"^\| .* \|$\n^\| ---", inside, re.M), f"no table between the {name} markers in {page}"


def test_readme_sections_the_docs_include_exist():
    """docs/ includes parts of the README (pymdownx.snippets) instead of copying them."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    included = set()
    for page in (REPO / "docs").rglob("*.md"):
        included |= set(re.findall(r'^--8<-- "README\.md:([\w-]+)"$', page.read_text(encoding="utf-8"), re.M))
    assert included >= {"experiment", "headline"}
    for name in included:
        assert readme.count(f"--8<-- [start:{name}]") == 1 and readme.count(f"--8<-- [end:{name}]") == 1, name


def test_commands_reference_is_generated_from_the_cli():
    """docs/reference/commands.md is what the CLI's parser generates (in a fresh process, so no
    test's extra approach or backend is in the registry): a changed flag or docstring fails here
    until the page is regenerated."""
    page = REPO / "docs" / "reference" / "commands.md"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "dispute_classifier.commands.reference", "--check", str(page)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, (
        done.stderr + "\nregenerate: python -m dispute_classifier.commands.reference docs/reference/commands.md (or make docs)"
    )


def test_commands_reference_covers_every_subcommand_and_flag():
    """The generator leaves nothing out: every subcommand and every flag of the parser is on the page."""
    import argparse

    from dispute_classifier.commands import reference
    from dispute_classifier.commands.cli import build_parser

    text = reference.render()
    sections = dict(re.findall(r"^#+ `dispute-classifier ([^`]+)`\n(.*?)(?=^#|\Z)", text, re.M | re.S))

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> int:
        seen = 0
        for name, _, sub in reference._subcommands(parser):
            command = " ".join([*path, name])
            assert command in sections, f"no section for {command}"
            for action in sub._actions:
                for flag in action.option_strings:
                    if flag.startswith("--") and flag != "--help":
                        assert f"| `{flag}" in sections[command], (command, flag)
                        seen += 1
            seen += walk(sub, [*path, name])
        return seen

    assert walk(build_parser(), []) > 100  # the CLI has well over a hundred flags
