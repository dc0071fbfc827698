"""The quality table: each training variant on the same data, image budget and model, for one or
several seeds, scored with FID, KID, precision, recall, density and coverage (the FID Inception,
k = 5) against the val split. Writes bench/results/quality-<device>.json and prints the README's
Markdown table.

    python bench/quality.py                         # 32x32 cartoon faces, the default rows (~35 min, 2 cores)
    python bench/quality.py --variants all          # every row of the README's table (~70 min)
    python bench/quality.py --variants classic,lr10-ema10 --kimg 50 --n 500
    python bench/quality.py --variants classic,lr10-ema10-b32-beta0 --seeds 0,1,2   # mean and std per row

Rows (variant, seed) measured earlier under the same setup are kept in the JSON, so one row or one
seed can be re-run alone. Re-running a row on the same machine reproduced its FID to the last digit
(seeded data order and noise); another machine of the same kind gave 133.56 where this one gave
127.25 for one row, so single-seed differences of a few percent decide nothing. With several seeds
a row reports the mean and the sample standard deviation, and the table calls a difference from the
best row real only when it exceeds the spread: |mean_a - mean_b| > std_a + std_b.

Each variant trains in its own process (launch/train.py, as a user runs it); scoring happens here,
with the reference features computed once and cached beside the shards.
"""

import argparse
import json
import os
import sys
import time

from common import RESULTS, ROOT, ensure_synthetic_shards, machine, train_run
AUG = "color,translation,cutout"
LR = lambda lr: [f"train.lr_g={lr}", f"train.lr_d={lr}"]  # noqa: E731
# name -> (what it is, overrides on top of the shared base). classic = Radford et al. exactly;
# every other row changes only what its description says.
CLASSIC = ["train.loss=bce", "model.d_norm=batch", "train.ema=0", "data.flip=false", *LR("2e-4"),
           "train.augment=none", "train.r1_gamma=0", "train.batch_size=64", "train.betas=[0.5,0.999]"]
