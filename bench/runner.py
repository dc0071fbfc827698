"""What quality.py, conditional.py and small_data.py share: their options, the result they fill
(rows measured earlier under the same setup kept, so one row or one seed can be re-run alone),
the loop that trains each run as a user does, loads it, scores it and writes the result after
every run, and Markdown tables. Each script keeps its variants, its scores and its columns."""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

from common import RESULTS, ROOT, machine, train_run

SCORES = ("fid", "kid", "precision", "recall", "density", "coverage")  # averaged over seeds
# --quick: a tiny pack, model and budget, so a bench runs end to end in a minute or two
QUICK = {"kimg": 0.064, "n": 16, "images": 160, "val_fraction": 0.2,
         "set": ["model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16", "data.workers=0",
                 "log.every_steps=1"]}


def options(doc: str, *, shards, workdir: str, out: str, kimg: float = 100, n: int = 1000,
            images: int = 11000, many_seeds: bool = True) -> argparse.ArgumentParser:
    """The parser with the options every variant bench has; `out` names the default result file."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.yaml", help="the recipe every run starts from")
    ap.add_argument("--shards", default=shards and os.path.join(ROOT, "bench", "out", shards),
                    help="the dataset (packed there when missing)")
    ap.add_argument("--images", type=int, default=images,
                    help="faces to pack when the dataset is missing (10%% val; default %(default)s)")
    ap.add_argument("--size", type=int, default=32,
                    help="image size of the pack; a size other than the recipe's sets model.resolution "
                         "(default %(default)s)")
    ap.add_argument("--kimg", type=float, default=kimg, help="training budget of every run, kimg (default %(default)s)")
    ap.add_argument("--n", type=int, default=n, help="images per side for the scores (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="the training seed" + (" when --seeds is not given"
                                                                               if many_seeds else ""))
    if many_seeds:
        ap.add_argument("--seeds", help="comma list of training seeds, e.g. 0,1,2: rows give mean and std over them")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    ap.add_argument("--inception-weights", help="FID Inception weights file (default: facegan's)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", workdir),
                    help=f"where the runs are trained, one folder each (default bench/out/{workdir})")
    ap.add_argument("--out", help=f"result JSON (default bench/results/{out})")
    ap.add_argument("--table", metavar="JSON", help="only print the Markdown table of an earlier result")
    ap.add_argument("--quick", action="store_true",
                    help="tiny pack, model and budget: the bench end to end in a minute or two; numbers meaningless")
    return ap


def parse(ap: argparse.ArgumentParser, markdown) -> argparse.Namespace:
    """The arguments, with --quick's settings where an option was left at its default and the seeds
    as a list. --table prints an earlier result's table and exits."""
    args = ap.parse_args()
    if args.table:
        print(markdown(read_result(args.table)))
        raise SystemExit(0)
    try:
        spec = getattr(args, "seeds", None)
        args.seeds = [int(s) for s in spec.split(",") if s.strip()] if spec else [args.seed]
    except ValueError:
        ap.error(f"--seeds {spec}: expected a comma list of integers, e.g. 0,1,2")
    args.val_fraction = QUICK["val_fraction"] if args.quick else 0.1
    if args.quick:
        for key in ("kimg", "n", "images"):
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, QUICK[key])
        args.set = QUICK["set"] + args.set
        if args.shards and args.shards == ap.get_default("shards"):
            args.shards += "-quick"  # never mixed with the full pack
    args.set = _resolution(args) + args.set
    # the trainings run from the repository root: paths given from elsewhere must mean the same there
    args.shards = args.shards and os.path.abspath(args.shards)
    args.workdir = os.path.abspath(args.workdir)
    return args


def _resolution(args) -> list:
    """['model.resolution=SIZE'] when --size differs from the recipe's resolution (the model is built
    for the pack's images), else []."""
    from facegan.config import load_config

    recipe = load_config(args.config if os.path.isabs(args.config) else os.path.join(ROOT, args.config))
    return [] if recipe.model.resolution == args.size else [f"model.resolution={args.size}"]


