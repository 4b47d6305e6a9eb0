"""README and docs/: every relative link (file and #anchor) resolves, and the settings table is the generated one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    """The link targets of a page's Markdown, outside fenced code blocks."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return LINK.findall(text)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_the_readme_is_a_door_not_the_house():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for command in ('pip install torch==2.13.0 && pip install -e ".[all]"', "python -m pytest -q"):
        assert command in readme  # CI runs README's own commands
    assert len(PAGES) >= 8 and all(f"(docs/{p.name})" in readme for p in PAGES[1:]), "link every docs page"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    found = links(page)
    assert found or page.name != "README.md"
    for target in found:
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if fragment and file.suffix == ".md":
            assert fragment in anchors(file), f"{page.name}: {target} names no heading of {file.name}"


def test_anchor_follows_github():
    assert anchor('Running on a Ray cluster (pip install -e ".[ray]")') == "running-on-a-ray-cluster-pip-install--e-ray"
    assert anchor("Every core of one machine: `--backend processes`") == "every-core-of-one-machine---backend-processes"


def test_the_settings_page_holds_the_generated_table():
    from evoboard.suite.setting_list import settings_markdown

    table = settings_markdown()
    page = (REPO / "docs" / "settings.md").read_text()
    header = table.splitlines()[0]
    assert header in page, "paste `python -m evoboard.suite.setting_list` into docs/settings.md"
    shown = page[page.index(header) :].split("\n\n")[0].strip()
    assert shown == table


def test_the_results_page_holds_the_generated_tables(tmp_path):
    """docs/results.md's tables are made from results/reference (no number copied by hand) and are current."""
    from evoboard.suite.studies.reference import page

    block = page.generated_block(REPO / "results" / "reference")
    text = (REPO / "docs" / "results.md").read_text()
    assert "### garbus-rl" in block and "### guijt-stitch" in block and "| floor |" in block
    assert block.replace(str(REPO) + "/", "") in text, "run `python -m evoboard.suite.studies.reference.page`"
    stale = tmp_path / "page.md"
    stale.write_text(f"words\n{page.BEGIN}\nold table\n{page.END}\nmore words\n")
    assert page.rewrite(stale, REPO / "results" / "reference") and "old table" not in stale.read_text()
    assert stale.read_text().startswith("words\n") and stale.read_text().endswith("\nmore words\n")
    stale.write_text("no markers")
    with pytest.raises(ValueError, match="no generated-tables markers"):
        page.rewrite(stale)
