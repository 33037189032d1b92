"""Print pyproject.toml's dependencies, one per line, leaving out the named packages.

    python deploy/requirements.py --without torch transformers --extras milvus

The indexer, merger and gateway images install memeflow with `--no-deps` and then this
list: no model runs in them, so they need neither torch nor transformers.
"""

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(without: set[str], extras: Sequence[str] = ()) -> list[str]:
    """The pinned requirements, and those of the named extras (`optional-dependencies`),
    whose distribution name is not in `without`."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    listed = [*project["dependencies"],
              *(req for extra in extras for req in project["optional-dependencies"][extra])]
    return [req for req in listed
            if re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower() not in without]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--extras", nargs="*", default=[], metavar="EXTRA")
    args = parser.parse_args()
    print("\n".join(requirements({name.lower() for name in args.without}, args.extras)))
