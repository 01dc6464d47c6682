"""Packaging: every package folder is installed, under a name no user file shadows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)^\]", text, flags=re.M | re.S)
    assert block is not None, "pyproject.toml lists no packages"
    return set(re.findall(r'"([\w.]+)"', block.group(1)))


def test_every_package_folder_is_declared() -> None:
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nasnc").rglob("__init__.py")
    }
    found |= {
        "nasnc_search" + "".join("." + part for part in p.parent.relative_to(REPO / "search").parts)
        for p in (REPO / "search").rglob("__init__.py")
    }
    assert found == _declared_packages()


def test_a_users_search_module_does_not_shadow_the_optuna_layer(tmp_path: Path) -> None:
    """A ``search.py`` in the working directory is the user's, not ours."""
    (tmp_path / "search.py").write_text("raise ImportError('the user search.py was imported')\n")
    code = (
        "import nasnc_search.cli, nasnc_search._study\n"
        "from nasnc_search import CapacitancePruner\n"
        "print(CapacitancePruner.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nasnc_search._pruner"
    cli = subprocess.run(
        [sys.executable, "-m", "nasnc_search.cli._main", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "search" in cli.stdout
