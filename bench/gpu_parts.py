"""The measurements of bench/gpu_session.py, one part per process:

    python bench/gpu_parts.py PART --plan plan.json --out part.json

PART is data | e2e | options | loader | hires | quality (pytest runs as its own command). Each
part writes its JSON after every measurement, so a part stopped at its time limit keeps what it
measured. The plan (sizes, paths, the device's settings) is written by gpu_session.py; --smoke
there gives the same code paths at CPU sizes.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from multiprocessing import Pool

import torch

import flops
from common import machine
from step_bound import bound_rate, default_precision, device, largest_batch, sync, with_mfu

from facegan.config import ModelConfig, load_config
from facegan.io import atomic_path, write_text_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Record:
    """A part's figures, written to its JSON after every put() (a killed part keeps them)."""

    def __init__(self, path: str, part: str):
        self.path, self.data = path, {"part": part, "figures": {}, "machine": machine()}
        self.flush()

    def put(self, key: str, value) -> None:
        self.data["figures"][key] = value
        print(f"  {key}: {json.dumps(value)}", flush=True)
        self.flush()

    def attempt(self, key: str, measure):
        """measure() -> its value; if it raises, record key as 'failed: ...' (the traceback goes to
        the log) and return None, so one failing measurement does not lose the part's others."""
        try:
            return measure()
        except Exception as err:
            traceback.print_exc()
            first = str(err).splitlines()[0][:200] if str(err) else ""
            self.put(key, f"failed: {type(err).__name__}: {first}")
            return None

    def flush(self) -> None:  # in the order measured (write_json_atomic would sort the keys)
        write_text_atomic(self.path, json.dumps(self.data, indent=2) + "\n")


def recipe(plan: dict, resolution: int = None):
    """The celeba64 recipe at the plan's sizes (smoke: smaller widths and batch)."""
    cfg = load_config(os.path.join(ROOT, "configs", "celeba64.yaml"))
    cfg.model.resolution = resolution or plan["resolution"]
    cfg.model.ngf = cfg.model.ndf = plan["ngf"]
    cfg.train.batch_size = plan["batch"]
    cfg.data.workers = plan["workers"]
    cfg.data.shards = plan["shards"]["png"]
    cfg.log.wandb = "off"
    cfg.run.resume = "none"
    return cfg


# ---------------------------------------------------------------- data

def _write_jpegs(job):
    from facegan.data.synthetic import cartoon_face

    root, start, stop = job
    for i in range(start, stop):
        cartoon_face(i, seed=7).resize((178, 218)).save(os.path.join(root, f"c{i % 4}", f"{i:06d}.jpg"), quality=92)


def jpeg_folder(root: str, n: int, workers: int) -> None:
    """CelebA-like inputs for the classic loop (bench/common.py's layout), written in parallel."""
    for c in range(4):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
    step = max(1, math.ceil(n / (workers * 4)))
    with Pool(workers) as pool:
        pool.map(_write_jpegs, [(root, s, min(n, s + step)) for s in range(0, n, step)])


def part_data(plan: dict, rec: Record) -> None:
    """In the order the later parts need them: PNG shards (e2e, loader, quality), the classic
    loop's JPEGs (e2e), then the JPEG and raw shards (the loader part only)."""
    pack_shards(plan, rec, "png", plan["images"])
    t = time.perf_counter()
    jpeg_folder(plan["jpegs"], plan["jpeg_images"], plan["workers"])
    rec.put("classic_jpegs", {"images": plan["jpeg_images"], "seconds": round(time.perf_counter() - t, 2)})
    pack_shards(plan, rec, "jpg", plan["variant_images"])
    pack_shards(plan, rec, "npy", plan["variant_images"])


def pack_shards(plan: dict, rec: Record, fmt: str, n: int) -> None:
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    t = time.perf_counter()
    pack(open_source("synthetic:cartoon", limit=n), plan["shards"][fmt],
         PackOptions(size=plan["resolution"], image_format=fmt, shard_size=plan["shard_size"], val_fraction=0.1,
                     workers=plan["workers"], overwrite=True))
    dt = time.perf_counter() - t
    rec.put(f"pack_{fmt}", {"images": n, "seconds": round(dt, 2), "images_per_s": round(n / dt, 1)})


# ---------------------------------------------------------------- 2. end to end at 64x64

