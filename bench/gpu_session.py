"""Everything facegan needs measured and checked on a GPU, in one call of at most 8 minutes:

  data     pack synthetic cartoon faces (PNG, JPEG, raw .npy shards) and the classic loop's JPEGs
  pytest   pytest -m gpu: bf16 and fp16 + loss scaling through the trainer, resume on CUDA,
           torch.compile without recompiles, two processes over NCCL
  e2e      64x64 celeba64 recipe: the trainer vs the classic DCGAN loop and vs its own bound
           (the same step on a batch already on the device); the bound's MFU
  options  the step's options on the bound: precisions, channels_last, Adam, batch, torch.compile
  loader   the loader alone (PNG, JPEG, raw) and data.device_cache vs what the trainer consumes
  hires    128x128 and 256x256: img/s, peak memory, the largest batch that fits
  quality  the quality table's classic and best rows at 64x64, generators written to --out
           (score them on any machine with facegan-eval)

Each part runs in its own process under its own time limit: a part past its limit is stopped,
recorded as timed out, and the next part runs. Results: --out/results.json (every part's
figures and status), --out/session.log (every part's output), the quality rows' generators
and sample grids; at most 8 files, none over 16 MiB. --smoke runs the same code paths on a CPU
at tiny sizes in about a minute (tests/test_gpu_session.py runs it).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from facegan.io import write_bytes_atomic, write_text_atomic  # noqa: E402

MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20

# (name, time limit in s on a GPU, in --smoke). The GPU limits sum, with the quality part's
# remainder, to the --budget (460 s); the README's GPU section gives the estimate per part.
# The smoke limits only catch a hang: on a shared 2-core machine a part's time varies 3x.
PARTS = [("data", 60, 90), ("pytest", 130, 90), ("e2e", 60, 90), ("options", 90, 90),
         ("loader", 35, 90), ("hires", 40, 90), ("quality", 120, 90)]


def write_json(path: str, obj) -> None:
    """Atomically, in insertion order (the parts in the order they ran)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def make_plan(smoke: bool, workdir: str, out: str) -> dict:
    """Sizes of every measurement. A GPU run: the celeba64 recipe at 64x64 and every core; smoke:
    the same steps at 32x32 with tiny widths, batches and counts."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if smoke:
        sizes = dict(resolution=32, ngf=8, batch=16, images=192, variant_images=96, shard_size=24,
                     jpeg_images=64, workers=min(2, cores), steps=3, warmup=1, option_steps=2, option_warmup=1,
                     option_batches=[16, 32], compile_backend="eager", loader_batches=3, hires=[32, 64],
                     hires_batch=8, hires_steps=2, hires_warmup=1, max_batch=16, hires_search_s=30,
                     quality_kimg=0.064, quality_set=["data.workers=0", "log.every_steps=1"],
                     quality_rows=["best"],  # one row: the same code path as two
                     threads=1)  # tiny tensors: a second OpenMP thread only waits on a busy machine
    else:
        sizes = dict(resolution=64, ngf=64, batch=128, images=20000, variant_images=4000, shard_size=128,
                     jpeg_images=4000, workers=cores, steps=300, warmup=30, option_steps=100, option_warmup=20,
                     option_batches=[128, 256, 512], compile_backend="inductor", loader_batches=150,
                     hires=[128, 256], hires_batch=64, hires_steps=20, hires_warmup=5, max_batch=16384,
                     hires_search_s=25, quality_kimg=100, quality_set=[], quality_rows=["classic", "best"])
    r = sizes["resolution"]
    shards = {fmt: os.path.join(workdir, f"cartoon{r}-{fmt}") for fmt in ("png", "jpg", "npy")}
    return dict(sizes, smoke=smoke, workdir=workdir, out=out, shards=shards, jpegs=os.path.join(workdir, "jpegs"))


def part_command(name: str, plan_path: str, result_path: str) -> list:
    if name == "pytest":
        return [sys.executable, "-m", "pytest", "-m", "gpu", os.path.join(ROOT, "tests", "test_gpu.py"), "-v", "-rs",
                "-p", "no:cacheprovider", "--durations=0"]
    return [sys.executable, os.path.join(HERE, "gpu_parts.py"), name, "--plan", plan_path, "--out", result_path]


def run_limited(cmd: list, limit: float, log, env=None) -> tuple:
    """Run cmd in its own session with output to the open file log; after limit seconds end its
    whole process group (SIGTERM, then SIGKILL 5 s later). Returns (status, return code, seconds)
    with status ok | failed | timeout."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=max(limit, 0.1))
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        rc, status = proc.returncode, "timeout"
    finally:
        try:  # loader workers or a pytest child left behind by a part that ended by itself
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return status, rc, time.perf_counter() - t


