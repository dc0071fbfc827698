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

import argparse
import json
import os
import sys
import time

from common import RESULTS, ROOT, ensure_synthetic_shards, machine, train_run

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


def labeled_images(shards_dir, split, condition):
    """uint8 (N, 3, H, W) images and their (N, C) +-1 attribute vectors of one split."""
    import torch

    from facegan.data.decode import decoded_batch
    from facegan.data.health import Tracker
    from facegan.data.loader import decode_sample, keys_for, read_shard
    from facegan.data.shardset import resolve_shards

    shards = resolve_shards(shards_dir, split)
    tracker = Tracker(1.0)
    pairs = []
    for url in shards.urls:
        for s in read_shard(url, tracker, shards.count_of(url), keep=keys_for(condition)):
            got = decode_sample(s, shards.resolution, tracker, condition)
            if got is not None:
                pairs.append(got)
    return decoded_batch([p[0] for p in pairs]).contiguous(), torch.tensor([p[1] for p in pairs])


def classifier(n_out):
    from torch import nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True),
                nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, n_out))


def as_input(images_uint8):
    return images_uint8.float() / 127.5 - 1


def degrade(xb, gen):
    """A batch of [-1, 1] images, each blurred (Gaussian, sigma 0 to 1.2 px) and noised (sigma 0 to
    0.08) by its own random amount: generated faces are softer and noisier than the renders, and a
    judge that never saw either reads a soft glasses frame as no glasses (the `degrade` judge)."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    levels = torch.randint(0, 4, (len(xb),), generator=gen)
    out = xb.clone()
    for level, sigma in enumerate((0.0, 0.5, 0.8, 1.2)):
        rows = levels == level
        if sigma and rows.any():
            out[rows] = TF.gaussian_blur(xb[rows], kernel_size=5, sigma=sigma)
    noise = torch.randn(xb.shape, generator=gen) * torch.rand(len(xb), 1, 1, 1, generator=gen) * 0.08
    return (out + noise).clamp(-1, 1)


def judge_name(seed, aug):
    """How results name a classifier: its seed, with a d in front for a degrade judge."""
    return f"d{seed}" if aug == "degrade" else str(seed)


def train_classifier(args, condition, digest):
    """(classifier, {attribute: val accuracy}, (N, C) +-1 val labels); the classifier is trained once
    per data content, attribute list and --classifier-seed, and cached beside the shards."""
    import torch
    from safetensors.torch import load_file, save_file

    names = condition.names
    tag = (f"-s{args.classifier_seed}" if args.classifier_seed else "") + (
        f"-{args.classifier_aug}" if args.classifier_aug != "flip" else "")
    path = os.path.join(args.shards, f"attr-classifier-{digest[:16]}-{'-'.join(names)}{tag}.safetensors")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.classifier_seed)  # the cache is keyed by data and this seed, not by --seed
        net = classifier(len(names))
    val_x, val_y = labeled_images(args.shards, "val", condition)
    if os.path.exists(path):
        net.load_state_dict(load_file(path))
        print(f"classifier: cached {path}")
    else:
        x, y = labeled_images(args.shards, "train", condition)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(args.classifier_seed)
        t0 = time.perf_counter()
        for epoch in range(args.classifier_epochs):
            net.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x) - 127, 128):
                idx = perm[i:i + 128]
                xb = as_input(x[idx])
                flip = torch.rand(len(idx), generator=gen) < 0.5  # the GANs train with flips too
                xb[flip] = xb[flip].flip(3)
                if args.classifier_aug == "degrade":
                    xb = degrade(xb, gen)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb), (y[idx] > 0).float())
                opt.zero_grad()
                loss.backward()
                opt.step()
            print(f"classifier: epoch {epoch + 1}/{args.classifier_epochs}, loss {loss.item():.4f}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        save_file(net.state_dict(), path)
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(as_input(val_x[i:i + 500])) for i in range(0, len(val_x), 500)]) > 0
    acc = ((pred == (val_y > 0)).float().mean(0)).tolist()
    return net, dict(zip(names, acc)), val_y


def classify(net, images):
    """(N, C) bool: the classifier's reading of uint8 images."""
    import torch

    with torch.no_grad():
        return torch.cat([net(as_input(images[i:i + 500])) for i in range(0, len(images), 500)]) > 0


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

    from facegan.latents import latents
    from facegan.sampling import bank_conditions
    from facegan.train.samples import generate

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
    aug = result.get("classifier_aug", "flip")
    judge = (f" (seed {result['classifier_seed']})" if result.get("classifier_seed") else "") + (
        ", trained on blurred and noised images too," if aug == "degrade" else "")
    both = any("match_one" in v for v in result["variants"].values())
    protocol = ("one attribute asked at a time, on or off with probability 1/2 (50% = the request ignored), the "
                "others drawn as the data has them; all at once: every attribute asked on or off with probability "
                "1/2 independently" if both else
                "each attribute asked on or off with probability 1/2 (50% = the request ignored)")
    lines = [f"Budget {result['kimg']} kimg per model, seed {result['seed']}, {result['data']}, recipe "
             f"{result['config']}; {m['device']} ({m['cpu']}, {m['cores']} cores). Attribute match: {result['n']} "
             f"samples per setting, {protocol}; read by a classifier{judge} whose accuracy on real val images is "
             + ", ".join(f"{k} {100 * v:.1f}%" for k, v in result["classifier_val_accuracy"].items())
             + f". FID/KID: n = {result['n']} per side against the val split.", ""]
    joint_column = [f"all at once: {' / '.join(names)}"] if both else []
    columns = [f"{a} match (on / off)" for a in names] + joint_column
    lines += ["| model | G / D conditioning | " + " | ".join(columns) + " | FID | KID x 1000 | train wall |",
              "|---|---|" + "---|" * len(columns) + "---|---|---|"]
    for name, v in result["variants"].items():
        one = v.get("match_one" if both else "match", {})
        cells = [cell(one.get(a)) for a in names]
        if both:
            joint = v.get("match", {})
            cells.append(" / ".join(f"{100 * joint[a]['match']:.0f}%" for a in names) if joint else "-")
        lines.append(f"| {name} | {v['what']} | " + " | ".join(cells)
                     + f" | {v['fid']:.2f} | {1000 * v['kid']:.1f} | {wall(v)} |")
    return "\n".join(lines)


