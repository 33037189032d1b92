"""Print pyproject.toml's dependencies, one per line, leaving out the named packages.

    python deploy/requirements.py --without torch transformers

The indexer, merger and gateway images install memeflow with `--no-deps` and then this
list: no model runs in them, so they need neither torch nor transformers.
"""

import argparse
import re
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(without: set[str]) -> list[str]:
    """The pinned requirements whose distribution name is not in `without`."""
    listed = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return [req for req in listed
            if re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower() not in without]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without", nargs="*", default=[], metavar="NAME")
    args = parser.parse_args()
    print("\n".join(requirements({name.lower() for name in args.without})))