def pytest_counts(text: str) -> dict:
    """Each test's outcome from pytest -v lines (so a run stopped at its limit still tells which
    tests passed), the counts, and the skip reasons from -rs."""
    tests = dict(re.findall(r"^\S*::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", text, flags=re.M))
    counts = {k.lower(): sum(1 for v in tests.values() if v == k) for k in ("PASSED", "FAILED", "SKIPPED", "ERROR")}
    skips = re.findall(r"^SKIPPED \[\d+\] (.*)$", text, flags=re.M)
    return dict(counts, tests=tests, skip_reasons=sorted(set(skips)))


def run_part(name: str, limit: float, plan: dict, plan_path: str, log_path: str, env: dict) -> dict:
    result_path = os.path.join(plan["workdir"], f"{name}.json")
    if os.path.exists(result_path):
        os.remove(result_path)
    part_log = os.path.join(plan["workdir"], f"{name}.log")
    with open(part_log, "w") as log:
        status, rc, seconds = run_limited(part_command(name, plan_path, result_path), limit, log, env)
    with open(part_log, errors="replace") as f:
        text = f.read()
    with open(log_path, "a") as log:
        log.write(f"\n===== {name}: {status} (exit {rc}) in {seconds:.1f} s, limit {limit:.0f} s =====\n{text}")
    entry = {"status": status, "exit_code": rc, "seconds": round(seconds, 1), "limit_s": round(limit, 1)}
    if name == "pytest":
        entry["figures"] = pytest_counts(text)
    elif os.path.exists(result_path):
        with open(result_path) as f:
            recorded = json.load(f)
        entry["figures"], entry["machine"] = recorded["figures"], recorded.get("machine")
    else:
        entry["figures"] = {}
    if status == "failed":
        entry["error"] = (text.strip().splitlines() or ["(no output)"])[-1][:300]
    elif status == "ok" and failed_measurements(entry["figures"]):
        entry["status"] = "partial"
        entry["error"] = "; ".join(failed_measurements(entry["figures"]))[:300]
    return entry


def failed_measurements(figures: dict, where: str = "") -> list:
    """'key: failed: ...' for each measurement a part recorded as failed (see Record.attempt)."""
    found = []
    for k, v in figures.items():
        if isinstance(v, str) and v.startswith("failed"):
            found.append(f"{where}{k}: {v}")
        elif isinstance(v, dict):
            found += failed_measurements(v, f"{where}{k}.")
    return found


def goals(parts: dict) -> dict:
    """The issue's goals, met or not, from the measured figures."""
    e2e = parts.get("e2e", {}).get("figures", {})
    loader = parts.get("loader", {}).get("figures", {})
    out = {}
    if isinstance(e2e.get("speedup_vs_classic"), (int, float)):
        speedup = e2e["speedup_vs_classic"]
        out["trainer >= 5x the classic loop"] = {"value": speedup, "met": speedup >= 5}
    if isinstance(e2e.get("fraction_of_bound"), (int, float)):
        out["trainer >= 90% of its bound"] = {"value": e2e["fraction_of_bound"], "met": e2e["fraction_of_bound"] >= 0.9}
    heads = [v["over_trainer"] for k, v in loader.items()
             if k.startswith(("loader_", "device_cache")) and isinstance(v.get("over_trainer"), (int, float))]
    if heads:
        out["loader never the limit (every format >= 1x the trainer)"] = {"value": min(heads), "met": min(heads) >= 1}
    return out


