"""Does conditioning work? Conditional vs unconditional DCGAN on labeled synthetic cartoon faces.

    python bench/conditional.py                       # 32x32, 100 kimg per model (~25 min on 2 CPU cores)
    python bench/conditional.py --variants cond --kimg 40 --n 500

1. Packs synthetic cartoon faces with their labels (10% val) unless present.
2. Trains a small attribute classifier on the real training images (cached beside the shards,
   keyed by their content) and reports its accuracy per attribute on the real val images.
3. Trains each variant with launch/train.py, as a user does: the same data, budget, seed and recipe
   (configs/demo.yaml), differing only in model.condition / g_condition / d_condition.
4. For each conditional model, reports the fraction of samples whose attributes, as the
   classifier reads them, match what was asked, two ways (--n samples each):
   - one at a time, as `facegan-sample RUN --attr glasses=1` asks: each attribute asked on or off with
     probability 1/2 (so a model that ignores the request scores about 50%, not the 75-85% that
     always answering "off" would earn at the data's rates), the others drawn as the data has them;
   - all at once: every attribute asked on or off with probability 1/2, independently, which
     also asks for combinations the data holds rarely (glasses, hat and beard together: under 1%
     of the synthetic faces); the JSON splits this by combination.
   And FID/KID of every model against the val split (n images per side; conditional models draw
   their labels as the data has them).

Writes bench/results/conditional-<cpu|gpu>-<size>.json and prints the README's table.
A classifier is one judge: `--classifier-seed N` and `--classifier-aug degrade` (trained on blurred and
noised images too) train others, `--rescore` reads finished runs again with them, and
`--panel FILE...` lines up each model and seed under every judge (the README's summary).
"""

import sys

from attr_judge import classify, judge_name, train_classifier
from common import ensure_synthetic_shards
from runner import Job, default_out, options, ordered, parse, pick, read_result, run_dir, run_jobs, shown, start, \
    table


def cond(g, d, *extra):
    """Overrides of an attribute-conditional variant: G's and D's conditioning, then the rest."""
    return ["model.condition=attributes", f"model.g_condition={g}", f"model.d_condition={d}", *extra]


VARIANTS = {
    "uncond": ("unconditional (the same recipe)", ["model.condition=none"]),
    "cond": ("embedding joined to z, projection D", cond("embed", "projection")),
    "cond-cbn": ("conditional BatchNorm in G, projection D", cond("cbn", "projection")),
    "cond-concat": ("embedding joined to z, concatenation D (classic cGAN)", cond("embed", "concat")),
    "cond-aux": ("embedding joined to z, auxiliary classifier D (AC-GAN)", cond("embed", "aux")),
    "cond-cbn-aux": ("conditional BatchNorm in G, projection + auxiliary classifier D", cond("cbn", "projection+aux")),
    "cond-cbn-aux3": ("conditional BatchNorm in G, projection + auxiliary classifier D, its loss weighted 3",
                      cond("cbn", "projection+aux", "train.aux_weight=3")),
    "cond-cbn-adc": ("conditional BatchNorm in G, projection + ADC-GAN classifier D (labels as real or fake)",
                     cond("cbn", "projection+adc")),
    "cond-cbn-adconly": ("conditional BatchNorm in G, ADC-GAN classifier D without projection", cond("cbn", "adc")),
    "cond-cbn-adc3": ("as cond-cbn-adc, its loss weighted 3", cond("cbn", "projection+adc", "train.aux_weight=3")),
    "cond-cbn-aux-ndf64": ("as cond-cbn-aux, D twice as wide (model.ndf=64)",
                           cond("cbn", "projection+aux", "model.ndf=64")),
    "cond-cbn-adc-ndf64": ("as cond-cbn-adc, D twice as wide (model.ndf=64)",
                           cond("cbn", "projection+adc", "model.ndf=64")),
    "uncond-ndf64": ("unconditional, D twice as wide (model.ndf=64)", ["model.condition=none", "model.ndf=64"]),
    "cond-cbn-aux-ngf64": ("as cond-cbn-aux, G twice as wide (model.ngf=64)",
                           cond("cbn", "projection+aux", "model.ngf=64")),
    "cond-cbn-aux3-ngf64": ("as cond-cbn-aux-ngf64, the auxiliary loss weighted 3",
                            cond("cbn", "projection+aux", "model.ngf=64", "train.aux_weight=3")),
    "cond-cbn-aux-ngf128": ("as cond-cbn-aux, G four times as wide (model.ngf=128)",
                            cond("cbn", "projection+aux", "model.ngf=128")),
    "uncond-ngf128g": ("unconditional, G four times as wide (model.ngf=128)", ["model.condition=none", "model.ngf=128"]),
    "uncond-ngf64g": ("unconditional, G twice as wide (model.ngf=64)", ["model.condition=none", "model.ngf=64"]),
    "cond-cbn-aux-lr3": ("as cond-cbn-aux, learning rates 3e-4 instead of 1e-3",
                         cond("cbn", "projection+aux", "train.lr_g=3e-4", "train.lr_d=3e-4")),
    "uncond-lr3": ("unconditional, learning rates 3e-4 instead of 1e-3",
                   ["model.condition=none", "train.lr_g=3e-4", "train.lr_d=3e-4"]),
    "cond-cbn-aux3-bal": ("as cond-cbn-aux3, the fakes' labels balanced (each attribute on half the time)",
                          cond("cbn", "projection+aux", "train.aux_weight=3", "train.fake_labels=balanced")),
    "cond-cbn-aux3-ema5": ("as cond-cbn-aux3, EMA half-life 5 kimg instead of 10",
                           cond("cbn", "projection+aux", "train.aux_weight=3", "train.ema=5")),
}