def part_e2e(plan: dict, rec: Record) -> None:
    from bench_train import classic_loop, facegan_trainer  # imports the loader and torchvision: seconds

    dev = device()
    cfg = recipe(plan)
    cfg.run.dir = os.path.join(plan["workdir"], "runs", "e2e")
    shutil.rmtree(cfg.run.dir, ignore_errors=True)
    steps, warmup, batch = plan["steps"], plan["warmup"], cfg.train.batch_size
    count = flops.step_flops_per_image(cfg.model)
    peak = flops.peak_bf16_tflops(torch.cuda.get_device_name(0)) if dev.type == "cuda" else None
    rec.put("setup", {"resolution": cfg.model.resolution, "ngf": cfg.model.ngf, "batch": batch, "steps": steps,
                      "warmup": warmup, "workers": plan["workers"], "precision": default_precision(dev),
                      "step_gflop_per_image": round(count["step"] / 1e9, 4),
                      "peak_bf16_tflops": peak if peak else "skipped: device not in the peak table"})
    classic = rec.attempt("classic_images_per_s", lambda: classic_loop(plan["jpegs"], cfg, dev, steps, warmup,
                                                                       plan["workers"]))
    if classic:
        rec.put("classic_images_per_s", round(classic, 1))
    trainer = rec.attempt("facegan_images_per_s", lambda: facegan_trainer(cfg, steps, warmup))
    if trainer:
        rec.put("facegan_images_per_s", round(trainer, 1))
    bound = rec.attempt("bound", lambda: bound_rate(cfg.model, batch, steps, warmup, default_precision(dev)))
    if bound:
        rec.put("bound", with_mfu(bound, count["step"], peak))
    if trainer and classic:
        rec.put("speedup_vs_classic", round(trainer / classic, 3))
    if trainer and bound:
        rec.put("fraction_of_bound", round(trainer / bound["images_per_s"], 3))
    if peak:  # the physical limit: every FLOP at the peak rate
        rec.put("peak_images_per_s", round(peak * 1e12 / count["step"], 1))


# ---------------------------------------------------------------- 3. step options on the bound

def option_variants(plan: dict, dev: torch.device):
    """(name, options) measured one at a time against the trainer's own choices (the first)."""
    cuda = dev.type == "cuda"
    base = {"precision": default_precision(dev), "channels_last": True, "adam": "fused"}
    need_cuda = "skipped: needs CUDA"
    yield "trainer's choices", dict(base)
    yield "fp16 + loss scaling", dict(base, precision="fp16") if cuda else need_cuda
    yield "fp32 with TF32", dict(base, precision="no", tf32=True)
    yield "fp32 without TF32", dict(base, precision="no", tf32=False) if cuda else need_cuda
    if base["precision"] != "bf16":
        yield "bf16 autocast", dict(base, precision="bf16")
    yield "contiguous (no channels_last)", dict(base, channels_last=False)
    yield "Adam foreach (not fused)", dict(base, adam="foreach")
    for b in plan["option_batches"][1:]:
        yield f"batch {b}", dict(base, batch=b)
    yield "torch.compile", dict(base, compile_mode="default", compile_backend=plan["compile_backend"])
    yield "torch.compile reduce-overhead (CUDA graphs)", \
        dict(base, compile_mode="reduce-overhead") if cuda else need_cuda


def part_options(plan: dict, rec: Record) -> None:
    dev = device()
    cfg = recipe(plan)
    count = flops.step_flops_per_image(cfg.model)["step"]
    peak = flops.peak_bf16_tflops(torch.cuda.get_device_name(0)) if dev.type == "cuda" else None
    base_rate = None
    for name, opts in option_variants(plan, dev):
        if isinstance(opts, str):
            rec.put(name, {"status": opts})
            continue
        batch = opts.pop("batch", plan["option_batches"][0])
        res = rec.attempt(name, lambda: bound_rate(cfg.model, batch, plan["option_steps"], plan["option_warmup"],
                                                   **opts))
        if res is None:  # an option this device or torch lacks: said so, keep going
            continue
        res = with_mfu(res, count, peak)
        base_rate = base_rate or res["images_per_s"]
        rec.put(name, dict(res, batch=batch, vs_trainer_choices=round(res["images_per_s"] / base_rate, 3)))


# ---------------------------------------------------------------- 4. the loader alone

def part_loader(plan: dict, rec: Record) -> None:
    from bench_train import loader_alone

    dev = device()
    cfg = recipe(plan)
    trainer = plan.get("trainer_images_per_s")
    rec.put("setup", {"workers": plan["workers"], "batch": cfg.train.batch_size, "batches": plan["loader_batches"],
                      "trainer_images_per_s": trainer or "skipped: no end-to-end figure"})
    headroom = lambda rate: round(rate / trainer, 2) if trainer else "skipped: no end-to-end figure"  # noqa: E731
    for fmt in ("png", "jpg", "npy"):
        rate = rec.attempt(f"loader_{fmt}", lambda: loader_alone(plan["shards"][fmt], cfg, dev, plan["loader_batches"],
                                                                 plan["workers"]))
        if rate:
            rec.put(f"loader_{fmt}", {"images_per_s": round(rate, 1), "over_trainer": headroom(rate)})
    cached = rec.attempt("device_cache", lambda: device_cache_rate(plan, cfg, dev))
    if cached:
        rec.put("device_cache", dict(cached, over_trainer=headroom(cached["images_per_s"])))


