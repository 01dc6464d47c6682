"""The user documentation matches the code it describes."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from nasnc_search.cli import main

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["search"],
    ["report"],
    ["evaluate"],
    ["train"],
    ["scores"],
    ["compare"],
    ["bench", "import"],
    ["bench", "show"],
    ["space", "info"],
    ["space", "show"],
]


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0, f"'nasnc {' '.join(argv)} --help' failed"
    text = out.getvalue().rstrip()
    assert text.startswith(" ".join(["usage: nasnc", *argv])), text[:200]
    return text


def _subcommands(argv: list[str]) -> set[str]:
    """The commands a help text lists under its 'commands:' heading."""
    listing = _help(argv).split("\ncommands:\n", 1)[1]
    return set(re.findall(r"^    (\w+) ", listing, flags=re.M))


def test_every_command_is_in_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    listed = {(c,) for c in _subcommands([])}
    for group in {c[0] for c in COMMANDS if len(c) == 2}:
        listed = (listed - {(group,)}) | {(group, c) for c in _subcommands([group])}
    assert listed == {tuple(c) for c in COMMANDS}


@pytest.mark.parametrize("argv", [[], *COMMANDS], ids=lambda a: " ".join(a) or "nasnc")
def test_cli_reference_shows_the_current_help(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal width
    doc = (REPO / "docs" / "cli.md").read_text()
    assert _help(argv) in doc, f"docs/cli.md: the help of 'nasnc {' '.join(argv)}' is stale"


def test_readme_links_resolve_and_stay_short() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to a missing file: {target}"
