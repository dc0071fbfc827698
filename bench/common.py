"""Shared helpers for benchmarks: the machine description, result files, synthetic shards and\ntraining runs launched as a user launches them."""

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RESULTS = os.environ.get("FACEGAN_BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "device": device,
            "python": platform.python_version()}


def report(name: str, figures: dict, ratio_name: str, ratio: float) -> dict:
    result = {"benchmark": name, "machine": machine(), "figures": figures, ratio_name: round(ratio, 3),
              "date": time.strftime("%Y-%m-%d")}
    m = result["machine"]
    print(f"[{name}] {m['cpu']} x{m['cores']}, torch {m['torch']}, device {m['device']}")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"  {ratio_name}: {ratio:.2f}x")
    from facegan.io import write_json_atomic

    os.makedirs(RESULTS, exist_ok=True)
    tag = "gpu" if m["device"] != "cpu" else "cpu"
    write_json_atomic(os.path.join(RESULTS, f"{name}-{tag}.json"), result)
    return result


def make_jpeg_folder(root: str, n: int, size=(178, 218)) -> str:
    """CelebA-like inputs: n JPEGs of synthetic faces at 178x218, in class subfolders."""
    from facegan.data.synthetic import cartoon_face

    marker = os.path.join(root, f".complete-{n}")
    if os.path.exists(marker):
        return root
    for i in range(n):
        sub = os.path.join(root, f"c{i % 4}")
        os.makedirs(sub, exist_ok=True)
        cartoon_face(i, seed=7).resize(size).save(os.path.join(sub, f"{i:06d}.jpg"), quality=92)
    open(marker, "w").close()
    return root


def ensure_synthetic_shards(path: str, images: int, size: int, val_fraction: float = 0.1,
                            shard_size: int = None) -> None:
    """Packs `images` synthetic cartoon faces (with their labels) at size x size into path,
    val_fraction of them (10%) as a val split so FID has reference images, in shards of shard_size
    (facegan-shard's default when None); nothing when path already holds a dataset."""
    if os.path.exists(os.path.join(path, "dataset.json")):
        return
    subprocess.run([sys.executable, "-m", "facegan.cli.shard", "synthetic:cartoon", "--out", path, "--size",
                    str(size), "--limit", str(images), "--val-fraction", str(val_fraction), "--overwrite",
                    *(["--shard-size", str(shard_size)] if shard_size else [])], check=True, cwd=ROOT)


def _run_with_progress(cmd: list, metrics_path: str, kimg: float, name: str) -> subprocess.CompletedProcess:
    """Run a training, showing its kimg against the budget with a rate and an ETA (facegan.progress)
    from the metrics.jsonl it writes; its own output is kept (stderr for a failure's message)."""
    from facegan.progress import progress

    with open(os.devnull, "w") as devnull, progress(total=kimg, desc=f"  {name}", unit="kimg") as bar:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=devnull, stderr=subprocess.PIPE, text=True)
        stderr = []
        reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
        reader.start()  # a full pipe would stall the training
        while proc.poll() is None:
            time.sleep(2)
            done = min(_last_kimg(metrics_path), kimg)  # the last batch can pass the budget a little
            if done > bar.n:
                bar.update(done - bar.n)
        reader.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, "", "".join(stderr))


def image_folder(marker: str, count: int, desc: str, write_one) -> None:
    """Calls write_one(i) for i in 0 .. count-1 under a progress bar, then creates the file
    `marker`, which says the folder is complete: nothing is done when it exists."""
    from facegan.progress import progress

    if os.path.exists(marker):
        return
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with progress(total=count, desc=desc, unit="img") as bar:
        for i in range(count):
            write_one(i)
            bar.update(1)
    open(marker, "w").close()


def save_png(image, path: str) -> None:
    """A PIL image to path as PNG, written whole under another name and then renamed, so an
    interrupted run never leaves a half-written image under the real name."""
    image.save(path + ".part", format="PNG")
    os.replace(path + ".part", path)


def _last_kimg(metrics_path: str) -> float:
    try:
        with open(metrics_path) as f:
            lines = [line for line in f if line.strip()]
        return float(json.loads(lines[-1]).get("kimg", 0.0)) if lines else 0.0
    except (OSError, ValueError):
        return 0.0  # not written yet, or a line being written


def train_run(name: str, run_dir: str, config: str, shards: str, kimg: float, seed: int, overrides: list) -> tuple:
    """Trains one variant from scratch with launch/train.py, as a user does (the recipe `config`
    plus key=value overrides). Returns (wall seconds, mean img/s after the first log row, which
    includes start-up). Exits with the run's last stderr when it fails."""
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config", config,
           f"data.shards={shards}", f"run.dir={run_dir}", "run.resume=none", f"train.total_kimg={kimg}",
           f"train.seed={seed}", "train.checkpoint_every_kimg=1000", f"train.sample_every_kimg={kimg / 4}",
           "log.every_steps=100", "log.wandb=off", *overrides]
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: no metrics or checkpoints from an earlier table
    t0 = time.perf_counter()
    r = _run_with_progress(cmd, os.path.join(run_dir, "metrics.jsonl"), kimg, name)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{os.path.basename(sys.argv[0])}: variant {name} failed:\n{r.stderr[-3000:]}")
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    speeds = [row["img_per_s"] for row in rows if "img_per_s" in row][1:]
    return wall, (sum(speeds) / len(speeds) if speeds else float("nan"))
