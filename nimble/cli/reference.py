"""The CLI reference (``docs/cli.md``), generated from the argparse parsers of the console scripts.

    python3 -m nimble.cli.reference > docs/cli.md

``tests/cli/test_docs.py`` checks that the committed file matches what this prints.
"""
from __future__ import annotations

import argparse
import os
import sys


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix the width for a stable file
    return parser.format_help().rstrip()


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # noqa: SLF001 - argparse has no public accessor for subcommands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _sentence(doc: str) -> str:
    first = doc.strip().splitlines()[0].split(": ", 1)[-1]
    return first[:1].upper() + first[1:]


def reference() -> str:
    """Markdown: each command's docstring summary and its ``--help``, subcommands included."""
    from . import db, run, tune

    parts = ["# Command-line reference", "",
             "Generated from the argparse parsers by `python3 -m nimble.cli.reference > docs/cli.md`; "
             "do not edit by hand.", ""]
    for name, module in (("nimble-tune", tune), ("nimble-db", db), ("nimble-run", run)):
        parser = module.build_parser()
        parts += [f"## {name}", "", _sentence(module.__doc__), "",
                  "```", _help(parser), "```", ""]
        for sub, subparser in _subparsers(parser).items():
            parts += [f"### {name} {sub}", "", "```", _help(subparser), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(reference())