CONDITION_ONLY = ("model.condition", "model.g_condition", "model.d_condition", "train.aux_weight", "train.fake_labels")


def baseline(name):
    """The unconditional variant with the same networks and optimiser as variant `name`: the one whose
    overrides, less those that only a conditional model has, are the same ("uncond" when none is)."""
    def rest(overrides):
        return sorted(o for o in overrides if o.split("=")[0] not in CONDITION_ONLY)

    want = rest(VARIANTS.get(name, ("", []))[1])
    return next((v for v, (_, o) in VARIANTS.items() if v.startswith("uncond") and rest(o) == want), "uncond")


def judge_of(result):
    return judge_name(result.get("classifier_seed", 0), result.get("classifier_aug", "flip"))


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
    lines = [f"| model | seed | " + " | ".join(f"{a}, judges {j}" for a in names)
             + " | lowest | FID | FID / unconditional |", "|---|---|" + "---|" * len(names) + "---|---|---|"]
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
        lines.append(f"| {name} | {seed} | " + " | ".join(cells) + f" | {low} | {first['fid']:.2f} | {ratio} |")
    return "\n".join(lines)


def check_finished(run_dir, kimg, seed):
    """Exits with one line unless run_dir holds a run of this budget and seed (what --rescore scores)."""
    from facegan.config import load_config

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        raise SystemExit(f"conditional.py: --rescore: no run in {run_dir}")
    cfg = load_config(path)
    if cfg.train.total_kimg != kimg or cfg.train.seed != seed:
        raise SystemExit(f"conditional.py: --rescore: {path} is a run of {cfg.train.total_kimg} kimg, seed "
                         f"{cfg.train.seed}, not {kimg} kimg, seed {seed}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.yaml", help="the recipe every variant shares")
    ap.add_argument("--shards", default="bench/out/cartoon32-labels", help="labeled dataset (packed here if missing)")
    ap.add_argument("--images", type=int, default=11000, help="synthetic faces to pack when missing (10%% val)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--attrs", default="glasses,hat,beard", help="attributes to condition on")
    ap.add_argument("--kimg", type=float, default=100, help="training budget per model")
    ap.add_argument("--n", type=int, default=1000, help="samples for attribute match, and per side for FID/KID")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classifier-epochs", type=int, default=6)
    ap.add_argument("--classifier-seed", type=int, default=0,
                    help="seed of the attribute classifier (another seed = another judge of the same samples)")
    ap.add_argument("--classifier-aug", choices=("flip", "degrade"), default="flip",
                    help="the classifier's training augmentation: flip (horizontal flips), or degrade (flips, "
                         "and each image blurred and noised by a random amount, as generated faces are)")
    ap.add_argument("--rescore", action="store_true",
                    help="score the variants' finished runs in --workdir again (e.g. with another classifier) "
                         "instead of training them")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "conditional"))
    ap.add_argument("--out", help="result JSON (default bench/results/conditional-<cpu|gpu>-<size>.json)")
    ap.add_argument("--table", metavar="JSON", help="only print the Markdown table of an earlier result")
    ap.add_argument("--panel", nargs="+", metavar="JSON",
                    help="only print the match of each model and seed under each judge, from several results")
    args = ap.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)))
        return
    if args.panel:
        results = []
        for path in args.panel:
            with open(path) as f:
                results.append(json.load(f))
        print(panel(results))
        return
    args.attrs = [a.strip() for a in args.attrs.split(",") if a.strip()]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    sys.path.insert(0, ROOT)
    import torch

    from facegan.data.shardset import resolve_shards
    from facegan.eval.features import InceptionFeatures
    from facegan.eval.generator_io import load_generator
    from facegan.eval.scoring import score
    from facegan.conditions import select_condition

    torch.manual_seed(args.seed)
    ensure_synthetic_shards(args.shards, args.images, args.size)
    train = resolve_shards(args.shards, "train")
    condition = select_condition("attributes", train.labels, args.attrs, args.shards)
    net, accuracy, val_labels = train_classifier(args, condition, train.content_digest)
    n_val = len(val_labels)
    print("classifier val accuracy: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items())
          + f" ({n_val} real val images)", flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or os.path.join(RESULTS, f"conditional-{'gpu' if device == 'cuda' else 'cpu'}-{args.size}.json")
    extractor = InceptionFeatures(log=print).to(device).eval()
    result = {"benchmark": "conditional", "machine": machine(), "kimg": args.kimg, "n": args.n, "seed": args.seed,
              "data": f"{args.shards} ({args.size}x{args.size})", "config": args.config, "set": args.set,
              "attributes": condition.names, "classifier_seed": args.classifier_seed,
              "classifier_aug": args.classifier_aug, "classifier_val_accuracy": accuracy, "classifier_val_images": n_val,
              "val_combination_rates": combination_rates(val_labels, condition.names),
              "command": "python bench/conditional.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
              "variants": {}}
    if os.path.exists(out):  # rows measured earlier under the same setup are kept (re-run one with --variants)
        with open(out) as f:
            earlier = json.load(f)
        defaults = {"set": [], "classifier_seed": 0, "classifier_aug": "flip"}  # files from before these keys
        if all(earlier.get(k, defaults.get(k)) == result[k]
               for k in ("kimg", "n", "seed", "data", "config", "set", "attributes", "classifier_seed",
                         "classifier_aug")):
            result["variants"] = earlier.get("variants", {})
    for i, name in enumerate(names, 1):
        what, overrides = VARIANTS[name]
        run_dir = os.path.join(args.workdir, name if args.seed == 0 else f"{name}-seed{args.seed}")
        if args.rescore:
            print(f"[{i}/{len(names)}] {name}: scoring the run in {run_dir} again", flush=True)
            check_finished(run_dir, args.kimg, args.seed)
            wall = result["variants"].get(name, {}).get("train_wall_s")  # as measured when it was trained
        else:
            print(f"[{i}/{len(names)}] {name}: training {args.kimg} kimg ({what})", flush=True)
            labels = [] if name.startswith("uncond") else [f"model.labels=[{','.join(args.attrs)}]"]
            wall, _ = train_run(name, run_dir, args.config, args.shards, args.kimg, args.seed,
                                [*labels, *overrides, *args.set])
        G, _ = load_generator(run_dir, device=device)
        row = {"what": what, "overrides": overrides, "command": result["command"],
               "train_wall_s": None if wall is None else round(wall, 1)}
        if args.rescore and name in result["variants"]:
            row["trained_by"] = result["variants"][name].get("trained_by", result["variants"][name].get("command"))
        if G.condition is not None:
            got = attribute_match(G.cpu(), net, args.n, args.seed)
            row["match_one"] = got["one_at_a_time"]
            row["match"] = got["all_at_once"]  # the key older results use for this protocol
            row["match_by_combination"] = got["all_at_once_by_combination"]
            G.to(device)
        scores = score(G, args.shards, "val", args.n, extractor, device, metrics=("fid", "kid"), seed=12345)
        row.update(fid=scores["fid"], kid=scores["kid"], kid_std=scores["kid_std"])
        result["variants"][name] = row
        print(f"    FID {row['fid']:.2f}  KID {row['kid']:.5f}  "
              + "  ".join(f"{a} {100 * m['match']:.1f}%" for a, m in row.get("match_one", {}).items())
              + ("  (all at once: " + ", ".join(f"{100 * m['match']:.1f}%" for m in row["match"].values()) + ")"
                 if "match" in row else ""), flush=True)
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(out + ".tmp", out)
    print(markdown(result))
    print(f"conditional: wrote {out}")


if __name__ == "__main__":
    main()
