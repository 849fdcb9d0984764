"""MkDocs hook (mkdocs.yml `hooks:`), not a page of the site.

README.md is the site's index page without a copy of it in docs/: on_files publishes it as `index.md`, with its
links into `docs/` made relative to the site (README links only there), so README.md stays the one source (pages
link to it as ../README.md, which reads on GitHub and in the folder, and becomes the index here). And
before any page is rendered, every command module is imported, so the command reference (mkdocs-click walks the
loaded click group) lists every command, not only those the CLI has loaded so far.
"""
from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS_LINK = re.compile(r"(\]\()docs/")  # [text](docs/page.md) -> [text](page.md)
README_LINK = re.compile(r"(\]\()(?:\.\./)+README\.md")  # a page's [text](../README.md) -> the site's index


def on_config(config):
    from harness.cli import all_commands

    all_commands()
    return config


def on_files(files, config):
    text = DOCS_LINK.sub(r"\1", README.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=text))
    return files


def on_page_markdown(markdown, page, config, files):
    up = "../" * page.file.src_uri.count("/")
    return README_LINK.sub(lambda m: f"{m.group(1)}{up}index.md", markdown)
