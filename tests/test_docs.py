"""The README and the pages under docs/: every relative link resolves (the file, and the #anchor of a
Markdown heading in it), and every page is linked from the README and links back. Reads files only: no JAX."""

import os
import re
import unicodedata

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
DATA = os.path.join(DOCS, "data")
PAGES = sorted(  # the folders below docs/data/ hold runs and the tables the experiments write beside them: not pages
    [os.path.join(ROOT, "README.md")]
    + [
        os.path.join(dirpath, name)
        for dirpath, _, names in os.walk(DOCS)
        for name in names
        if name.endswith(".md") and not dirpath.startswith(DATA + os.sep)
    ]
)

INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^\s{0,3}(```|~~~).*?^\s{0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def without_code(text):
    """The text with fenced blocks and inline code blanked out: links shown as code are not links."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def slug(heading):
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def anchors(path):
    """Every heading anchor of a Markdown file, with GitHub's -1, -2, ... for repeated headings."""
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())
    seen, result = {}, set()
    for match in HEADING.finditer(text):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path):
    """The link targets of a Markdown file (inline, reference-style and HTML), code excluded."""
    with open(path, encoding="utf-8") as f:
        text = without_code(f.read())
    return [m.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK) for m in pattern.finditer(text)]


def broken_links(path):
    """Each relative link of `path` whose file, or whose #anchor in a Markdown file, does not exist."""
    broken = []
    for target in links(path):
        if EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(resolved):
            broken.append(f"{target} (no file {os.path.relpath(resolved, ROOT)})")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {os.path.relpath(resolved, ROOT)})")
    return broken


def linked_files(path):
    """The files (absolute paths) that the relative links of `path` point to."""
    files = set()
    for target in links(path):
        file_part = target.partition("#")[0]
        if file_part and not EXTERNAL.match(target):
            files.add(os.path.normpath(os.path.join(os.path.dirname(path), file_part)))
    return files


@pytest.mark.parametrize("path", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_every_relative_link_resolves(path):
    assert links(path), f"{path} has no links at all: is the link pattern still right?"
    assert broken_links(path) == []


def test_every_docs_page_is_linked_from_the_readme_and_links_back():
    readme = os.path.join(ROOT, "README.md")
    for page in PAGES:
        if page == readme:
            continue
        name = os.path.relpath(page, ROOT)
        assert page in linked_files(readme), f"README.md does not link to {name}"
        assert readme in linked_files(page), f"{name} does not link back to README.md"


def test_the_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path):
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## Results: Snake 6×6 (`--outer-critic`)\n\n## Results\n\n## Results\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[ok](other.md#results-snake-66---outer-critic) [ok](other.md#results-1) [ok](#title) [web](https://example.org/x)\n"
        "`[in code](missing.md)`\n\n```\n[in a fence](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) ![image](figure.png)\n"
    )
    assert broken_links(str(page)) == [
        "missing.md (no file " + os.path.relpath(str(tmp_path / "missing.md"), ROOT) + ")",
        "other.md#nowhere (no heading #nowhere in " + os.path.relpath(str(tmp_path / "other.md"), ROOT) + ")",
        "figure.png (no file " + os.path.relpath(str(tmp_path / "figure.png"), ROOT) + ")",
    ]
