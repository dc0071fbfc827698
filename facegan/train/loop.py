"""The training loop, read top to bottom: runtime, run directory, models, resume, data, steps, finish.

Each stage is a named function below `train`; the state they share lives in small objects
(Runtime, Nets, Run, GANStep and its Progress, Checkpointer, NanWatch, StatusMeter, SampleWriter)
rather than in closures.
"""

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from accelerate.utils import broadcast_object_list, set_seed

from ..config import Config, dump_config, to_dict
from ..config.augment_policy import resolve_auto
from ..data.cache import DeviceCache
from ..data.loader import label_bank, train_loader
from ..images import to_unit_range
from ..io import atomic_path
from ..log import get_logger, prefixed, run_log_file
from ..models import architecture, build_models
from . import checkpoint as ckpt
from . import finetune
from .ada import ada_from_config, small_data_note
from .augment import parse_policy
from .checkpointer import Checkpointer, average_buffers, checkpoint_root
from .ema import EmaSchedule, make_ema
from .nan_watch import NanWatch, NonFiniteLoss
from .preflight import preflight, training_condition
from .run_totals import DataTotals, RunClock
from .runtime import Runtime, StopSignal, lock_run_dir, setup_runtime
from .samples import SampleWriter
from .status import StatusMeter
from .step import GANStep, Progress
from .tracking import MetricsLog, start_trackers

log = get_logger()

SYNC_EVERY = 10  # steps between the (cheap) cross-rank checks for a stop signal or a bad loss

__all__ = ["train", "TrainResult", "NonFiniteLoss"]


@dataclass
class TrainResult:
    checkpoint: Optional[str]  # newest checkpoint (on the main process; None elsewhere)
    step: int
    images_seen: int
    stopped: bool  # by SIGTERM/SIGINT
    G: torch.nn.Module
    G_ema: torch.nn.Module
    D: torch.nn.Module
    ada: object = None  # the AdaController of train.augment=ada (its p), else None