def pick(ap: argparse.ArgumentParser, spec: str, known, what: str = "variant") -> list:
    """The names of a comma list ('all': every known one); unknown names end the parse."""
    names = list(known) if spec == "all" else [v.strip() for v in spec.split(",") if v.strip()]
    unknown = [v for v in names if v not in known]
    if unknown:
        ap.error(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def shown(path: str) -> str:
    """A path inside the repository relative to it (results name no machine's directories)."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else os.path.basename(path)


def default_out(name: str) -> str:
    import torch

    return os.path.join(RESULTS, name.replace("<device>", "gpu" if torch.cuda.is_available() else "cpu"))


def read_result(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_result(path: str, result: dict) -> None:
    from facegan.io import write_json_atomic

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_json_atomic(path, result)


def start(name: str, out: str, setup: dict, rows: str = "variants", **more) -> dict:
    """The result a bench fills: its setup, the machine, the date, and the rows of `out` when `out`
    was measured under the same setup (every key of `setup` equal)."""
    result = dict(setup, benchmark=name, machine=machine(), date=time.strftime("%Y-%m-%d"), **more)
    result[rows] = {}
    if os.path.exists(out):
        earlier = read_result(out)
        if all(earlier.get(k) == v for k, v in setup.items()):
            result[rows] = earlier.get(rows, {})
    return result


@dataclass
class Job:
    """One training run and the row of the table it adds to."""
    row: str
    seed: int
    what: str
    overrides: list  # what the row is (recorded with it)
    run_dir: str
    shards: str = None  # the training data when not the whole --shards
    extra: tuple = ()  # overrides the run needs that are not the row's own (e.g. the labels to condition on)


def run_dir(args, name: str, seed: int) -> str:
    """Seed 0 trains in WORKDIR/NAME (quality_figure.py and the README's commands read it), others beside it."""
    return os.path.join(args.workdir, name if seed == 0 else f"{name}-seed{seed}")


class Scorer:
    """The FID Inception on the device, built once; scores a generator against the val split."""

    def __init__(self, args):
        import torch

        from facegan.eval.features import InceptionFeatures

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.extractor = InceptionFeatures(args.inception_weights).to(self.device).eval()
        self.shards, self.n = args.shards, args.n

    def __call__(self, G, metrics=("fid", "kid", "prdc")) -> dict:
        from facegan.eval.scoring import score

        return score(G, self.shards, "val", self.n, self.extractor, self.device, metrics=metrics, seed=12345)


def run_jobs(args, jobs: list, result: dict, out: str, measure, markdown, record=None, rows: str = "variants",
             tidy=None, rescore: bool = False) -> None:
    """Trains each job (with rescore: checks that its finished run is there), loads its generator,
    has `measure(job, G, scorer)` score it, and puts the run into its row with `record(row, job, run)`
    (default: add_run); `tidy(result)` then updates what depends on several rows. Writes `out` after
    every run, so an interrupted table keeps its rows, and prints the table at the end."""
    from facegan.eval.generator_io import load_generator

    scorer = Scorer(args)
    record = record or add_run
    for i, job in enumerate(jobs, 1):
        head = f"[{i}/{len(jobs)}] {job.row} seed {job.seed}:"
        if rescore:
            print(f"{head} scoring the run in {job.run_dir} again", flush=True)
            check_finished(job.run_dir, args.kimg, job.seed)
            wall = speed = None
        else:
            print(f"{head} training {args.kimg} kimg ({job.what})", flush=True)
            wall, speed = train_run(job.row, job.run_dir, args.config, job.shards or args.shards, args.kimg, job.seed,
                                    [*job.extra, *job.overrides, *args.set])
        t0 = time.perf_counter()
        G, _ = load_generator(job.run_dir, device=scorer.device)
        run = measure(job, G, scorer)
        run.update(seed=job.seed, train_wall_s=None if wall is None else round(wall, 1),
                   img_per_s=None if speed is None else round(speed, 1),
                   score_s=round(time.perf_counter() - t0, 1), measured=time.strftime("%Y-%m-%d %H:%M"))
        result[rows][job.row] = record(result[rows].get(job.row), job, run)
        if tidy:
            tidy(result)
        print("    " + "  ".join(f"{k} {run[k]:.4g}" for k in SCORES if run.get(k) is not None)
              + ("" if wall is None else f"  train {wall:.0f} s  {speed:.0f} img/s"), flush=True)
        write_result(out, result)
    print(markdown(result))
    print(f"{result['benchmark']}: wrote {out}")


def check_finished(run_dir: str, kimg: float, seed: int) -> None:
    """Exits with one line unless run_dir holds a run of this budget and seed (what --rescore scores)."""
    from facegan.config import load_config

    me = os.path.basename(sys.argv[0])
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        raise SystemExit(f"{me}: --rescore: no run in {run_dir}")
    cfg = load_config(path)
    if cfg.train.total_kimg != kimg or cfg.train.seed != seed:
        raise SystemExit(f"{me}: --rescore: {path} is a run of {cfg.train.total_kimg} kimg, seed "
                         f"{cfg.train.seed}, not {kimg} kimg, seed {seed}")


def add_run(row: dict, job: Job, run: dict) -> dict:
    """The row with `run` in place of any earlier run of its seed, and the numbers over its runs."""
    row = row or {}
    runs = sorted([r for r in row.get("runs", []) if r["seed"] != run["seed"]] + [run], key=lambda r: r["seed"])
    new = {"what": job.what, "overrides": job.overrides, "runs": runs,
           **({"note": row["note"]} if row.get("note") else {})}
    return dict(new, **aggregate(runs))


def aggregate(runs: list) -> dict:
    """Per-seed runs -> the row's numbers: for each score, the mean and (two or more seeds) the
    sample standard deviation as SCORE_std (KID's own subset spread stays kid_std in each run)."""
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


def ordered(rows: dict, order) -> list:
    """(name, row) pairs in the bench's own order of names, others after them by name (a result
    file keeps no order: its keys are sorted)."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def table(head: list, rows: list) -> list:
    """The lines of a Markdown table."""
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(map(str, cells)) + " |" for cells in rows])