def rates(got, want):
    """match, and match when asked on / off, of (N,) bool readings against (N,) bool requests."""
    return {"match": (got == want).float().mean().item(), "match_on": got[want].float().mean().item(),
            "match_off": (~got[~want]).float().mean().item()}


def attribute_match(G, net, n, seed):
    """How well G draws what is asked, as the classifier reads it; n samples per protocol.

    one_at_a_time (the headline, what `facegan-sample RUN --attr glasses=1` does): for each attribute,
    n samples ask it on or off with probability 1/2; the other attributes are drawn from G's label
    bank, i.e. as the training data has them. all_at_once: n samples ask every attribute on or off
    with probability 1/2, independently, so 1 in 2^C asks for a combination that the data may hold
    rarely (by_combination: n and per-attribute match for each asked combination)."""
    import torch

    from facegan.sampling import bank_conditions, generate, latents

    cond = G.condition
    one = {}
    for i, name in enumerate(cond.names):
        gen = torch.Generator().manual_seed(seed + 199 + i)
        want = torch.rand(n, generator=gen) < 0.5
        c = bank_conditions(G, n, seed + 1 + i)
        c[:, i] = torch.where(want, 1.0, -1.0)
        got = classify(net, generate(G, latents(n, G.nz, seed + 1 + i), 200, c))[:, i]
        one[name] = rates(got, want)
    gen = torch.Generator().manual_seed(seed + 99)
    asked = torch.where(torch.rand(n, cond.dim, generator=gen) < 0.5, 1.0, -1.0)
    got = classify(net, generate(G, latents(n, G.nz, seed), 200, asked))
    want = asked > 0
    joint = {name: rates(got[:, i], want[:, i]) for i, name in enumerate(cond.names)}
    by_combination = {key: {"n": int(rows.sum()), **{
        a: (got[rows, i] == want[rows, i]).float().mean().item() for i, a in enumerate(cond.names)}}
        for key, rows in combinations(want, cond.names)}
    return {"one_at_a_time": one, "all_at_once": joint, "all_at_once_by_combination": by_combination}


def combinations(on, names):
    """(key like "glasses=1,hat=0", (N,) bool rows holding it) for each distinct row of (N, C) bool."""
    import torch

    for combo in sorted({tuple(r) for r in on.tolist()}):
        yield ",".join(f"{a}={int(v)}" for a, v in zip(names, combo)), (on == torch.tensor(combo)).all(1)


def combination_rates(labels, names):
    """{"glasses=1,hat=0,...": fraction of images} of (N, C) +-1 labels: how often the data holds each."""
    return {key: rows.float().mean().item() for key, rows in combinations(labels > 0, names)}


def wall(row):
    return "-" if row.get("train_wall_s") is None else f"{row['train_wall_s']:.0f} s"


def cell(mm):
    return f"{100 * mm['match']:.1f}% ({100 * mm['match_on']:.0f} / {100 * mm['match_off']:.0f})" if mm else "-"