@dataclass
class Nets:
    """G and D as trained (possibly DDP- and compile-wrapped), their plain modules (for
    checkpoints, EMA and the G step), the EMA generator, optimizers and the architecture."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    arch: dict
    G_raw: torch.nn.Module = None
    D_raw: torch.nn.Module = None
    ada: object = None  # AdaController (train.augment=ada)


@dataclass
class Run:
    """What the step loop drives besides the step itself: the config, where it runs, the nets,
    the batches (and their loader, for its counts of samples read and bad), and what records
    the run."""

    cfg: Config
    rt: Runtime
    nets: Nets
    batches: Iterator
    loader: object
    checkpointer: Checkpointer
    nan_watch: NanWatch
    status: StatusMeter
    samples: SampleWriter
    metrics: MetricsLog
    evaluator: Optional[Callable] = None  # FID during training (see train's make_evaluator)


def train(cfg: Config, make_evaluator=None, on_finish=None) -> TrainResult:
    """Train until train.total_kimg (or max_steps, or a stop signal) and return the result.

    make_evaluator(cfg, accelerator) -> evaluator or None: FID during training, supplied by the
    caller (the CLI hands in facegan.eval's) so this package does not depend on the eval package.
    An evaluator is called as evaluator(G_ema, step, images_seen, write_checkpoint, metrics).
    on_finish(run_dir): called on the main process when the run ends (the CLI writes the report).

    The run directory is locked for the whole call (one training per run directory). Raises
    UserError for anything the user can fix (a second training on the directory, missing data,
    an architecture that differs from the checkpoint's), NonFiniteLoss when a loss goes NaN/inf,
    and torch's RuntimeError when a collective fails (a rank died or stalled).
    """
    # Every check that can refuse the run, before anything is written; what it chose for the user
    # (workers lowered, shards missing within the budget) is said once the log is open, and kept
    # in config.yaml.
    chosen: list = []
    shards = preflight(cfg, log=chosen.append)
    asked = cfg.train.augment
    cfg.train.augment, note = resolve_auto(asked, shards.total, cfg.train.total_kimg)  # kept in config.yaml
    data_notes = [note, small_data_note(shards.total, cfg.train.augment, cfg.train.ada_target,
                                        auto=asked != cfg.train.augment)]
    condition = training_condition(cfg, shards)
    init = finetune.preflight_finetune(cfg, condition)  # run.init, train.freeze_d
    rt = setup_runtime(cfg)
    lock = lock_run_dir(rt, cfg.run.dir)
    try:
        with run_log_file(os.path.join(cfg.run.dir, "log.txt"), rt.is_main):
            return _run(cfg, rt, shards, condition, init, chosen + rt.notes + data_notes, make_evaluator,
                        on_finish)
    finally:
        if lock is not None:
            lock.release()


def _run(cfg, rt: Runtime, shards, condition, init, chosen: list, make_evaluator, on_finish) -> TrainResult:
    """The run itself, with its directory locked and its log open."""
    chosen = [line for line in chosen if line]
    for line in chosen:
        log.info(line)
    _prepare_run_dir(cfg, rt, [prefixed(line) for line in chosen])
    nets = _build_nets(cfg, rt, shards, condition)
    resume_path, state = _resume_target(cfg, rt)
    progress, wandb_id = _load_state(cfg, rt, nets, resume_path, state, init)
    nets.ada = ada_from_config(cfg.train, rt.device, state, rt.rank)
    _prepare_for_devices(cfg, rt, nets)
    loader = _make_loader(cfg, rt, shards, progress.step, condition)
    # Creating the iterator draws a seed from the global RNG: do it before seeding or restoring
    # the RNG, so a resumed run's random stream matches an uninterrupted one exactly.
    batches = iter(loader)
    _start_rng(cfg, rt, resume_path, state, progress.step)
    clock, data = RunClock(state), DataTotals(state)
    nan_watch = NanWatch(rt, checkpoint_root(cfg))
    checkpointer = Checkpointer(rt, cfg, nets, loader, nan_watch, clock, data,
                                last_step=progress.step if resume_path else -1)
    checkpointer.wandb_id = _start_trackers(cfg, rt, wandb_id)
    # Rows a killed run wrote past this checkpoint are dropped: they are about to be redone.
    metrics = MetricsLog(os.path.join(cfg.run.dir, "metrics.jsonl"), rt.is_main, resume_step=progress.step)
    samples = SampleWriter(rt, cfg, nets.G_ema)
    if not resume_path:
        samples.write_reals(shards)
        samples.write(progress)
    evaluator = make_evaluator(cfg, rt.accelerator) if make_evaluator and cfg.eval.every_kimg > 0 else None
    target = int(cfg.train.total_kimg * 1000)  # the ETA's end: the budget, or train.max_steps when sooner
    if cfg.train.max_steps:
        target = min(target, cfg.train.max_steps * cfg.train.batch_size)
    status = StatusMeter(rt, metrics, clock, data, progress.images_seen, target, ada=nets.ada)
    run = Run(cfg, rt, nets, batches, loader, checkpointer, nan_watch, status, samples, metrics, evaluator)
    try:
        stopped = _loop(run, _make_step(cfg, rt, nets, condition, progress))
    except NonFiniteLoss:
        # The grid of the moment it went wrong: often what shows how (collapse, saturation).
        grid = samples.write(progress)
        if grid:
            log.info(f"sample grid at the stop (step {progress.step}): {grid}")
        raise
    finally:
        status.close()
    return _finish(run, progress, stopped, on_finish)


# ---------------------------------------------------------------- stages


def _prepare_run_dir(cfg, rt: Runtime, notes=()) -> None:
    if rt.is_main:
        os.makedirs(os.path.join(cfg.run.dir, "samples"), exist_ok=True)
        with atomic_path(os.path.join(cfg.run.dir, "config.yaml")) as tmp:
            dump_config(cfg, tmp, notes)


def _build_nets(cfg, rt: Runtime, shards, condition) -> Nets:
    """Identical initial weights on every rank (DDP also broadcasts rank 0's on wrap). A
    conditional G gets its label bank from the training data (the same on every rank; a resume
    then loads the checkpoint's)."""
    G, D = build_models(cfg.model, cfg.train.seed, condition)
    if condition is not None:
        G.label_bank.copy_(label_bank(shards, condition, len(G.label_bank), cfg.data.stall_s))
    if cfg.train.sync_batchnorm and rt.world > 1 and rt.kind == "cuda":
        G, D = (torch.nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
    G, D = G.to(memory_format=rt.memory_format), D.to(memory_format=rt.memory_format)
    finetune.freeze_d(D, cfg.train.freeze_d)  # FreezeD: those blocks stay out of D's optimizer
    betas = tuple(cfg.train.betas)
    fused = {"fused": True} if rt.kind == "cuda" else {}
    return Nets(G, D, make_ema(G).to(rt.device),
                torch.optim.Adam(G.parameters(), lr=cfg.train.lr_g, betas=betas, **fused),
                torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=cfg.train.lr_d, betas=betas,
                                 **fused),
                architecture(cfg.model, condition))


def _resume_target(cfg, rt: Runtime):
    """(checkpoint path, its verified state) to resume from, or (None, None)."""
    mode = cfg.run.resume
    if mode == "none":
        return None, None
    if mode == "auto":
        # Rank 0 picks and the others load the same one: listing the checkpoints on each rank, one
        # landing between two listings would start the ranks at different steps (a hang).
        path = ckpt.find_resumable(checkpoint_root(cfg))[0] if rt.is_main else None
        path = broadcast_object_list([path])[0]
        return (path, ckpt.verify(path)) if path else (None, None)
    return mode, ckpt.verify(mode)


def _load_state(cfg, rt: Runtime, nets: Nets, path, state, init=None):
    """Weights and optimizer state into the plain modules, before prepare(); without a checkpoint
    of this run, run.init's weights (init) with fresh optimizers. Returns (Progress, wandb run id or None)."""
    if not path:
        if init is None and not finetune.is_off(cfg.run.init):  # expected a resume, found none usable
            init = finetune.check_init(cfg.run.init, nets.arch)
        if init is not None:
            what = finetune.load_init(init, nets.G, nets.G_ema, nets.D)
            log.info(f"fine-tuning from {init.source}: {what}; optimizers and step start fresh")
        if cfg.train.freeze_d:
            log.info(finetune.freeze_note(cfg.train.freeze_d, len(finetune.d_blocks(nets.D)), init))
        return Progress(), None
    if not finetune.is_off(cfg.run.init):
        log.info(f"note: run.init={cfg.run.init} ignored: the run resumes from its own checkpoint")
    ckpt.load_checkpoint(path, state, {"G": nets.G, "G_ema": nets.G_ema, "D": nets.D},
                         {"opt_G": nets.opt_G, "opt_D": nets.opt_D}, nets.arch)
    for opt, lr in ((nets.opt_G, cfg.train.lr_g), (nets.opt_D, cfg.train.lr_d)):  # the config's lr wins
        for group in opt.param_groups:
            group["lr"], group["betas"] = lr, tuple(cfg.train.betas)
    progress = Progress(state["step"], state["images_seen"])
    log.info(f"resumed from {path} (step {progress.step}, {progress.images_seen / 1000:.1f} kimg)")
    return progress, state.get("wandb_id")


def _prepare_for_devices(cfg, rt: Runtime, nets: Nets) -> None:
    if cfg.train.compile:
        # D's requires_grad toggles between steps; the G step calls the uncompiled D (see GANStep),
        # so the compiled graphs never see the toggle and do not recompile (bench checks).
        nets.G, nets.D = torch.compile(nets.G), torch.compile(nets.D)
    nets.G, nets.D, nets.opt_G, nets.opt_D = rt.accelerator.prepare(nets.G, nets.D, nets.opt_G, nets.opt_D)
    nets.G_raw = rt.accelerator.unwrap_model(nets.G, keep_torch_compile=False)
    nets.D_raw = rt.accelerator.unwrap_model(nets.D, keep_torch_compile=False)


def _make_loader(cfg, rt: Runtime, shards, start_batch: int, condition=None):
    """Ours, not prepare()'d: each rank reads its own shards, from where it stopped."""
    if cfg.data.device_cache:
        loader = DeviceCache(shards, rt.batch, rt.rank, rt.world, cfg.train.seed, start_batch, rt.device,
                             cfg.data.max_bad_fraction, cfg.data.stall_s, condition)
        log.info(f"{len(loader)} training images cached on {rt.device} "
                 f"({loader.nbytes / 2**20:.0f} MiB on this rank)")
        return loader
    return train_loader(shards, rt.batch, rt.rank, rt.world, seed=cfg.train.seed, start_batch=start_batch,
                        workers=cfg.data.workers, pin_memory=rt.kind == "cuda",
                        max_bad_fraction=cfg.data.max_bad_fraction, stall_s=cfg.data.stall_s, condition=condition)


def _start_rng(cfg, rt: Runtime, path, state, step: int) -> None:
    if not path:
        set_seed(cfg.train.seed, device_specific=True)  # distinct noise and flips per rank
        return
    if state.get("scaler") and rt.accelerator.scaler is not None:
        rt.accelerator.scaler.load_state_dict(state["scaler"])
    if state.get("world_size") == rt.world:
        ckpt.restore_rng(ckpt.load_rng(path, rt.rank), rt.device)
    else:
        log.info(f"warning: checkpoint was written by {state.get('world_size')} "
                 f"processes, this run has {rt.world}; RNG streams start fresh")
        set_seed(cfg.train.seed + step, device_specific=True)


def _start_trackers(cfg, rt: Runtime, wandb_id):
    """wandb / TensorBoard through Accelerate (log.trackers); the wandb run id to keep (resumes)."""
    return start_trackers(rt.accelerator, cfg, to_dict(cfg), wandb_id)


def crossed(interval_kimg: float, before: int, after: int) -> bool:
    """Whether images_seen passed a multiple of interval_kimg (0: never) during the last step."""
    if interval_kimg <= 0:
        return False
    n = interval_kimg * 1000
    return math.floor(after / n) > math.floor(before / n)


def _make_step(cfg, rt: Runtime, nets: Nets, condition, progress: Progress) -> GANStep:
    """The training step of this config, on the nets as prepared, continuing from progress."""
    t = cfg.train
    return GANStep(rt.accelerator, nets.G, nets.D, nets.opt_G, nets.opt_D, nets.G_ema,
                   EmaSchedule(t.ema, t.batch_size, t.ema_rampup), cfg.model.nz, loss=t.loss,
                   augment=parse_policy(t.augment), r1_gamma=t.r1_gamma, r1_every=t.r1_every,
                   aux_weight=t.aux_weight, fake_labels=t.fake_labels, ada=nets.ada, condition=condition,
                   d_condition=cfg.model.d_condition, progress=progress)


def _loop(run: Run, gan_step: GANStep) -> bool:
    """Steps until train.total_kimg is seen (or train.max_steps, or a stop signal); True when a
    stop signal ended it. The step advances gan_step.progress; what comes due after it (a record,
    a grid, FID, a checkpoint) goes by the images it crossed."""
    progress, total_images = gan_step.progress, int(run.cfg.train.total_kimg * 1000)
    stopped = False
    with StopSignal() as stop:
        while progress.images_seen < total_images and not _max_steps_reached(run, progress):
            real, cond = _next_batch(run)
            before = progress.images_seen
            loss_D, loss_G, logits_real, logits_fake = gan_step(real, cond)
            run.status.add(loss_D, loss_G, logits_real, logits_fake)
            run.nan_watch.note(loss_D + loss_G, progress.step)
            stopped = _stop_agreed(run, stop, progress.step)
            done = progress.images_seen >= total_images or _max_steps_reached(run, progress)
            _after_step(run, progress, before, stopped, done=done)
            if stopped:
                log.info(f"stop requested; checkpoint written at step {progress.step}, exiting")
                break
    return stopped


def _max_steps_reached(run: Run, progress: Progress) -> bool:
    """train.max_steps (0: no limit) reached, counted from step 0 (a resumed run included)."""
    return bool(run.cfg.train.max_steps) and progress.step >= run.cfg.train.max_steps


def _next_batch(run: Run):
    """The next batch on the device: images (N, 3, H, W) in [-1, 1], flipped at random with
    data.flip, and a conditional run's conditions (N, C), else None."""
    batch = next(run.batches)
    images, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
    real = to_unit_range(images, run.rt.device, run.cfg.data.flip, run.rt.memory_format)
    return real, None if cond is None else cond.to(run.rt.device, non_blocking=True)


def _stop_agreed(run: Run, stop: StopSignal, step: int) -> bool:
    """Whether every rank stops after this step. Cross-rank decisions come at a fixed cadence (a
    host sync), never every step: every SYNC_EVERY steps the losses are checked (NanWatch) and,
    with several ranks, a stop signal on any of them stops all. One process reads its flag."""
    stopped = run.rt.world == 1 and stop.requested  # a host flag: no device sync needed
    if step % SYNC_EVERY == 0:
        run.nan_watch.check()
        if run.rt.world > 1:
            requested = torch.tensor([float(stop.requested)], device=run.rt.device)
            stopped = run.rt.accelerator.reduce(requested, reduction="sum").item() > 0
    return stopped


def _after_step(run: Run, progress: Progress, before: int, stopped: bool, done: bool) -> None:
    """What comes due after a step: the status record (every log.every_steps steps, and at the
    end), a sample grid, FID and a checkpoint, each when images_seen crossed its interval since
    before; a stop writes a checkpoint too."""
    cfg, nets, now = run.cfg, run.nets, progress.images_seen
    if progress.step % cfg.log.every_steps == 0 or stopped or done:
        run.status.emit(progress.step, now, nets.opt_G, nets.opt_D, run.loader.counts)
    if crossed(cfg.train.sample_every_kimg, before, now):
        run.samples.write(progress)
    if run.evaluator and crossed(cfg.eval.every_kimg, before, now):
        average_buffers(run.rt.accelerator, (nets.G_raw, nets.D_raw, nets.G_ema))
        run.evaluator(nets.G_ema, progress.step, now, lambda: run.checkpointer.write(progress.step, now),
                      run.metrics)
    if crossed(cfg.train.checkpoint_every_kimg, before, now) or stopped:
        run.checkpointer.write(progress.step, now)


def _finish(run: Run, progress: Progress, stopped: bool, on_finish) -> TrainResult:
    cfg, rt, nets = run.cfg, run.rt, run.nets
    newest = run.checkpointer.newest(progress.step, progress.images_seen)
    grid = run.samples.write(progress)  # however the run ends: the grid a user opens shows this moment
    if rt.is_main:
        if on_finish is not None:
            on_finish(cfg.run.dir)
        how = "stopped" if stopped else "done"
        log.info(f"{how} at step {progress.step} ({progress.images_seen / 1000:.1f} kimg). "
                 f"Newest sample grid: {grid} (this step's)")
        log.info(f"newest checkpoint: {newest}")
        last = run.status.last
        if last and last["data_bad"]:
            log.info(f"bad data skipped: {last['data_bad']} of {last['data_read']} "
                     f"samples read (data_bad in metrics.jsonl)")
    rt.accelerator.end_training()
    return TrainResult(newest, progress.step, progress.images_seen, stopped, nets.G_raw, nets.G_ema, nets.D_raw,
                       nets.ada)