def headline(name: str, entry: dict) -> list:
    """A few short lines of a part's figures for the summary table."""
    f = entry.get("figures", {})
    num = lambda v, k="images_per_s": v.get(k) if isinstance(v, dict) else v  # noqa: E731
    if name == "pytest":
        return [", ".join(f"{f[k]} {k}" for k in ("passed", "failed", "skipped", "error") if f.get(k))
                or "no tests ran"] + [f"skip: {r[:90]}" for r in f.get("skip_reasons", [])[:3]]
    if name == "data":
        return [f"{k}: {v['images']} images in {v['seconds']} s" for k, v in f.items()]
    if name == "e2e":
        b = f.get("bound", {})
        return [f"classic {f.get('classic_images_per_s')}  facegan {f.get('facegan_images_per_s')}  "
                f"bound {num(b)} img/s",
                f"{f.get('speedup_vs_classic')}x classic, {f.get('fraction_of_bound')} of bound, "
                f"bound MFU {b.get('mfu') if isinstance(b, dict) else None}"]
    if name in ("options", "loader", "hires"):
        lines = []
        for k, v in f.items():
            if k == "setup":
                continue
            if isinstance(v, dict) and "images_per_s" in v:
                extra = "".join(f"  {x} {v[x]}" for x in ("vs_trainer_choices", "over_trainer", "mfu", "recompiles",
                                                          "peak_mem_mb") if x in v)
                lines.append(f"{k}: {v['images_per_s']} img/s{extra}")
            elif isinstance(v, dict):
                lines.append(f"{k}: " + ", ".join(f"{x} {y}" for x, y in v.items()))
        return lines
    if name == "quality":
        return [f"{k} ({v['variant']}): {v['kimg']} kimg in {v['train_wall_s']} s, {v['images_per_s']} img/s"
                for k, v in f.items()]
    return []


def summary(result: dict) -> str:
    m = result["machine"] or {}
    lines = ["", f"gpu-session on {m.get('device', '?')} ({m.get('cpu', '?')}, {m.get('cores', '?')} cores), "
                 f"torch {m.get('torch', '?')}", "", "| part | status | s (limit) | figures |", "|---|---|---|---|"]
    for name, entry in result["parts"].items():
        figs = headline(name, entry) or ["-"]
        if entry.get("error"):
            figs.append(f"error: {entry['error']}")
        lines.append(f"| {name} | {entry['status']} | {entry['seconds']} ({entry['limit_s']}) | {figs[0]} |")
        lines += [f"| | | | {x} |" for x in figs[1:]]
    lines.append("")
    for goal, g in result["goals"].items():
        lines.append(f"goal: {goal}: {g['value']} -> {'met' if g['met'] else 'SHORT'}")
    if result["plan"]["smoke"]:
        lines.append("(smoke run: CPU sizes; the goals are for a GPU)")
    return "\n".join(lines)


def check_out(out: str) -> list:
    """Problems with what goes back: more than MAX_FILES files or any file over MAX_FILE_BYTES."""
    files = sorted(os.listdir(out))
    problems = [f"{len(files)} files (at most {MAX_FILES})"] if len(files) > MAX_FILES else []
    problems += [f"{f}: {os.path.getsize(os.path.join(out, f)) / 2**20:.1f} MiB (at most 16)"
                 for f in files if os.path.getsize(os.path.join(out, f)) > MAX_FILE_BYTES]
    return problems