def markdown(result):
    """The README table of a result. Rows measured before the one-at-a-time protocol existed have
    only the all-at-once match (key "match") and are printed in the older layout."""
    m = result["machine"]
    names = result["attributes"]
    judge = (f" (seed {result['classifier_seed']})" if result["classifier_seed"] else "") + (
        ", trained on blurred and noised images too," if result["classifier_aug"] == "degrade" else "")
    both = any("match_one" in v for v in result["variants"].values())
    protocol = ("one attribute asked at a time, on or off with probability 1/2 (50% = the request ignored), the "
                "others drawn as the data has them; all at once: every attribute asked on or off with probability "
                "1/2 independently" if both else
                "each attribute asked on or off with probability 1/2 (50% = the request ignored)")
    accuracy = result["classifier_val_accuracy"]
    lines = [f"Budget {result['kimg']} kimg per model, seed {result['seed']}, {result['data']}, recipe "
             f"{result['config']}; {m['device']} ({m['cpu']}, {m['cores']} cores). Attribute match: {result['n']} "
             f"samples per setting, {protocol}; read by a classifier{judge} whose accuracy on real val images is "
             + ", ".join(f"{a} {100 * accuracy[a]:.1f}%" for a in names)
             + f". FID/KID: n = {result['n']} per side against the val split.", ""]
    rows = []
    for name, v in ordered(result["variants"], VARIANTS):
        one = v.get("match_one" if both else "match", {})
        cells = [cell(one.get(a)) for a in names]
        if both:
            joint = v.get("match", {})
            cells.append(" / ".join(f"{100 * joint[a]['match']:.0f}%" for a in names) if joint else "-")
        rows.append([name, v["what"], *cells, f"{v['fid']:.2f}", f"{1000 * v['kid']:.1f}", wall(v)])
    columns = [f"{a} match (on / off)" for a in names] + ([f"all at once: {' / '.join(names)}"] if both else [])
    return "\n".join(lines + table(["model", "G / D conditioning", *columns, "FID", "KID x 1000", "train wall"], rows))


CONDITION_ONLY = ("model.condition", "model.g_condition", "model.d_condition", "train.aux_weight", "train.fake_labels")


def baseline(name):
    """The unconditional variant with the same networks and optimiser as variant `name`: the one whose
    overrides, less those that only a conditional model has, are the same ("uncond" when none is)."""
    def rest(overrides):
        return sorted(o for o in overrides if o.split("=")[0] not in CONDITION_ONLY)

    want = rest(VARIANTS.get(name, ("", []))[1])
    return next((v for v, (_, o) in VARIANTS.items() if v.startswith("uncond") and rest(o) == want), "uncond")


def judge_of(result):
    return judge_name(result["classifier_seed"], result["classifier_aug"])


def panel(results):
    """The README's summary of several result files of one budget: per conditional model and training
    seed, the one-at-a-time match of each attribute as each judge (classifier seed; dN: degrade) reads it, the
    lowest of them, and FID against the unconditional model with the same networks and seed."""
    runs = {}  # (variant, seed) -> {judge: row}
    for r in results:
        for name, row in r["variants"].items():
            runs.setdefault((name, r["seed"]), {})[judge_of(r)] = row
    names = results[0]["attributes"]
    judges = sorted({judge_of(r) for r in results}, key=lambda j: (j.startswith("d"), j))
    j = " / ".join(judges)
    rows = []
    for (name, seed), by_judge in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if name.startswith("uncond"):
            continue
        first = next(iter(by_judge.values()))
        base = next(iter(runs.get((baseline(name), seed), {}).values()), None)
        ratio = f"{first['fid'] / base['fid']:.2f}x" if base else "-"
        cells, read = [], []
        for a in names:
            got = [by_judge[s]["match_one"][a]["match"] if "match_one" in by_judge.get(s, {}) else None for s in judges]
            cells.append(" / ".join("-" if g is None else f"{100 * g:.1f}" for g in got))
            read += [g for g in got if g is not None]
        low = f"{100 * min(read):.1f}%" if read else "-"
        rows.append([name, seed, *cells, low, f"{first['fid']:.2f}", ratio])
    head = ["model", "seed", *(f"{a}, judges {j}" for a in names), "lowest", "FID", "FID / unconditional"]
    return "\n".join(table(head, rows))


