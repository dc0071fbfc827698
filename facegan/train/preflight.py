"""Every check that can refuse a training run, made before the run writes anything.

A refused run must leave its run directory as it was: no config.yaml describing a run that never
happened, no empty samples/. So the checks that need only the config and the files on disk
(processes vs batch, the shards: present, a tar, at the model's resolution, at least one batch
for every process and loader worker; the architecture of the checkpoint a resume would load)
run here, at the top of train(), before the Accelerator starts or a directory is made.
"""

import os
import tarfile

from ..config import Config
from ..data.loader import IMAGE_KEYS, ShardSet, TrainStream, resolve_shards
from ..errors import UserError
from ..io import read_json
from ..log import get_logger
from ..models import architecture
from ..conditions import select_condition
from . import checkpoint as ckpt


def preflight(cfg: Config, world: int = None, log=None) -> ShardSet:
    """Raise UserError (one line naming the key) if the run cannot start; returns the training
    shards. world: processes in the job (default: WORLD_SIZE, which every launcher sets).

    When the data holds a batch for every process but not for every loader worker of
    data.workers, the workers are lowered to what the data feeds (cfg.data.workers changes,
    with a note) rather than refusing a dataset that can train. log(text) takes the notes
    (default: facegan's logger)."""
    world = world or int(os.environ.get("WORLD_SIZE", "1"))
    log = log or get_logger().info
    batch = cfg.train.batch_size
    if batch % world:
        raise UserError(f"train.batch_size: {batch} does not divide evenly over {world} processes")
    _check_local_shard_files(cfg.data.shards)
    shards = _count_local_shards(resolve_shards(cfg.data.shards, "train", cfg.model.resolution))
    _check_missing_shards(shards, cfg.data.max_bad_fraction, log)
    if shards.total is not None:
        _fit_data(cfg, shards, world, log)
    _check_resume_architecture(cfg, training_condition(cfg, shards))
    return shards


def training_condition(cfg: Config, shards: ShardSet):
    """The Condition of model.condition / model.labels on these shards' labels (None:
    unconditional); UserError naming the key when the data cannot give it."""
    return select_condition(cfg.model.condition, shards.labels, cfg.model.labels, f"data.shards {cfg.data.shards}")


def _check_local_shard_files(spec: str) -> None:
    """A single local file given as data.shards must be a tar shard (a damaged shard among
    several is the bad-data budget's business: training goes on without it)."""
    if os.path.isfile(spec) and not tarfile.is_tarfile(spec):
        raise UserError(f"data.shards: {spec} is neither a dataset directory nor a tar shard "
                        f"(pack images with facegan-shard)")


COUNT_AT_MOST = 16  # local bare shards counted up front (a tar's headers are read to the end)


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _count_local_shards(shards: ShardSet) -> ShardSet:
    """Shard URLs without a manifest that are all local files: their images counted from the tar
    headers (cheap: no image is read), so small data is judged before the run starts. Shards that
    are all missing are refused here; one missing among others is bad data, skipped and counted
    by the loader like a damaged one; remote ones are counted as they stream."""
    if shards.counts is not None or not all(_is_local(u) for u in shards.urls):
        return shards
    missing = [u for u in shards.urls if not os.path.isfile(u)]
    if len(missing) == len(shards.urls):
        raise UserError(f"data.shards: no such shard: {missing[0]}"
                        + (f" (nor any of the other {len(missing) - 1})" if len(missing) > 1 else ""))
    if missing or len(shards.urls) > COUNT_AT_MOST:  # the loader counts as it reads (a missing one as bad)
        return shards
    counts = []
    for url in shards.urls:
        keys = set()
        try:
            with tarfile.open(url) as tf:
                for member in tf:
                    base = os.path.basename(member.name)
                    if member.isfile() and "." in base and base.split(".", 1)[1].lower() in IMAGE_KEYS:
                        keys.add(os.path.join(os.path.dirname(member.name), base.split(".", 1)[0]))
        except (tarfile.TarError, OSError):
            return shards  # a damaged shard: the loader skips and counts what it cannot read
        counts.append(len(keys))
    return ShardSet(shards.urls, counts, shards.resolution)


