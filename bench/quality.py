"""The quality table: each training variant on the same data, image budget and model, for one or
several seeds, scored with FID, KID, precision, recall, density and coverage (the FID Inception,
k = 5) against the val split. Writes bench/results/quality-<device>-<size>.json and prints the
README's Markdown table.

    python bench/quality.py                         # 32x32 cartoon faces, the decisive rows (~35 min, 2 cores)
    python bench/quality.py --variants all          # and the EMA base row
    python bench/quality.py --variants classic,lr10-ema10-b32-beta0 --kimg 50 --n 500
    python bench/quality.py --variants classic,lr10-ema10-b32-beta0 --seeds 0,1,2   # mean and std per row
    python bench/quality.py --variants classic --set train.loss=hinge --out FILE    # a screening row (docs/)

Rows (variant, seed) measured earlier under the same setup are kept in the JSON, so one row or one
seed can be re-run alone. Re-running a row on the same machine reproduced its FID to the last digit
(seeded data order and noise); another machine of the same kind gave 133.56 where this one gave
127.25 for one row, so single-seed differences of a few percent decide nothing. With several seeds
a row reports the mean and the sample standard deviation, and the table calls a difference from the
best row real only when it exceeds the spread: |mean_a - mean_b| > std_a + std_b.

The rows screened once on one seed and dropped (losses, R1, DiffAugment, other learning rates and
EMA lengths) are in docs/quality-screening.md with their overrides and scores: each is `classic`
plus overrides, so `--variants classic --set OVERRIDES` trains it again.

Each variant trains in its own process (launch/train.py, as a user runs it); scoring happens here,
with the reference features computed once and cached beside the shards.
"""

from common import ensure_synthetic_shards
from runner import SCORES, Job, default_out, options, ordered, parse, pick, run_dir, run_jobs, shown, start, table

LR = lambda lr: [f"train.lr_g={lr}", f"train.lr_d={lr}"]  # noqa: E731
# name -> (what it is, overrides on top of the shared base). classic = Radford et al. exactly;
# every other row changes only what its description says.
CLASSIC = ["train.loss=bce", "model.d_norm=batch", "train.ema=0", "data.flip=false", *LR("2e-4"),
           "train.augment=none", "train.r1_gamma=0", "train.batch_size=64", "train.betas=[0.5,0.999]"]
