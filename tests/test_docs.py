"""The README routes and the docs stay true (issue 22, item 5): the README stays short and keeps the
two commands CI runs, the example report on its first screen and a link to every docs page; every
relative link and anchor in README.md and docs/ resolves; docs/cli.md's flag tables are what the
real parser says (docs/generate_cli.py), and every flag of every command has a help text."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from benchmark.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 250
FIRST_SCREEN_LINES = 30  # what a newcomer sees before scrolling
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _generator():
    spec = importlib.util.spec_from_file_location("generate_cli", DOCS / "generate_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code, where links are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_readme_is_short():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines (at most {README_MAX_LINES}): move reference text to docs/"


def test_the_readme_gives_the_two_commands_ci_runs():
    readme = README.read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("make bench", "make test", "make bench PROFILE=smoke"):
        assert command in readme, f"README.md no longer names `{command}`"
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("make ")]
    assert ci_commands == ["make bench PROFILE=smoke", "make test"], ci_commands


def test_the_first_screen_shows_the_example_report():
    first = "\n".join(README.read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN_LINES])
    targets = LINK.findall(first)
    assert any(t.startswith("docs/example-report/") and not t.endswith(".png") for t in targets), \
        f"the first {FIRST_SCREEN_LINES} lines of README.md must link the example report"
    assert any(t.startswith("docs/example-report/") and t.endswith(".png") for t in targets), \
        f"the first {FIRST_SCREEN_LINES} lines of README.md must show a figure of the example report"


def test_the_readme_links_every_docs_page():
    linked = {(REPO_ROOT / target.split("#")[0]).resolve() for target in LINK.findall(_prose(README.read_text(encoding="utf-8")))}
    pages = [p for p in sorted(DOCS.glob("*.md"))]
    assert len(pages) >= 7, [p.name for p in pages]
    missing = [p.name for p in pages if p.resolve() not in linked]
    assert not missing, f"README.md does not link these docs pages: {missing}"


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(document):
    broken = []
    for target in LINK.findall(_prose(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (document.parent / file_part).resolve() if file_part else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.relative_to(REPO_ROOT)}")
    assert not broken, f"{document.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_the_slug_rule_matches_github():
    assert _slug("Metric and parameter names (MLflow child runs)") == "metric-and-parameter-names-mlflow-child-runs"
    assert _slug("Small datasets: k-fold cross-validation") == "small-datasets-k-fold-cross-validation"
    assert _slug("Feature files (`format: hdf5`, `format: mmsa_pickle`)") == "feature-files-format-hdf5-format-mmsa_pickle"


def test_every_flag_of_every_command_has_a_help_text():
    generator = _generator()
    silent = [f"fusebench {name} {'/'.join(generator.flag_names(a))}"
              for name, (_, sub) in generator.subcommands(generator.parser()).items()
              for a in generator.arguments(sub) if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert not silent, f"flags without a help text (benchmark/cli.py): {silent}"


def test_docs_cli_names_every_flag_of_every_command():
    generator = _generator()
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `fusebench (\S+)`\n(.*?)(?=^### |^<!-- end)", text, re.S | re.M))
    missing = []
    for name, (_, sub) in generator.subcommands(generator.parser()).items():
        section = sections.get(name)
        if section is None:
            missing.append(f"the section of `fusebench {name}`")
            continue
        for action in generator.arguments(sub):
            if action.option_strings:
                names = generator.flag_names(action)
            else:  # a positional is written as its choices, or its name
                names = ["{" + ",".join(action.choices) + "}" if action.choices else action.dest]
            # in the table, as `--flag` or `--flag VALUE` (the usage block writes [--flag] without backticks)
            if not all(re.search("`" + re.escape(n) + "[ `]", section) for n in names):
                missing.append(f"fusebench {name} {'/'.join(names)}")
    assert not missing, f"docs/cli.md does not name: {missing}; run python docs/generate_cli.py"


def test_docs_cli_is_what_the_parser_says():
    generator = _generator()
    assert generator.render() == generator.current(), (
        "docs/cli.md's flag tables differ from benchmark/cli.py's parser: run python docs/generate_cli.py")
