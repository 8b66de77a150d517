"""docs/cli.md is generated from the parsers and kept in step with them."""
import tomllib
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


def _pytest_args(line: str) -> list[str]:
    return line.split("#")[0].split("-m pytest", 1)[1].split()


def test_ci_runs_the_readmes_test_command_in_parallel():
    """.ci/run runs the README's test command (plus report-only options), with pytest-xdist on every core."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("## Tests", 1)[1]
    [documented] = [line for line in readme.split("```")[1].splitlines() if "-m pytest" in line]
    [ci] = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
            if line.startswith("python3 -m pytest")]
    ci_args, doc_args = _pytest_args(ci), _pytest_args(documented)
    assert ci_args[:len(doc_args)] == doc_args, f".ci/run's {ci_args} does not start with the README's {doc_args}"
    assert set(ci_args[len(doc_args):]) <= {"-p", "no:cacheprovider", "--durations=25"}
    assert "-n" in doc_args and "--dist" in doc_args
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert all(any(r.startswith("pytest-xdist") for r in extras[name]) for name in ("dev", "test"))