EMA10 = ["train.ema=10", "data.flip=true"]
BETA0 = ["train.betas=[0.0,0.99]"]
VARIANTS = {
    "classic": ("DCGAN as published: BCE, BatchNorm D, lr 2e-4, no EMA, no flips", CLASSIC),
    "ema2": ("EMA 2 kimg, flips (the base of the screened losses and stabilizers)",
             CLASSIC + ["train.ema=2", "data.flip=true"]),
    "lr10-ema10-b32": ("lr 1e-3, EMA 10 kimg, flips, batch 32 (twice the steps)",
                       CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=32"]),
    "lr10-ema10-b32-beta0": ("lr 1e-3, EMA 10 kimg, flips, batch 32, Adam betas (0, 0.99)",
                             CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=32", *BETA0]),
    "lr10-ema10-b16": ("lr 1e-3, EMA 10 kimg, flips, batch 16 (four times the steps)",
                       CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=16"]),
    "lr20-ema10-b32": ("lr 2e-3, EMA 10 kimg, flips, batch 32", CLASSIC + LR("2e-3") + EMA10 + ["train.batch_size=32"]),
    "lr10-ema10-b16-beta0": ("lr 1e-3, EMA 10 kimg, flips, batch 16, Adam betas (0, 0.99)",
                             CLASSIC + LR("1e-3") + EMA10 + ["train.batch_size=16", *BETA0]),
    "lr5-ema10-b32-beta0": ("lr 5e-4, EMA 10 kimg, flips, batch 32, Adam betas (0, 0.99)",
                            CLASSIC + LR("5e-4") + EMA10 + ["train.batch_size=32", *BETA0]),
}
# `make quality` / no --variants: the README's decisive rows (about 35 min on 2 cores, one seed).
DEFAULT = [v for v in VARIANTS if v != "ema2"]


def versus(v: dict, best: dict, key: str = "fid") -> str:
    """How a row's mean compares with the best row's: a difference is called real only when it
    exceeds the spread (std_a + std_b); with one seed on either side there is no spread to judge by."""
    if v is best:
        return "best"
    diff = v[key] - best[key]
    if len(v["seeds"]) < 2 or len(best["seeds"]) < 2:
        return f"{diff:+.1f} (1 seed: no spread to judge by)"
    spread = v.get(f"{key}_std", 0.0) + best.get(f"{key}_std", 0.0)
    return f"{diff:+.1f} (real)" if abs(diff) > spread else f"{diff:+.1f} (within spread {spread:.1f})"


def _pm(v: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    if key not in v:
        return "-"
    std = v.get(f"{key}_std")
    return format(v[key] * scale, fmt) + (f" ± {format(std * scale, fmt)}" if std is not None else "")


def _kid(v: dict) -> str:
    if "kid_seed_std" in v:
        return _pm(dict(v, kid_std=v["kid_seed_std"]), "kid", ".1f", 1000)
    return f"{1000 * v['kid']:.1f}" + (f" ± {1000 * v['kid_std']:.1f}" if v["kid_std"] >= 5e-5 else "")


def markdown(result: dict) -> str:
    m = result["machine"]
    rows = ordered(result["variants"], VARIANTS)
    seeds = sorted({s for _, v in rows for s in v["seeds"]})
    base = result["variants"].get("classic", {}).get("fid")
    best = min((v for _, v in rows), key=lambda v: v["fid"]) if rows else None
    cells = [[name, v["what"], len(v["seeds"]), _pm(v, "fid", ".2f"), versus(v, best), _kid(v),
              _pm(v, "precision", ".3f"), _pm(v, "recall", ".3f"), f"{v['fid'] / base:.2f}" if base else "-",
              f"{v['train_wall_s']:.0f} s{' (*)' if v.get('note') else ''}", f"{v['img_per_s']:.0f}"]
             for name, v in rows]
    lines = [f"Budget {result['kimg']} kimg per variant, seeds {', '.join(map(str, seeds))} (mean ± sample std over "
             f"a row's seeds), {result['data']}, scores with n = {result['n']} against the val split; "
             f"{m['device']} ({m['cpu']}, {m['cores']} cores). 'vs best': FID difference from the best row, real only "
             f"when it exceeds the two rows' spread (std + std).", ""]
    lines += table(["variant", "what", "seeds", "FID", "vs best", "KID x 1000", "precision", "recall", "FID / classic",
                    "train wall", "img/s"], cells)
    notes = [f"(*) {name}: {v['note']}" for name, v in rows if v.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def measure(job, G, scorer) -> dict:
    scores = scorer(G, ("fid", "kid", "prdc"))
    return {k: scores[k] for k in SCORES + ("kid_std", "n_real", "n_fake")}


def main():
    ap = options(__doc__, shards="cartoon32-q", workdir="quality", out="quality-<cpu|gpu>-<size>.json")
    ap.add_argument("--variants", default=",".join(DEFAULT),
                    help=f"comma list, or 'all'; default {','.join(DEFAULT)}; all: {', '.join(VARIANTS)}")
    args = parse(ap, markdown)
    names = pick(ap, args.variants, VARIANTS)
    ensure_synthetic_shards(args.shards, args.images, args.size, args.val_fraction)
    out = args.out or default_out(f"quality-<device>-{args.size}.json")
    setup = {"kimg": args.kimg, "n": args.n, "data": f"{shown(args.shards)} ({args.size}x{args.size})",
             "config": args.config, "set": args.set}
    result = start("quality", out, setup)
    jobs = [Job(name, seed, *VARIANTS[name], run_dir(args, name, seed)) for name in names for seed in args.seeds]
    run_jobs(args, jobs, result, out, measure, markdown)


if __name__ == "__main__":
    main()
