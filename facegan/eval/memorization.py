"""facegan-eval --nearest: the copy check of facegan/eval/nearest.py run on real image sets.

Generated, val and train images go through one extractor pass each (Inception features plus a
32x32 thumbnail per image), split across processes and gathered like FID's features; the check,
the figure and the verdict follow on the gathered rows."""

import os

from ..errors import UserError
from ..io import atomic_path
from .nearest import FeaturesAndThumbnails, copy_check, distance_lines, figure, verdict


def run_nearest(args, source, ref, extractor, acc, log=None) -> dict:
    """The check for facegan-eval's arguments (args.n, args.nearest: the PNG path, args.nearest_train,
    args.split, args.batch_size, args.seed). source and ref are facegan.eval.image_sets sets; ref
    must be a shard dataset with train and val splits. Returns the JSON-ready summary, plus '_real'
    and '_fake': the plain features for FID and the other scores (ref's split, and the source).
    log(text): where the feature caches' notes go (default: facegan's logger)."""
    from .image_sets import DatasetSet

    if ref.kind != "shards":
        raise UserError(f"--nearest: --ref {ref.path} must be a facegan shard dataset (with train and val "
                        f"splits), not a {ref.kind}")
    wrapped = FeaturesAndThumbnails(extractor)
    train_set = DatasetSet(ref.path, "train", ref.resolution)
    val_set = ref if ref.split == "val" else DatasetSet(ref.path, "val", ref.resolution)
    n_train = args.nearest_train or train_set.shards.total or 10 ** 9
    common = dict(extractor=wrapped, device=acc.device, accelerator=acc, batch_size=args.batch_size,
                  seed=args.seed, log=log)
    gen = source.features(args.n, **common)
    val = val_set.features(args.n, **common)
    train = train_set.features(n_train, **common)
    if min(len(gen), len(val), len(train)) < 2:
        raise UserError(f"--nearest: needs at least 2 generated, val and train images "
                        f"(got {len(gen)}, {len(val)}, {len(train)})")
    (gen_f, gen_t), (val_f, val_t), (train_f, train_t) = (wrapped.split(x) for x in (gen, val, train))
    checks = [copy_check(gen_f, train_f, val_f, "Inception"),
              copy_check(gen_t.flatten(1), train_t.flatten(1), val_t.flatten(1), f"pixel {wrapped.size}px")]
    out = {"verdict": verdict(checks), "distances": distance_lines(checks), "png": args.nearest, "n_train": len(train), "n_val": len(val),
           "n_generated": len(gen), "copied": any(c.copied for c in checks),
           "spaces": {c.space: c.summary() for c in checks}}
    if acc.is_main_process:
        if os.path.dirname(args.nearest):
            os.makedirs(os.path.dirname(args.nearest), exist_ok=True)
        with atomic_path(args.nearest) as tmp:
            figure(gen_t, train_t, checks).save(tmp, format="PNG")
    real = val_f if ref.split == "val" else ref.features(args.n, extractor, acc.device, acc, args.batch_size,
                                                          args.seed, log)
    out["_real"], out["_fake"] = real, gen_f
    return out
