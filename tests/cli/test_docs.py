"""docs/cli.md is generated from the parsers and kept in step with them."""
from pathlib import Path

from nimble.cli.reference import reference

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_reference_matches_the_parsers():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(), "docs/cli.md is stale: python3 -m nimble.cli.reference > docs/cli.md"


def test_the_cli_reference_covers_every_command_and_subcommand():
    text = reference()
    for heading in ("## nimble-tune", "## nimble-db", "## nimble-run", "### nimble-db export", "### nimble-db plot"):
        assert heading in text
    assert "--time-budget" in text and "--busy-repeat" in text and "--no-cache" in text
