"""The documentation site builds offline with ``mkdocs build --strict`` (what ``make docs`` runs), and
the strict build really fails on a broken link or anchor, naming it. Every page the code cites
(``docs/<page>.md#<anchor>`` in docstrings and comments) exists with that anchor, and the limits
page lists every limit of ``sweeps/limits.py`` with its default."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("mutransfer", "sweeps", "service", "dashboards", "benchmarks", "tests")
OLD_CITATION = "SPEC " + "§"  # the earlier citations of a document that is not in the repository
CITATION = re.compile(r"docs/((?:[\w-]+/)*[\w-]+)\.md(?:#([\w-]+))?")


def mkdocs_build(config_dir: Path, site_dir: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of the config in ``config_dir`` into ``site_dir``, in a fresh process."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=config_dir, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = mkdocs_build(ROOT, out)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    return out


def test_site_builds_strict_with_every_section(site):
    for page in ("index.html", "guide/index.html", "reference/conventions.html", "reference/transfer-analysis.html",
                 "operations/limits.html", "performance/index.html", "architecture.html",
                 "science/notebook/index.html", "api/results.html", "api/report.html"):
        assert (site / page).is_file(), page
    # the API pages are rendered from the docstrings, not left as a bare `::: identifier`
    for page, entry in (("report", "optimum_shift_report"), ("results", "load")):
        api = (site / "api" / f"{page}.html").read_text()
        assert f'id="mutransfer.{page}.{entry}"' in api and ":::" not in api, page
        assert not re.search(r":(func|meth|class|mod|data):<code>", api), f"{page}: a Sphinx role left in the page"
    # pages in the folder tree appear in the navigation without being listed anywhere
    home = (site / "index.html").read_text()
    for page in ("reference/claims.html", "science/notebook/width.html", "operations/gpu-check.html"):
        assert page in home, page


def code_citations() -> dict[tuple[str, str | None], list[str]]:
    found: dict[tuple[str, str | None], list[str]] = {}
    for d in CODE_DIRS:
        for f in sorted((ROOT / d).rglob("*.py")):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                for m in CITATION.finditer(line):
                    found.setdefault((m.group(1), m.group(2)), []).append(f"{f.relative_to(ROOT)}:{n}")
    return found


def test_code_cites_pages_and_anchors_that_exist(site):
    cited = code_citations()
    assert len(cited) >= 15, cited  # the spec reference is what the docstrings cite
    for (page, anchor), where in cited.items():
        html = site / f"{page}.html"
        assert html.is_file(), f"{where}: cites docs/{page}.md, which is not a page of the site"
        if anchor:
            assert f'id="{anchor}"' in html.read_text(), f"{where}: docs/{page}.md has no anchor #{anchor}"
    stale = [f"{f.relative_to(ROOT)}:{n}" for d in CODE_DIRS for f in sorted((ROOT / d).rglob("*.py"))
             for n, line in enumerate(f.read_text().splitlines(), 1) if OLD_CITATION in line]
    assert not stale, f"cite the docs pages, not {OLD_CITATION}N: {stale}"


def test_readme_links_resolve(site):
    """Every relative link of the README names a file of the repository, and a docs page's anchor
    exists on the built page."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not re.match(r"[a-z]+://|#", link)]
    assert len(relative) >= 10, relative
    for link in relative:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"README links to {path}, which does not exist"
        if anchor and path.startswith("docs/") and path.endswith(".md"):
            page = site / (path[len("docs/"):-len(".md")] + ".html")
            assert f'id="{anchor}"' in page.read_text(), f"README links to {link}: no such anchor"


def test_strict_build_fails_on_a_broken_link_naming_it(tmp_path):
    """A copy of the site plus one page with a link to a missing page and one to a missing anchor:
    the strict build fails, and its output names the page and both links (without the page the same
    docs build: the ``site`` fixture)."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "mutransfer").symlink_to(ROOT / "mutransfer")  # for the API pages' docstrings
    (tmp_path / "docs" / "broken-page.md").write_text(
        "# A page with broken links\n\nSee [a page that does not exist](no-such-page.md) and\n"
        "[an anchor that does not exist](reference/conventions.md#no-such-anchor).\n")
    r = mkdocs_build(tmp_path, tmp_path / "site")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "strict mode" in out and "broken-page.md" in out, out
    assert "no-such-page.md" in out and "#no-such-anchor" in out, out


def test_limits_page_lists_every_limit_with_its_default():
    from sweeps.limits import describe

    page = (ROOT / "docs" / "operations" / "limits.md").read_text()
    for env, default, doc in describe():
        assert f"| `{env}` | {default} | {doc} |" in page, env
