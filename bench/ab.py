"""Before/after in one run: a bench of this repository run on two commits, interleaved.

Each commit is exported (``git archive``) into a temporary folder laid out as the installed package
(``envs/`` -> ``selfgym/envs`` ...), and its own copy of the bench runs with that folder first on
``PYTHONPATH`` (the installed dependencies are shared). The runs alternate A, B, A, B... so load
on the machine falls on both sides alike; each run's output is printed under its label.

Run: ``python bench/ab.py REV_A REV_B bench/rollout.py [--repeats 2] -- --model embedded --episodes 8``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("envs", "agents", "skills", "trainers")  # folders setup.py maps under selfgym/


def export(rev: str, into: Path) -> Path:
    """The commit's files under ``into/src`` and an importable ``selfgym`` package under ``into/pkg``."""
    src, pkg = into / "src", into / "pkg"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             check=True, capture_output=True).stdout
    tar_path = into / "rev.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(src, filter="data")
    shutil.copytree(src / "selfgym", pkg / "selfgym")
    for name in SUBPACKAGES:
        if (src / name).is_dir():
            shutil.copytree(src / name, pkg / "selfgym" / name)
    return src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev_a")
    parser.add_argument("rev_b")
    parser.add_argument("bench", help="the bench script, relative to the repository root")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, interleaved")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, bench_args = parser.parse_args(argv[:cut]), argv[cut + 1:]  # after --: the bench's own arguments
    with tempfile.TemporaryDirectory(prefix="selfgym-ab-") as tmp:
        sides = []
        for label, rev in (("A", args.rev_a), ("B", args.rev_b)):
            sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                                 capture_output=True, text=True).stdout.strip()
            src = export(rev, Path(tmp) / label)
            if not (src / args.bench).exists():
                sys.exit(f"{args.bench} does not exist at {rev}")
            sides.append((f"{label} {rev} ({sha})", src, Path(tmp) / label / "pkg"))
        for repeat in range(args.repeats):
            for name, src, pkg in sides:
                env = {**os.environ, "PYTHONPATH": str(pkg)}
                print(f"===== {name}, run {repeat + 1}/{args.repeats}: {args.bench} {' '.join(bench_args)}",
                      flush=True)
                out = subprocess.run([sys.executable, str(src / args.bench), *bench_args], cwd=tmp, env=env)
                if out.returncode:
                    sys.exit(f"{name}: the bench exited with {out.returncode}")


if __name__ == "__main__":
    main()
