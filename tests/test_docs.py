"""The documentation stands alone: every link in the README and docs/ points to a file of the
repository that exists, and none leaves it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(page):
    """The targets of a page's Markdown links and images, without their #anchors."""
    return [target.split("#")[0] for target in LINK.findall(page.read_text()) if not target.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_is_a_file_of_the_repository(page):
    """Each link resolves to an existing file inside the repository: no web page, no ../shared."""
    for target in links(page):
        path = (page.parent / target).resolve()
        assert ROOT in path.parents, f"{page.name} links outside the repository: {target}"
        assert path.is_file(), f"{page.name} links to a missing file: {target}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_no_page_refers_to_the_shared_folder(page):
    """No page names a path outside a clone (../shared does not exist there)."""
    assert "../shared" not in page.read_text()


def test_links_finds_relative_links_and_skips_anchors(tmp_path):
    """The link finder sees files and images, and leaves in-page anchors alone."""
    page = tmp_path / "page.md"
    page.write_text("[a](docs/api.md#layers) ![plot](../x.png) [here](#quick-start)")
    assert links(page) == ["docs/api.md", "../x.png"]