def device_cache_rate(plan: dict, cfg, dev: torch.device) -> dict:
    """data.device_cache: the training split decoded once onto the device, then batches drawn there."""
    from facegan.data.cache import DeviceCache
    from facegan.data.loader import resolve_shards

    t = time.perf_counter()
    cache = DeviceCache(resolve_shards(plan["shards"]["png"], "train", cfg.model.resolution), cfg.train.batch_size,
                        0, 1, 0, 0, dev)
    build = time.perf_counter() - t
    it = iter(cache)
    for _ in range(3):
        next(it)
    sync(dev)
    t = time.perf_counter()
    for _ in range(plan["loader_batches"]):
        x = next(it)
    sync(dev)
    rate = plan["loader_batches"] * x.shape[0] / (time.perf_counter() - t)
    return {"images": len(cache), "build_s": round(build, 2), "MiB": round(cache.nbytes / 2**20, 1),
            "images_per_s": round(rate, 1)}


# ---------------------------------------------------------------- 5. higher resolutions

def part_hires(plan: dict, rec: Record) -> None:
    dev = device()
    precision = default_precision(dev)
    peak = flops.peak_bf16_tflops(torch.cuda.get_device_name(0)) if dev.type == "cuda" else None
    for r in plan["hires"]:
        cfg = ModelConfig(resolution=r, ngf=plan["ngf"], ndf=plan["ngf"])
        count = flops.step_flops_per_image(cfg)["step"]
        res = rec.attempt(f"bound_{r}", lambda: bound_rate(cfg, plan["hires_batch"], plan["hires_steps"],
                                                           plan["hires_warmup"], precision))
        if res:
            rec.put(f"bound_{r}", dict(with_mfu(res, count, peak), batch=plan["hires_batch"],
                                       step_gflop_per_image=round(count / 1e9, 3)))
    end = time.time() + plan["hires_search_s"]
    for i, r in enumerate(plan["hires"]):
        cfg = ModelConfig(resolution=r, ngf=plan["ngf"], ndf=plan["ngf"])
        deadline = time.time() + (end - time.time()) / (len(plan["hires"]) - i)  # an equal share of what is left
        key = f"largest_batch_{r}"
        rec.attempt(key, lambda: largest_batch(cfg, plan["hires_batch"], plan["max_batch"], precision, deadline,
                                               lambda found: rec.put(key, found)))


# ---------------------------------------------------------------- 6. quality rows at 64x64

QUALITY_ROWS = {"classic": "classic", "best": "lr10-ema10-b32-beta0"}


def part_quality(plan: dict, rec: Record) -> None:
    for label in plan["quality_rows"]:
        row = rec.attempt(label, lambda: quality_row(plan, label))
        if row:
            rec.put(label, row)


def quality_row(plan: dict, label: str) -> dict:
    """One row trained as a user runs it; its EMA generator and last grid copied to --out."""
    from quality import VARIANTS

    from facegan.eval.generator_io import export_generator
    from facegan.train.tracking import read_metrics

    name, kimg = QUALITY_ROWS[label], plan["quality_kimg"]
    run_dir = os.path.join(plan["workdir"], "runs", f"quality-{label}")
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"),
           "--config", os.path.join(ROOT, "configs", "celeba64.yaml"), f"data.shards={plan['shards']['png']}",
           f"run.dir={run_dir}", "run.resume=none", f"train.total_kimg={kimg}", "train.seed=0",
           f"train.checkpoint_every_kimg={kimg}", f"train.sample_every_kimg={kimg}", "log.every_steps=100",
           "log.wandb=off", f"data.workers={plan['workers']}", f"model.resolution={plan['resolution']}",
           f"model.ngf={plan['ngf']}", f"model.ndf={plan['ngf']}", *VARIANTS[name][1], *plan["quality_set"]]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t
    rows = read_metrics(os.path.join(run_dir, "metrics.jsonl"))[1:]  # the first holds the start-up
    speed = round(sum(r["img_per_s"] for r in rows) / len(rows), 1) if rows else "skipped: too few status lines"
    weights = os.path.join(plan["out"], f"quality-{label}.safetensors")
    export_generator(run_dir, weights)
    grids = sorted(f for f in os.listdir(os.path.join(run_dir, "samples")) if f.startswith("fakes-"))
    with atomic_path(os.path.join(plan["out"], f"quality-{label}.png")) as tmp:
        shutil.copyfile(os.path.join(run_dir, "samples", grids[-1]), tmp)
    return {"variant": name, "what": VARIANTS[name][0], "kimg": kimg, "train_wall_s": round(wall, 1),
            "images_per_s": speed, "generator": os.path.basename(weights), "grid": f"quality-{label}.png"}


PARTS = {"data": part_data, "e2e": part_e2e, "options": part_options, "loader": part_loader,
         "hires": part_hires, "quality": part_quality}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=sorted(PARTS))
    ap.add_argument("--plan", required=True, help="plan JSON written by gpu_session.py")
    ap.add_argument("--out", required=True, help="this part's result JSON")
    args = ap.parse_args(argv)
    with open(args.plan) as f:
        plan = json.load(f)
    if device().type == "cpu":
        torch.set_num_threads(max(1, plan.get("threads", torch.get_num_threads())))
    PARTS[args.part](plan, Record(args.out, args.part))


if __name__ == "__main__":
    main()