def trim_log(path: str, keep: int = 15 * 2**20) -> None:
    """Keep the head and tail of a log that grew past the per-file limit."""
    if os.path.getsize(path) <= keep:
        return
    with open(path, "rb") as f:
        head = f.read(keep // 4)
        f.seek(-(keep * 3 // 4), os.SEEK_END)
        tail = f.read()
    write_bytes_atomic(path, head + b"\n[... log trimmed to fit 16 MiB ...]\n" + tail)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or os.path.join(HERE, "out", "gpu-session"),
                    help="results directory (default: $OUT if set, else bench/out/gpu-session)")
    ap.add_argument("--smoke", action="store_true", help="CPU sizes: every code path in about a minute")
    ap.add_argument("--budget", type=float, default=0, help="seconds for the whole session (default 460; smoke 600)")
    ap.add_argument("--parts", default=",".join(p for p, _, _ in PARTS), help="comma list, in the fixed order")
    ap.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS", help="override a part's limit")
    ap.add_argument("--workdir", default="", help="data and runs (default: a new temporary directory)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    budget = args.budget or (600 if args.smoke else 460)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in {n for n, _, _ in PARTS}]
    if unknown:
        ap.error(f"--parts: unknown part {', '.join(unknown)}")
    limits = {n: (s if args.smoke else g) for n, g, s in PARTS}
    for item in args.limit:
        name, _, seconds = item.partition("=")
        if name not in limits or not re.fullmatch(r"\d+(\.\d+)?", seconds):
            ap.error(f"--limit: expected PART=SECONDS with PART one of {', '.join(limits)}, got {item!r}")
        limits[name] = float(seconds)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="facegan-gpu-session-"))
    os.makedirs(workdir, exist_ok=True)
    plan = make_plan(args.smoke, workdir, out)
    plan_path = os.path.join(workdir, "plan.json")
    log_path = os.path.join(out, "session.log")
    open(log_path, "w").close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
               PYTHONUNBUFFERED="1")
    if args.smoke:  # the parts' training subprocesses too
        env["OMP_NUM_THREADS"] = str(plan["threads"])

    # This process never imports torch: a CUDA context here would hold GPU memory all session long.
    # The machine's description comes from the first part that records one.
    result = {"benchmark": "gpu-session", "machine": None, "date": time.strftime("%Y-%m-%d %H:%M"),
              "plan": plan, "parts": {}, "goals": {}}
    print(f"gpu-session: {len(wanted)} parts, budget {budget:.0f} s, out {out}", flush=True)
    for name, _, _ in PARTS:
        if name not in wanted:
            continue
        left = budget - (time.perf_counter() - t0)
        limit = min(limits[name], left)
        if limit < 5:
            result["parts"][name] = {"status": "skipped: no time left", "seconds": 0, "limit_s": round(limit, 1),
                                     "figures": {}}
            continue
        e2e = result["parts"].get("e2e", {}).get("figures", {})
        plan["trainer_images_per_s"] = e2e.get("facegan_images_per_s")  # what the loader must keep up with
        write_json(plan_path, plan)
        print(f"gpu-session: [{name}] up to {limit:.0f} s ...", flush=True)
        entry = run_part(name, limit, plan, plan_path, log_path, env)
        result["machine"] = result["machine"] or entry.pop("machine", None)
        entry.pop("machine", None)
        result["parts"][name] = entry
        print(f"gpu-session: [{name}] {entry['status']} in {entry['seconds']} s"
              + (f": {entry['error']}" if entry.get("error") else ""), flush=True)
        result["goals"] = goals(result["parts"])
        write_json(os.path.join(out, "results.json"), result)  # after every part
    result["seconds"] = round(time.perf_counter() - t0, 1)
    trim_log(log_path)
    result["files"] = sorted(os.listdir(out)) + ([] if "results.json" in os.listdir(out) else ["results.json"])
    write_json(os.path.join(out, "results.json"), result)
    result["out_problems"] = check_out(out)
    write_json(os.path.join(out, "results.json"), result)
    print(summary(result))
    for p in result["out_problems"]:
        print(f"gpu-session: warning: {p}; not everything will come back")
    done = sum(1 for e in result["parts"].values() if e["status"] == "ok")
    print(f"gpu-session: {done}/{len(result['parts'])} parts ok in {result['seconds']:.0f} s; "
          f"results in {os.path.join(out, 'results.json')}, log in {log_path}")
    return 0 if done == len(result["parts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