EMA2 = ["train.ema=2", "data.flip=true"]
EMA10 = ["train.ema=10", "data.flip=true"]
VARIANTS = {
    "classic": ("DCGAN as published: BCE, BatchNorm D, lr 2e-4, no EMA, no flips", CLASSIC),
    "ema2": ("EMA 2 kimg, flips (the base of the next five rows)", CLASSIC + EMA2),
    "lsgan": ("least-squares loss, EMA 2 kimg, flips", CLASSIC + EMA2 + ["train.loss=lsgan"]),
    "hinge-sn": ("hinge loss, spectral-norm D, EMA 2 kimg, flips",
                 CLASSIC + EMA2 + ["train.loss=hinge", "model.d_norm=spectral"]),
    "bce-diffaug": ("DiffAugment (color, translation, cutout), EMA 2 kimg, flips",
                    CLASSIC + EMA2 + [f"train.augment={AUG}"]),
    "r1": ("R1 gamma 1 every 4 steps, EMA 2 kimg, flips", CLASSIC + EMA2 + ["train.r1_gamma=1", "train.r1_every=4"]),
    "bce-diffaug-r1": ("DiffAugment + R1, EMA 2 kimg, flips",
                       CLASSIC + EMA2 + [f"train.augment={AUG}", "train.r1_gamma=1", "train.r1_every=4"]),
    "g-fast": ("two learning rates: G 5e-4, D 1e-4", CLASSIC + ["train.lr_g=5e-4", "train.lr_d=1e-4"]),
    "b32": ("batch 32 (twice the steps)", CLASSIC + ["train.batch_size=32"]),
    "lr5": ("lr 5e-4", CLASSIC + LR("5e-4")),
    "lr5-r1-aug": ("lr 5e-4, R1 + DiffAugment",
                   CLASSIC + LR("5e-4") + ["train.r1_gamma=1", "train.r1_every=4", f"train.augment={AUG}"]),
    "lr5-ema10": ("lr 5e-4, EMA 10 kimg, flips", CLASSIC + LR("5e-4") + EMA10),
    "lr5-ema20": ("lr 5e-4, EMA 20 kimg, flips", CLASSIC + LR("5e-4") + ["train.ema=20", "data.flip=true"]),
    "lr5-ema10-aug": ("lr 5e-4, EMA 10 kimg, flips, DiffAugment", CLASSIC + LR("5e-4") + EMA10 + [f"train.augment={AUG}"]),
    "lr10-ema10": ("lr 1e-3, EMA 10 kimg, flips", CLASSIC + LR("1e-3") + EMA10),
    "lr10-ema5": ("lr 1e-3, EMA 5 kimg, flips", CLASSIC + LR("1e-3") + ["train.ema=5", "data.flip=true"]),
    "ttur-ema10": ("two learning rates: G 1e-3, D 2e-3; EMA 10 kimg, flips",
                   CLASSIC + ["train.lr_g=1e-3", "train.lr_d=2e-3"] + EMA10),
    "lr20-ema10": ("lr 2e-3, EMA 10 kimg, flips", CLASSIC + LR("2e-3") + EMA10),
    "lr10-ema10-b32": ("lr 1e-3, EMA 10 kimg, flips, batch 32 (twice the steps)",
                       CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=32"]),
    "lr10-ema10-beta0": ("lr 1e-3, EMA 10 kimg, flips, Adam betas (0, 0.99)",
                         CLASSIC + LR("1e-3") + EMA10 + ["train.betas=[0.0,0.99]"]),
    "lr10-ema10-hinge": ("lr 1e-3, EMA 10 kimg, flips, hinge loss", CLASSIC + LR("1e-3") + EMA10 + ["train.loss=hinge"]),
    "lr10-ema10-b32-beta0": ("lr 1e-3, EMA 10 kimg, flips, batch 32, Adam betas (0, 0.99)",
                             CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=32", "train.betas=[0.0,0.99]"]),
    "lr10-ema10-b16": ("lr 1e-3, EMA 10 kimg, flips, batch 16 (four times the steps)",
                       CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=16"]),
    "lr20-ema10-b32": ("lr 2e-3, EMA 10 kimg, flips, batch 32", CLASSIC + LR("2e-3") + EMA10 + ["train.batch_size=32"]),
    "lr10-ema10-b16-beta0": ("lr 1e-3, EMA 10 kimg, flips, batch 16, Adam betas (0, 0.99)",
                             CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=16", "train.betas=[0.0,0.99]"]),
    "lr5-ema10-b32-beta0": ("lr 5e-4, EMA 10 kimg, flips, batch 32, Adam betas (0, 0.99)",
                            CLASSIC + LR("5e-4") + EMA10 + ["train.batch_size=32", "train.betas=[0.0,0.99]"]),
}
# `make quality` / no --variants: one row per stabilizer family and the winners (about 35 min on 2 cores).
DEFAULT = ["classic", "ema2", "lsgan", "hinge-sn", "bce-diffaug", "r1", "lr5", "lr5-ema10", "lr10-ema10"]


def _write_atomic(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".tmp", path)


SCORES = ("fid", "kid", "precision", "recall", "density", "coverage")  # averaged over seeds
PER_RUN = SCORES + ("kid_std", "train_wall_s", "img_per_s", "score_s", "n_real", "n_fake", "measured")


def aggregate(runs: list) -> dict:
    """Per-seed runs -> the row's numbers: for each score, the mean and (two or more seeds) the
    sample standard deviation as SCORE_std (KID's own subset spread stays kid_std in each run)."""
    import statistics

    row = {"seeds": [r["seed"] for r in runs]}
    for key in SCORES + ("train_wall_s", "img_per_s", "score_s"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if not vals:
            continue
        row[key] = statistics.fmean(vals)
        if key in SCORES and len(vals) > 1:
            row[f"{key}_{'seed_std' if key == 'kid' else 'std'}"] = statistics.stdev(vals)
    row["kid_std"] = runs[0].get("kid_std", 0.0) if len(runs) == 1 else row.get("kid_seed_std", 0.0)
    return row


def versus(v: dict, best: dict, key: str = "fid") -> str:
    """How a row's mean compares with the best row's: a difference is called real only when it
    exceeds the spread (std_a + std_b); with one seed on either side there is no spread to judge by."""
    if v is best:
        return "best"
    diff = v[key] - best[key]
    if len(v.get("seeds", [0])) < 2 or len(best.get("seeds", [0])) < 2:
        return f"{diff:+.1f} (1 seed: no spread to judge by)"
    spread = v.get(f"{key}_std", 0.0) + best.get(f"{key}_std", 0.0)
    return f"{diff:+.1f} (real)" if abs(diff) > spread else f"{diff:+.1f} (within spread {spread:.1f})"


def _pm(v: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    if key not in v:
        return "-"
    std = v.get(f"{key}_std")
    return format(v[key] * scale, fmt) + (f" ± {format(std * scale, fmt)}" if std is not None else "")


def markdown(result):
    m = result["machine"]
    seeds = sorted({s for v in result["variants"].values() for s in v.get("seeds", [result.get("seed", 0)])})
    lines = [f"Budget {result['kimg']} kimg per variant, seeds {', '.join(map(str, seeds))} (mean ± sample std over "
             f"a row's seeds), {result['data']}, scores with n = {result['n']} against the val split; "
             f"{m['device']} ({m['cpu']}, {m['cores']} cores). 'vs best': FID difference from the best row, real only "
             f"when it exceeds the two rows' spread (std + std).",
             "", "| variant | what | seeds | FID | vs best | KID x 1000 | precision | recall | FID / classic | "
             "train wall | img/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = result["variants"]
    base = rows.get("classic", {}).get("fid")
    best = min(rows.values(), key=lambda v: v["fid"]) if rows else None
    for name, v in rows.items():
        ratio = f"{v['fid'] / base:.2f}" if base else "-"
        if "kid_seed_std" in v:
            kid = _pm(dict(v, kid_std=v["kid_seed_std"]), "kid", ".1f", 1000)
        else:
            kid = f"{1000 * v['kid']:.1f}" + (f" ± {1000 * v['kid_std']:.1f}" if v["kid_std"] >= 5e-5 else "")
        n_seeds = len(v.get("seeds", [result.get("seed", 0)]))
        lines.append(f"| {name} | {v['what']} | {n_seeds} | {_pm(v, 'fid', '.2f')} | {versus(v, best)} | {kid} | "
                     f"{_pm(v, 'precision', '.3f')} | {_pm(v, 'recall', '.3f')} | {ratio} | "
                     f"{v['train_wall_s']:.0f} s{' (*)' if v.get('note') else ''} | {v['img_per_s']:.0f} |")
    notes = [f"(*) {name}: {v['note']}" for name, v in rows.items() if v.get("note")]
    lines += [""] + notes if notes else []
    return "\n".join(lines)


def upgrade(rows: dict, seed: int) -> dict:
    """Rows of a table written before seeds were a list (one run each, at the file's seed) get
    their 'runs' list, so new seeds add to them."""
    for v in rows.values():
        if "runs" not in v:
            v["runs"] = [dict({k: v[k] for k in PER_RUN if k in v}, seed=seed)]
            v.update(aggregate(v["runs"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.yaml", help="base recipe (model, batch, lr)")
    ap.add_argument("--shards", default="bench/out/cartoon32-q", help="dataset (packed here if missing)")
    ap.add_argument("--images", type=int, default=11000, help="synthetic faces to pack when missing (10%% val)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--kimg", type=float, default=100, help="training budget per variant")
    ap.add_argument("--n", type=int, default=1000, help="images per side for FID/KID")
    ap.add_argument("--seed", type=int, default=0, help="the seed when --seeds is not given")
    ap.add_argument("--seeds", help="comma list of training seeds per variant, e.g. 0,1,2: mean and std per row")
    ap.add_argument("--variants", default=",".join(DEFAULT),
                    help=f"comma list, or 'all'; default {','.join(DEFAULT)}; all: {', '.join(VARIANTS)}")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "quality"))
    ap.add_argument("--out", help="result JSON (default bench/results/quality-<cpu|gpu>-<size>.json)")
    ap.add_argument("--table", metavar="JSON", help="only print the Markdown table of an earlier result")
    args = ap.parse_args()
    if args.table:
        with open(args.table) as f:
            table = json.load(f)
        upgrade(table["variants"], table.get("seed", 0))
        print(markdown(table))
        return
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else [args.seed]
    except ValueError:
        ap.error(f"--seeds {args.seeds}: expected a comma list of integers, e.g. 0,1,2")
    names = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    sys.path.insert(0, ROOT)
    import torch

    from facegan.eval.features import InceptionFeatures
    from facegan.eval.generator_io import load_generator
    from facegan.eval.scoring import score

    ensure_synthetic_shards(args.shards, args.images, args.size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tag = "gpu" if device == "cuda" else "cpu"
    out = args.out or os.path.join(RESULTS, f"quality-{tag}-{args.size}.json")
    extractor = InceptionFeatures(log=print).to(device).eval()
    setup = {"benchmark": "quality", "machine": machine(), "kimg": args.kimg, "n": args.n,
             "data": f"{args.shards} ({args.size}x{args.size})", "config": args.config, "set": args.set}
    result = dict(setup, seed=seeds[0], date=time.strftime("%Y-%m-%d"), variants={})
    if os.path.exists(out):  # rows measured earlier under the same setup are kept (re-run one with --variants)
        with open(out) as f:
            earlier = json.load(f)
        if all(earlier.get(k) == v for k, v in setup.items() if k != "machine"):
            result["variants"] = upgrade(earlier.get("variants", {}), earlier.get("seed", 0))
    jobs = [(name, seed) for name in names for seed in seeds]
    for i, (name, seed) in enumerate(jobs, 1):
        what, overrides = VARIANTS[name]
        # the first seed trains in bench/out/quality/NAME (quality_figure.py reads it), others beside it
        run_dir = os.path.join(args.workdir, name if seed == seeds[0] else f"{name}-seed{seed}")
        print(f"[{i}/{len(jobs)}] {name} seed {seed}: training {args.kimg} kimg ({what})", flush=True)
        wall, speed = train_run(name, run_dir, args.config, args.shards, args.kimg, seed, [*overrides, *args.set])
        t0 = time.perf_counter()
        G, _ = load_generator(run_dir, device=device)
        scores = score(G, args.shards, "val", args.n, extractor, device, metrics=("fid", "kid", "prdc"), seed=12345)
        run = {k: scores[k] for k in SCORES + ("kid_std", "n_real", "n_fake")}
        run.update(seed=seed, train_wall_s=round(wall, 1), img_per_s=round(speed, 1),
                   score_s=round(time.perf_counter() - t0, 1), measured=time.strftime("%Y-%m-%d %H:%M"))
        row = result["variants"].get(name) or {}
        runs = [r for r in row.get("runs", []) if r["seed"] != seed] + [run]
        row = {"what": what, "overrides": overrides, "runs": sorted(runs, key=lambda r: r["seed"]),
               **({"note": row["note"]} if row.get("note") else {})}
        row.update(aggregate(row["runs"]))
        result["variants"][name] = row
        print(f"    FID {scores['fid']:.2f}  KID {scores['kid']:.5f}  precision {scores['precision']:.3f}  "
              f"recall {scores['recall']:.3f}  train {wall:.0f} s  {speed:.0f} img/s", flush=True)
        _write_atomic(out, result)  # after every run: an interrupted table keeps its rows
    order = [v for v in VARIANTS if v in result["variants"]]
    result["variants"] = {v: result["variants"][v] for v in order}
    _write_atomic(out, result)
    print(markdown(result))
    print(f"quality: wrote {out}")


if __name__ == "__main__":
    main()