def _check_missing_shards(shards: ShardSet, max_bad_fraction: float, log) -> None:
    """Local shards that are not there are data that went missing, counted as what they held
    (the manifest's counts; without a manifest, the share of shards): past
    data.max_bad_fraction the run is refused naming them, under it a note says what is left out."""
    local = [i for i, u in enumerate(shards.urls) if _is_local(u)]
    missing = [i for i in local if not os.path.isfile(shards.urls[i])]
    if not missing:
        return
    names = ", ".join(shards.urls[i] for i in missing[:3]) + (", ..." if len(missing) > 3 else "")
    if shards.counts is not None:
        lost, total, unit = sum(shards.counts[i] for i in missing), shards.total, "training images"
    else:
        lost, total, unit = len(missing), len(shards.urls), "shards"
    what = f"{len(missing)} of {len(shards.urls)} shards missing ({lost} of {total} {unit}, {lost / max(total, 1):.1%})"
    if lost / max(total, 1) > max_bad_fraction:
        raise UserError(f"data.shards: {what}, over data.max_bad_fraction={max_bad_fraction:g}: {names}")
    log(f"note: {what}, within data.max_bad_fraction={max_bad_fraction:g}; training on the rest "
        f"(each counts as bad data): {names}")


def _slot_shares(shards: ShardSet, per_rank: int, world: int, workers: int) -> list:
    """Images each (rank, loader worker) slot reads per pass, as the training stream deals them."""
    nw = max(1, workers)
    stream = TrainStream(shards, per_rank, world=world)
    return [sum(c for _, c, _, _ in stream._assignment(slot, world * nw)) for slot in range(world * nw)]


def _fit_data(cfg: Config, shards: ShardSet, world: int, log) -> None:
    batch, per_rank = cfg.train.batch_size, cfg.train.batch_size // world
    spread = f" over {world} processes" if world > 1 else ""
    if shards.total < batch:
        raise UserError(f"data.shards: {cfg.data.shards} holds {shards.total} training images, fewer than "
                        f"one batch (train.batch_size={batch}{spread})")
    if min(_slot_shares(shards, per_rank, world, 1)) < per_rank:
        raise UserError(f"data.shards: {cfg.data.shards} holds {shards.total} training images in "
                        f"{len(shards.urls)} shard(s), which do not give each of {world} processes one batch "
                        f"of {per_rank} (train.batch_size={batch}); use a smaller batch or repack with "
                        f"smaller --shard-size")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cfg.data.workers * world > cores:
        log(f"note: data.workers={cfg.data.workers} per process ({cfg.data.workers * world} loader "
            f"processes) for {cores} usable CPU cores: they compete with training for the cores; "
            f"fewer may be faster")
    workers = cfg.data.workers
    while workers > 1 and min(_slot_shares(shards, per_rank, world, workers)) < per_rank:
        workers -= 1
    if workers != cfg.data.workers:
        log(f"note: data.workers={cfg.data.workers} lowered to {workers}: {shards.total} training "
            f"images give each of {cfg.data.workers} loader workers per process fewer than one batch of {per_rank}")
        cfg.data.workers = workers


def _check_resume_architecture(cfg: Config, condition=None) -> None:
    """The checkpoint a resume would load must have this config's architecture. Only state.json
    is read here; the checksums are verified when the checkpoint is loaded."""
    mode = cfg.run.resume
    if mode == "none":
        return
    if mode == "auto":
        candidates = ckpt.list_checkpoints(os.path.join(cfg.run.dir, "checkpoints"))
    else:
        candidates = [mode]
        if not os.path.isfile(os.path.join(mode, ckpt.STATE)):
            raise UserError(f"run.resume: {mode}: not a checkpoint (no {ckpt.STATE})")
    for path in candidates:
        try:
            state = read_json(os.path.join(path, ckpt.STATE), "checkpoint state")
        except UserError:
            if mode != "auto":
                raise
            continue  # a damaged one: the resume passes over it too
        ckpt.check_architecture(path, state, architecture(cfg.model, condition))
        return

