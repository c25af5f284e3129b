"""The README's set-up is what CI runs, and it says how a stock machine gets the CPU torch wheel."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set-up"):]
    blocks = re.findall(r"```\n(.*?)\n```", setup, flags=re.S)
    assert len(blocks) >= 2, "the set-up section has its two commands"
    return [part.strip() for part in blocks[0].split("&&")]


def _normal(command: str) -> list[str]:
    return [word for word in shlex.split(command) if word != "-q"]


def test_ci_installs_exactly_as_the_readme_says():
    readme = [_normal(c) for c in readme_setup_commands() if c.startswith(".venv/bin/pip install")]
    ci = [_normal(line) for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.startswith(".venv/bin/pip install")]  # fmt: skip
    assert readme == ci and len(readme) == 2
    assert readme[0][2].startswith("torch==")  # torch first, pinned


def test_readme_says_how_to_get_the_cpu_wheel_on_a_stock_machine():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    pin = next(word for word in _normal(readme_setup_commands()[1]) if word.startswith("torch=="))
    assert f"pip install {pin} --index-url https://download.pytorch.org/whl/cpu" in text
