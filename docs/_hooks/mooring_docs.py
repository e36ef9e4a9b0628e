"""mkdocs hooks for the mooring site: the CLI reference, and Sphinx markup in docstrings.

- A page that contains the line ``<!-- mooring-cli-help -->`` gets, in its place, one section
per command with the exact ``--help`` output argparse prints, taken from
:func:`mooring.cli.build_parser` at build time, so the reference cannot drift from the code.
- mooring's docstrings use a few Sphinx habits (``:class:`X```, ``Example::``) that the
  API reference's Markdown renderer shows literally; the rendered pages drop the role
  prefix (the name stays as code) and the second colon.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- mooring-cli-help -->"
_ROLE = re.compile(r":(?:class|func|meth|mod|data|exc|attr|obj):(?=<code>)")
_LITERAL_BLOCK = re.compile(r"<p>([^<]*?)::</p>")
_SRC = Path(__file__).resolve().parents[2] / "src"


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> list[tuple[list[str], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, [*path, name]))
    return found


def render_cli_help() -> str:
    """Markdown for every command, the top-level one first, in the parser's order."""
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    from mooring.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; fix the width for a stable page
    try:
        sections = []
        for path, parser in _commands(build_parser(), ["mooring"]):
            title = " ".join(path)
            level = "##" if len(path) <= 2 else "###"
            help_text = parser.format_help().rstrip()
            sections.append(f"{level} `{title}` {{ #{'-'.join(path)} }}\n\n```text\n{help_text}\n```\n")
        return "\n".join(sections)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_cli_help())


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if not page.file.src_uri.startswith("reference/"):
        return html
    return _LITERAL_BLOCK.sub(r"<p>\1:</p>", _ROLE.sub("", html))
