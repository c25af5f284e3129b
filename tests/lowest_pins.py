"""Write ``NAME==LOWER`` for every dependency setup.cfg declares with a ``>=`` bound (``tox -e lowest``).

uv's ``--resolution lowest-direct`` alone may settle on a higher version of one package to keep
others low; pinning every declared floor at once tests exactly what setup.cfg promises (and fails
to install if two floors cannot go together). Usage: python tests/lowest_pins.py OUT [EXTRA ...]
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

from packaging.requirements import Requirement

SKIP = {"torch"}  # kept at the pinned CPU wheel (see tox.ini)


def lowest_pins(setup_cfg: Path, extras: list[str]) -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += cfg["options.extras_require"][extra].splitlines()
    pins = []
    for line in filter(None, (raw.strip() for raw in lines)):
        req = Requirement(line)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if lower and req.name not in SKIP:
            pins.append(f"{req.name}=={lower[0]}")
    return pins


if __name__ == "__main__":
    out, extras = Path(sys.argv[1]), sys.argv[2:]
    out.write_text("\n".join(lowest_pins(Path(__file__).resolve().parents[1] / "setup.cfg", extras)) + "\n")
