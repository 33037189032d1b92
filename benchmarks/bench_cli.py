"""Cold wall time of `memeflow count` and `memeflow search TEXT` against a running Flow.

Each run is a fresh Python process, as a user's shell starts it (cold: nothing imported
yet; the operating system's file cache is warm after the first run, as it is for a user).
With `--baseline-tree DIR` (a checkout of an earlier commit, e.g. made with
`git archive COMMIT | tar -x -C DIR`), the same commands run from that tree too,
alternating with this one, so both are measured in one run under the same load; the
ratio is what to trust on a busy machine. `--importtime` also prints what
`python -X importtime` attributes to the CLI's imports, largest first.

    python benchmarks/bench_cli.py [--host grpc://HOST:PORT] [--baseline-tree DIR] [--runs 7]

Without `--host`, a Flow with the no-weights test model is started on free ports (and a
few memes indexed, so the search has something to find).
"""

import argparse
import contextlib
import itertools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flowrun import REPO, SHARED, load, running_flow

MEMES = SHARED / "data" / "memes" / "templates"
COMMANDS = {"count": ["count"], "search TEXT": ["search", "a cat at a dinner table",
                                                "--preview", "never"]}
RUNNER = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
          "from memeflow.cli.main import main; sys.exit(main())")


def cpu_flags() -> str:
    """The CPU's model and the flags that matter for numeric code, as BENCHMARKS.md records."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    wanted = [f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512_vnni",
                                         "amx_tile", "sse4_2"}]
    return f"{model}; {os.cpu_count()} cores; flags: {' '.join(wanted) or 'none of note'}"


def run_once(tree: Path, argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting the process to its exit; fails loudly on a failed command."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, str(tree), *argv], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} from {tree} failed: {done.stderr.strip()}")
    return elapsed


def import_times(tree: Path, argv: list[str], env: dict[str, str], top: int = 10
                 ) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the packages a command imports, largest first:
    the modules imported at the top level of the command's run (`-X importtime`), and
    below `memeflow` the modules it imports itself."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", RUNNER, str(tree), *argv],
                          env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        module = name.strip()
        if depth == 0 or (depth == 1 and not module.startswith("memeflow")):
            rows.append((int(parts[1]), module))
    return sorted(rows, reverse=True)[:top]


@contextlib.contextmanager
def service(host: str | None) -> Iterator[str]:
    if host:
        yield host
        return
    with tempfile.TemporaryDirectory() as tmp, running_flow(Path(tmp) / "flow.log") as ports:
        host = f"grpc://127.0.0.1:{ports.grpc}"
        memes = sorted(MEMES.rglob("*.jpg"))[:20]
        env = dict(os.environ, MEMEFLOW_HOST=host)
        subprocess.run([sys.executable, "-m", "memeflow.cli.main", "index", "-q",
                        *map(str, memes)], env=env, check=True, capture_output=True)
        yield host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="a running Flow (default: start one)")
    parser.add_argument("--baseline-tree", type=Path, help="an earlier checkout to compare")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    trees = {"this tree": REPO}
    if args.baseline_tree:
        trees = {"baseline": args.baseline_tree.resolve(), **trees}
    print(cpu_flags())
    with service(args.host) as host:
        env = dict(os.environ, MEMEFLOW_HOST=host, JINA_OPTOUT_TELEMETRY="1")
        if args.importtime:
            for (label, argv), (name, tree) in itertools.product(COMMANDS.items(),
                                                                  trees.items()):
                print(f"\nwhat `memeflow {label}` imports ({name}), cumulative ms:")
                for micros, module in import_times(tree, argv, env):
                    print(f"  {micros / 1000:8.1f}  {module}")
        times: dict[tuple[str, str], list[float]] = {}
        for tree in trees.values():  # one warm-up each: the file cache, not Python's
            for argv in COMMANDS.values():
                run_once(tree, argv, env)
        for _ in range(args.runs):
            for label, argv in COMMANDS.items():
                for name, tree in trees.items():
                    times.setdefault((label, name), []).append(run_once(tree, argv, env))
        bare = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            bare.append(time.perf_counter() - start)
        print(f"\ncold wall time, median of {args.runs} runs ({load()} at the end):")
        print(f"  python -c pass         {statistics.median(bare):.2f} s (the interpreter alone)")
        for label in COMMANDS:
            medians = {name: statistics.median(times[(label, name)]) for name in trees}
            cells = ", ".join(f"{name} {m:.2f} s" for name, m in medians.items())
            ratio = (f" (this tree / baseline: {medians['this tree'] / medians['baseline']:.2f})"
                     if "baseline" in medians else "")
            print(f"  memeflow {label:<12} {cells}{ratio}")


if __name__ == "__main__":
    main()