def record(command: str, rescore: bool):
    """How a run becomes its row (one seed per result file): the run's numbers, the command that
    measured them, and, scored again, the wall time and command of the training."""
    def row_of(earlier, job, run):
        row = {"what": job.what, "overrides": job.overrides, "command": command, **run}
        if rescore:
            row["train_wall_s"] = (earlier or {}).get("train_wall_s")
            if earlier:
                row["trained_by"] = earlier.get("trained_by", earlier.get("command"))
        return row

    return row_of


def measure(net, n: int, seed: int):
    """Scores a run: the attribute match of a conditional G (as `net` reads it), and FID/KID."""
    def scores(job, G, scorer):
        row = {}
        if G.condition is not None:
            got = attribute_match(G.cpu(), net, n, seed)
            row.update(match_one=got["one_at_a_time"], match=got["all_at_once"],  # "match": the older results' key
                       match_by_combination=got["all_at_once_by_combination"])
            G.to(scorer.device)
            print("    match " + "  ".join(f"{a} {100 * m['match']:.1f}%" for a, m in row["match_one"].items())
                  + "  (all at once: " + ", ".join(f"{100 * m['match']:.1f}%" for m in row["match"].values()) + ")")
        got = scorer(G, ("fid", "kid"))
        return dict(row, fid=got["fid"], kid=got["kid"], kid_std=got["kid_std"])

    return scores


def main():
    ap = options(__doc__, shards="cartoon32-labels", workdir="conditional", out="conditional-<cpu|gpu>-<size>.json",
                 many_seeds=False)
    ap.add_argument("--attrs", default="glasses,hat,beard", help="attributes to condition on")
    ap.add_argument("--classifier-epochs", type=int, default=6)
    ap.add_argument("--classifier-seed", type=int, default=0,
                    help="seed of the attribute classifier (another seed = another judge of the same samples)")
    ap.add_argument("--classifier-aug", choices=("flip", "degrade"), default="flip",
                    help="the classifier's training augmentation: flip (horizontal flips), or degrade (flips, "
                         "and each image blurred and noised by a random amount, as generated faces are)")
    ap.add_argument("--rescore", action="store_true",
                    help="score the variants' finished runs in --workdir again (e.g. with another classifier) "
                         "instead of training them")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--panel", nargs="+", metavar="JSON",
                    help="only print the match of each model and seed under each judge, from several results")
    args = parse(ap, markdown)
    if args.panel:
        print(panel([read_result(path) for path in args.panel]))
        return
    if args.quick and args.classifier_epochs == ap.get_default("classifier_epochs"):
        args.classifier_epochs = 1
    args.attrs = [a.strip() for a in args.attrs.split(",") if a.strip()]
    names = pick(ap, args.variants, VARIANTS)

    import torch

    from facegan.conditions import select_condition
    from facegan.data.shardset import resolve_shards

    torch.manual_seed(args.seed)
    ensure_synthetic_shards(args.shards, args.images, args.size, args.val_fraction)
    train = resolve_shards(args.shards, "train")
    condition = select_condition("attributes", train.labels, args.attrs, args.shards)
    net, accuracy, val_labels = train_classifier(args, condition, train.content_digest)
    print("classifier val accuracy: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items())
          + f" ({len(val_labels)} real val images)", flush=True)
    out = args.out or default_out(f"conditional-<device>-{args.size}.json")
    setup = {"kimg": args.kimg, "n": args.n, "seed": args.seed, "data": f"{shown(args.shards)} ({args.size}x{args.size})",
             "config": args.config, "set": args.set, "attributes": condition.names,
             "classifier_seed": args.classifier_seed, "classifier_aug": args.classifier_aug}
    command = "python bench/conditional.py " + " ".join(sys.argv[1:])
    result = start("conditional", out, setup, classifier_val_accuracy=accuracy, classifier_val_images=len(val_labels),
                   val_combination_rates=combination_rates(val_labels, condition.names), command=command)
    labels = [f"model.labels=[{','.join(args.attrs)}]"]
    jobs = [Job(name, args.seed, *VARIANTS[name], run_dir(args, name, args.seed),
                extra=() if name.startswith("uncond") else labels) for name in names]
    run_jobs(args, jobs, result, out, measure(net, args.n, args.seed), markdown, record=record(command, args.rescore),
             rescore=args.rescore)


if __name__ == "__main__":
    main()
