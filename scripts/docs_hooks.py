"""MkDocs hooks (mkdocs.yml ``hooks:``): the CLI reference's ``--help`` texts, generated at
build time from the argparse parser that ``enphase-battery`` itself runs, so the page never
drifts from the program.

The marker ``<!-- cli-help -->`` in a page becomes one section per command and sub-command,
each with the text ``enphase-battery <command> --help`` prints (at 100 columns).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-help -->"
COLUMNS = "100"


def commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the tree, depth first, with the words that reach it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*words, name))


def cli_help_markdown() -> str:
    """The ``--help`` of every command of ``enphase-battery``, as Markdown sections."""
    from enphase_battery.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS  # argparse wraps to the terminal's width
    try:
        parts = []
        for words, parser in commands(build_parser()):
            title = " ".join(("enphase-battery", *words))
            parts.append(f"### `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_help_markdown())
    return markdown
