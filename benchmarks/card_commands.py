"""Run every shipped model card's evaluate commands as a user would and compare with the card.

    OMP_NUM_THREADS=2 python benchmarks/card_commands.py --work runs/zoo            # every shipped model
    OMP_NUM_THREADS=2 python benchmarks/card_commands.py --work runs/zoo --models h36m humaneva

Each card lists its validation numbers with the `diffupose evaluate` command that made them
(`val_results`); this script runs each command with the card's `data.npz` replaced by
WORK/<name>/data.npz (the file `benchmarks/zoo.py` prepares there; `--data NAME=PATH` points a
model elsewhere) and prints a table: card MPJPE / P-MPJPE (the average over actions), the
numbers now, and whether they agree within --tolerance mm. Exits 1 when one does not.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffupose.inference import zoo
from diffupose.evaluation.metrics import AVERAGE


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="runs/zoo", help="folder with <name>/data.npz per model (default runs/zoo)")
    p.add_argument("--models", nargs="+", default=None, help="shipped model names (default: all)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                   help="the prepared file of one model (default WORK/<name>/data.npz); repeatable")
    p.add_argument("--tolerance", type=float, default=0.05, help="mm of disagreement allowed (default 0.05)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    names = args.models or zoo.available()
    given = dict(item.split("=", 1) for item in args.data)
    for name in names:                                   # every file first: fail before the work starts
        path = Path(given.get(name, Path(args.work) / name / "data.npz"))
        if not path.is_file():
            raise SystemExit(f"{path}: no prepared file for {name} (benchmarks/zoo.py prepares it, or pass "
                             f"--data {name}=PATH)")
        given[name] = str(path)
    print("| model | 2D input | N | card MPJPE | now | card P-MPJPE | now | agrees | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    failed = 0
    for name in names:
        for row in zoo.card(name).get("val_results", []):
            cmd = [given[name] if a == "data.npz" else a for a in shlex.split(row["command"])]
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "result.json"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "diffupose", *cmd[1:], "--json", str(out)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = time.perf_counter() - start
                result = json.loads(out.read_text())["per_action"]
            now, now_p = result["MPJPE"][AVERAGE], result["P-MPJPE"][AVERAGE]
            ok = abs(now - row["mpjpe"]) <= args.tolerance and abs(now_p - row["p_mpjpe"]) <= args.tolerance
            failed += not ok
            print(f"| {name} | {row['input_2d']} | {row['num_hypotheses']} | {row['mpjpe']:.2f} | {now:.2f} | "
                  f"{row['p_mpjpe']:.2f} | {now_p:.2f} | {'yes' if ok else 'NO'} | {seconds:.0f} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
