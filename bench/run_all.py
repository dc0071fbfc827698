"""`make bench`: every benchmark on whatever device is present; results in bench/results/*.json
and a Markdown table on stdout (the README's performance section is that table)."""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = [
    ("bench_pack.py", []),
    ("bench_loader.py", ["--format", "png"]),
    ("bench_loader.py", ["--format", "jpg"]),
    ("bench_loader.py", ["--format", "npy"]),
    ("bench_train.py", []),
    ("bench_choices.py", []),
]


def table(results):
    lines = ["| benchmark | device | figures | ratio |", "|---|---|---|---|"]
    for r in results:
        ratio = next(((k, v) for k, v in r.items() if k.startswith("speedup")), None)
        if ratio is None:  # not a speed benchmark (the quality table has its own section)
            continue
        figs = ", ".join(f"{k} {v}" for k, v in r["figures"].items() if "per_s" in k or k in ("format", "fraction"))
        lines.append(f"| {r['benchmark']} | {r['machine']['device']} ({r['machine']['cores']} cores) | {figs} | "
                     f"{ratio[0]} **{ratio[1]}x** |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = ap.parse_args()
    extra = ["--images", "200"] if args.quick else []
    results_dir = os.path.join(HERE, "results")
    env = dict(os.environ)
    if args.quick:  # smoke figures must not replace the committed results
        import tempfile

        results_dir = env["FACEGAN_BENCH_RESULTS"] = tempfile.mkdtemp(prefix="facegan-bench-quick-")
    for script, opts in RUNS:
        more = list(extra)
        if args.quick and script == "bench_train.py":
            more += ["--steps", "4", "--warmup", "2", "--ngf", "8", "--batch", "16"]
        if args.quick and script == "bench_loader.py":
            more += ["--batches", "4", "--batch", "32"]
        if script == "bench_choices.py":
            more = ["--steps", "3", "--ngf", "8", "--batch", "16"] if args.quick else []
        subprocess.run([sys.executable, os.path.join(HERE, script), *opts, *more], check=True, env=env)
    results = []
    for name in sorted(os.listdir(results_dir)):
        with open(os.path.join(results_dir, name)) as f:
            results.append(json.load(f))
    print(table(results))


if __name__ == "__main__":
    main()
