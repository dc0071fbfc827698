"""The training loop, readable top to bottom: setup, resume, steps, status, samples, checkpoints."""

import datetime
import math
import os
import signal
import time
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs, set_seed

from ..config import Config, dump_config, ema_beta, to_dict
from ..data.cache import DeviceCache
from ..data.loader import resolve_shards, train_loader
from ..errors import UserError
from ..models import architecture, build_models
from . import checkpoint as ckpt
from .augment import parse_policy
from .distributed import agree_on_path, init_process_group_for_restarts, shared_store_note
from .ema import make_ema
from .samples import fixed_noise, generate, save_grid
from .step import GANStep, to_unit_range
from .tracking import MetricsLog, log_grid, peak_memory_mb, wandb_init_kwargs

GRID = 64  # images in each fixed-noise grid
SYNC_EVERY = 10  # steps between the (cheap) cross-rank checks for a stop signal or a bad loss


class NonFiniteLoss(RuntimeError):
    pass


# ---------------------------------------------------------------- setup helpers

def pick_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def use_channels_last(setting, device: str) -> bool:
    """auto: on everywhere but MPS (measured 1.15-1.32x on the CPU step bound; slower on MPS)."""
    return device != "mps" if setting == "auto" else bool(setting)


def resolve_precision(requested: str, device: str) -> str:
    """auto: bf16 where CUDA supports it, fp16 (loss scaling) on older CUDA, fp32 elsewhere."""
    if requested != "auto":
        if requested == "fp16" and device != "cuda":
            raise UserError(f"train.mixed_precision: fp16 needs a CUDA device (this run is on {device})")
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


class StopSignal:
    """SIGTERM/SIGINT set a flag; every rank finishes its step, then all checkpoint and exit 0."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def describe(accelerator: Accelerator, device: str, precision: str) -> str:
    n = accelerator.num_processes
    if n > 1:
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "?"
        mode = f"{n} processes, DDP over {backend}"
    else:
        mode = "1 process"
    name = torch.cuda.get_device_name(accelerator.device) if device == "cuda" else device
    prec = {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + loss scaling"}[precision]
    return f"facegan: device {name} ({mode}), precision {prec}"


def cpu_threads_note(world: int):
    """A hint when a CPU run uses fewer threads than its share of the cores: `accelerate launch`
    sets OMP_NUM_THREADS=1 unless told otherwise, which halves a 2-core machine's speed."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    used = torch.get_num_threads()
    if used >= share:
        return None
    return (f"facegan: note: {used} CPU thread(s) per process of {cores} cores (OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); `accelerate launch --num_cpu_threads_per_process "
            f"{share}` uses them all")


# ---------------------------------------------------------------- the run

@dataclass
class TrainResult:
    checkpoint: str  # newest checkpoint (on the main process; None elsewhere)
    step: int
    images_seen: int
    stopped: bool  # by SIGTERM/SIGINT
    G: torch.nn.Module
    G_ema: torch.nn.Module
    D: torch.nn.Module


def train(cfg: Config, make_evaluator=None, on_finish=None) -> TrainResult:
    """Train until total_kimg (or a stop signal).

    make_evaluator(cfg, accelerator) -> evaluator or None: FID during training, supplied by the
    caller (the CLI hands in facegan.eval's) so this package does not depend on the eval package.
    An evaluator is called as evaluator(G_ema, step, images_seen, write_checkpoint, metrics).
    on_finish(run_dir): called on the main process when the run ends (the CLI writes the report).
    """
    device_kind = pick_device()
    precision = resolve_precision(cfg.train.mixed_precision, device_kind)
    wandb_on = cfg.log.wandb != "off"
    collective_timeout = datetime.timedelta(seconds=cfg.dist.timeout_s)
    init_process_group_for_restarts(collective_timeout)  # before Accelerate starts its own
    accelerator = Accelerator(
        cpu=device_kind == "cpu", mixed_precision=precision, log_with="wandb" if wandb_on else None,
        # D sees real and fake as separate batches: DDP's in-place buffer broadcast between the
        # two forwards would break autograd, and BatchNorm statistics stay per rank as in DCGAN.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False),
                         # a rank that stops making progress ends the job instead of hanging it
                         InitProcessGroupKwargs(timeout=collective_timeout)])
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    run_device = describe(accelerator, device_kind, precision)
    accelerator.print(run_device)
    if device_kind == "cpu" and (note := cpu_threads_note(accelerator.num_processes)):
        accelerator.print(note)
    if note := shared_store_note():
        accelerator.print(note)
    if cfg.train.batch_size % world:
        raise UserError(f"train.batch_size: {cfg.train.batch_size} does not divide evenly over {world} processes")
    batch = cfg.train.batch_size // world

    run_dir = cfg.run.dir
    ckpt_root = os.path.join(run_dir, "checkpoints")
    if accelerator.is_main_process:
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        dump_config(cfg, os.path.join(run_dir, "config.yaml"))
    shards = resolve_shards(cfg.data.shards, "train", cfg.model.resolution)
    if shards.total is not None and shards.total < cfg.train.batch_size:
        raise UserError(f"data.shards: {cfg.data.shards} holds {shards.total} training images, fewer than "
                        f"one batch (train.batch_size={cfg.train.batch_size})")

    # Models: identical initial weights on every rank; DDP also broadcasts rank 0's on wrap.
    arch = architecture(cfg.model)
    G, D = build_models(cfg.model, cfg.train.seed)
    if cfg.train.sync_batchnorm and world > 1 and device_kind == "cuda":
        G, D = (torch.nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
    if device_kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls/convs on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    memory_format = torch.channels_last if use_channels_last(cfg.train.channels_last, device_kind) \
        else torch.contiguous_format
    G, D = G.to(memory_format=memory_format), D.to(memory_format=memory_format)
    G_ema = make_ema(G).to(device)
    betas = tuple(cfg.train.betas)
    fused = {"fused": True} if device_kind == "cuda" else {}
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.train.lr_g, betas=betas, **fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d, betas=betas, **fused)

    # Resume before prepare(): weights and optimizer state load into the plain modules.
    step, images_seen, wandb_id = 0, 0, None
    resume_path, state = _resume_target(cfg, ckpt_root, accelerator)
    if resume_path:
        ckpt.load_checkpoint(resume_path, state, {"G": G, "G_ema": G_ema, "D": D},
                             {"opt_G": opt_G, "opt_D": opt_D}, arch)
        step, images_seen, wandb_id = state["step"], state["images_seen"], state.get("wandb_id")
        for opt, lr in ((opt_G, cfg.train.lr_g), (opt_D, cfg.train.lr_d)):  # the config's lr wins
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, betas
        accelerator.print(f"facegan: resumed from {resume_path} (step {step}, {images_seen / 1000:.1f} kimg)")
    if cfg.train.compile:
        # D's requires_grad toggles between steps; the G step calls the uncompiled D (below),
        # so the compiled graphs never see the toggle and do not recompile (bench checks).
        G, D = torch.compile(G), torch.compile(D)
    G, D, opt_G, opt_D = accelerator.prepare(G, D, opt_G, opt_D)
    # The plain modules (no DDP, no torch.compile wrapper): for checkpoints, EMA and the G step.
    G_raw = accelerator.unwrap_model(G, keep_torch_compile=False)
    D_raw = accelerator.unwrap_model(D, keep_torch_compile=False)

    # The loader is ours, not prepare()'d: each rank reads its own shards, from where it stopped.
    if cfg.data.device_cache:
        loader = DeviceCache(shards, batch, rank, world, cfg.train.seed, step, device, cfg.data.max_bad_fraction,
                             cfg.data.stall_s)
        accelerator.print(f"facegan: {len(loader)} training images cached on {device} "
                          f"({loader.nbytes / 2**20:.0f} MiB on this rank)")
    else:
        loader = train_loader(shards, batch, rank, world, seed=cfg.train.seed, start_batch=step,
                              workers=cfg.data.workers, pin_memory=device_kind == "cuda",
                              max_bad_fraction=cfg.data.max_bad_fraction, stall_s=cfg.data.stall_s)
    # Creating the iterator draws a seed from the global RNG: do it before seeding or restoring
    # the RNG, so a resumed run's random stream matches an uninterrupted one exactly.
    batches = iter(loader)

    if resume_path:
        if state.get("scaler") and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(state["scaler"])
        if state.get("world_size") == world:
            ckpt.restore_rng(ckpt.load_rng(resume_path, rank), device)
        else:
            accelerator.print(f"facegan: warning: checkpoint was written by {state.get('world_size')} "
                              f"processes, this run has {world}; RNG streams start fresh")
            set_seed(cfg.train.seed + step, device_specific=True)
    else:
        set_seed(cfg.train.seed, device_specific=True)  # distinct noise and flips per rank

    if wandb_on:
        accelerator.init_trackers(cfg.log.project, config=to_dict(cfg),
                                  init_kwargs=wandb_init_kwargs(cfg, wandb_id))
        if accelerator.is_main_process:
            wandb_id = accelerator.get_tracker("wandb", unwrap=True).id

    beta = ema_beta(cfg.train.ema, cfg.train.batch_size)
    total_images = int(cfg.train.total_kimg * 1000)
    per_step = cfg.train.batch_size
    metrics = MetricsLog(os.path.join(run_dir, "metrics.jsonl"), accelerator.is_main_process)
    z_fixed = fixed_noise(GRID, cfg.model.nz, cfg.train.seed)
    evaluator = make_evaluator(cfg, accelerator) if make_evaluator and cfg.eval.every_kimg > 0 else None

    def every(kimg_interval, before, after):
        if kimg_interval <= 0:
            return False
        n = kimg_interval * 1000
        return math.floor(after / n) > math.floor(before / n)

    def write_samples():
        if accelerator.is_main_process:
            G_ema.eval()
            grid = save_grid(generate(G_ema, z_fixed), os.path.join(
                run_dir, "samples", f"fakes-kimg{images_seen / 1000:010.3f}.png"))
            log_grid(accelerator, grid, step)
            return grid

    last_ckpt_step = step if resume_path else -1
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a non-finite loss

    def check_finite():
        """Stop, naming the first bad step, if any rank saw a non-finite loss (collective)."""
        bad = (first_bad >= 0).float().view(1)
        if world > 1:
            bad = accelerator.reduce(bad, reduction="sum")
        if bad.item() > 0:  # note: a host sync; called every SYNC_EVERY steps and before saving
            firsts = accelerator.gather(first_bad.view(1)).tolist() if world > 1 else [first_bad.item()]
            last = ckpt.list_checkpoints(ckpt_root)
            raise NonFiniteLoss(f"non-finite loss at step {min(s for s in firsts if s >= 0)}; stopping. "
                                f"Last good checkpoint: {last[0] if last else 'none'}")

    def write_checkpoint():
        nonlocal last_ckpt_step
        check_finite()  # never save weights that have gone non-finite
        _average_buffers(accelerator, (G_raw, D_raw, G_ema))
        rng = {r: {k: v for k, v in zip(names, tensors)} for r, (names, tensors) in
               enumerate(_gather_rng(accelerator, device))}
        path = None
        if accelerator.is_main_process:
            scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
            path = ckpt.save_checkpoint(
                ckpt_root, step, {"G": G_raw, "G_ema": G_ema, "D": D_raw}, {"opt_G": opt_G, "opt_D": opt_D},
                arch, {"images_seen": images_seen, "scaler": scaler, "wandb_id": wandb_id,
                       "dataset": cfg.data.shards, "kimg": images_seen / 1000,
                       "device": run_device.removeprefix("facegan: device ")},
                rng, cfg.train.keep_checkpoints)
        accelerator.wait_for_everyone()
        last_ckpt_step = step  # the same on every rank, so every rank takes the same branches
        return path

    if accelerator.is_main_process and not resume_path:
        with torch.random.fork_rng(devices=[]):  # must not shift the training RNG stream
            reals = next(iter(train_loader(shards, GRID, seed=cfg.train.seed + 1)))
        save_grid(reals[:GRID], os.path.join(run_dir, "samples", "reals.png"))
        write_samples()

    # ---------------------------------------------------------------- steps
    gan_step = GANStep(accelerator, G, D, opt_G, opt_D, G_ema, beta, cfg.model.nz, loss=cfg.train.loss,
                       augment=parse_policy(cfg.train.augment), r1_gamma=cfg.train.r1_gamma,
                       r1_every=cfg.train.r1_every)
    gan_step.steps = step  # the lazy-R1 cadence continues across a resume
    stats = torch.zeros(4, device=device)  # sums of loss_D, loss_G, D(x), D(G(z)) since the last log
    stats_steps, t_log, img_log = 0, time.time(), images_seen
    newest, last_status = None, None
    stopped_by_signal = False
    with StopSignal() as stop:
        while images_seen < total_images:
            real = to_unit_range(next(batches), device, cfg.data.flip, memory_format)
            loss_D, loss_G, logits_real, logits_fake = gan_step(real)

            before = images_seen
            step += 1
            images_seen += per_step
            with torch.no_grad():
                stats += torch.stack([loss_D, loss_G, torch.sigmoid(logits_real.float()).mean(),
                                      torch.sigmoid(logits_fake.float()).mean()])
                bad_now = ~torch.isfinite(loss_D + loss_G)
                first_bad.copy_(torch.where(bad_now & (first_bad < 0), torch.full_like(first_bad, step), first_bad))
            stats_steps += 1

            # Cross-rank decisions at a fixed cadence (a host sync), never every step.
            if world == 1:
                stopped_by_signal = stop.requested  # a host flag: no device sync needed
            if step % SYNC_EVERY == 0:
                check_finite()
                if world > 1:
                    requested = torch.tensor([float(stop.requested)], device=device)
                    stopped_by_signal = accelerator.reduce(requested, reduction="sum").item() > 0
            if step % cfg.log.every_steps == 0 or stopped_by_signal or images_seen >= total_images:
                last_status = _status(accelerator, cfg, metrics, stats, stats_steps, step, images_seen, t_log,
                                      img_log, opt_G, opt_D, device, loader.counts)
                stats.zero_()
                stats_steps, t_log, img_log = 0, time.time(), images_seen
            if every(cfg.train.sample_every_kimg, before, images_seen):
                write_samples()
            if evaluator and every(cfg.eval.every_kimg, before, images_seen):
                _average_buffers(accelerator, (G_raw, D_raw, G_ema))
                evaluator(G_ema, step, images_seen, write_checkpoint, metrics)
            if every(cfg.train.checkpoint_every_kimg, before, images_seen) or stopped_by_signal:
                newest = write_checkpoint()
            if stopped_by_signal:
                accelerator.print(f"facegan: stop requested; checkpoint written at step {step}, exiting")
                break
            if cfg.train.max_steps and step >= cfg.train.max_steps:
                break

    if not stopped_by_signal:
        if last_ckpt_step != step:
            newest = write_checkpoint()
        elif accelerator.is_main_process:
            newest = os.path.join(ckpt_root, ckpt.step_dir_name(step))
        write_samples()
    if accelerator.is_main_process:
        if on_finish is not None:
            on_finish(run_dir)
        grids = sorted(f for f in os.listdir(os.path.join(run_dir, "samples")) if f.startswith("fakes-"))
        accelerator.print(f"facegan: done at step {step} ({images_seen / 1000:.1f} kimg). "
                          f"Newest sample grid: {os.path.join(run_dir, 'samples', grids[-1])}")
        accelerator.print(f"facegan: newest checkpoint: {newest}")
        if last_status and last_status["data_bad"]:
            accelerator.print(f"facegan: bad data skipped: {last_status['data_bad']} of "
                              f"{last_status['data_read']} samples read (data_bad in metrics.jsonl)")
    accelerator.end_training()
    return TrainResult(newest, step, images_seen, stopped_by_signal, G_raw, G_ema, D_raw)


def _resume_target(cfg: Config, ckpt_root: str, accelerator: Accelerator):
    mode = cfg.run.resume
    if mode == "none":
        return None, None
    if mode == "auto":
        # rank 0 picks; the others load the same one (see agree_on_path)
        path = ckpt.find_resumable(ckpt_root, log=accelerator.print)[0] if accelerator.is_main_process else None
        path = agree_on_path(accelerator, path)
        return (path, ckpt.verify(path)) if path else (None, None)
    return mode, ckpt.verify(mode)


@torch.no_grad()
def _average_buffers(accelerator: Accelerator, modules) -> None:
    """BatchNorm running statistics drift apart per rank (buffers are not broadcast, see above);
    average them at checkpoint time so every rank, and the checkpoint, hold the same state."""
    if accelerator.num_processes == 1:
        return
    for module in modules:
        for buf in module.buffers():
            if buf.is_floating_point():
                buf.copy_(accelerator.reduce(buf.clone(), reduction="mean"))


def _gather_rng(accelerator: Accelerator, device: torch.device):
    """Every rank's RNG state, gathered to all (fixed-shape tensors, so a plain all-gather)."""
    mine = ckpt.rng_tensors(device)
    names = sorted(mine)
    if accelerator.num_processes == 1:
        return [(names, [mine[n] for n in names])]
    out = [(names, []) for _ in range(accelerator.num_processes)]
    for n in names:
        t = mine[n]
        raw = t.view(torch.uint8) if t.dtype != torch.uint8 else t
        gathered = accelerator.gather(raw.to(device).unsqueeze(0)).cpu()
        for r in range(accelerator.num_processes):
            out[r][1].append(gathered[r].view(t.dtype).clone())
    return out


def _status(accelerator, cfg, metrics, stats, n, step, images_seen, t_log, img_log, opt_G, opt_D, device,
            data_counts):
    """One status line, one metrics.jsonl record, one tracker log: the only routine host sync."""
    world = accelerator.num_processes
    seen, bad = data_counts.totals()  # this rank's loader, all its workers, since the run started
    # One reduction for both: the loss means, and (times world, then averaged) the sample counts.
    local = torch.cat([stats / max(n, 1), torch.tensor([seen * world, bad * world], device=device,
                                                       dtype=stats.dtype)])
    mean = accelerator.reduce(local, reduction="mean").tolist()  # note: a sync point
    seen, bad = int(round(mean[4])), int(round(mean[5]))
    dt = max(time.time() - t_log, 1e-9)
    imgs = images_seen - img_log
    rec = {"step": step, "kimg": round(images_seen / 1000, 3), "loss_D": mean[0], "loss_G": mean[1],
           "D_real": mean[2], "D_fake": mean[3], "img_per_s": imgs / dt,
           "sec_per_kimg": dt / max(imgs / 1000, 1e-9), "peak_mem_mb": peak_memory_mb(device),
           "lr_G": opt_G.param_groups[0]["lr"], "lr_D": opt_D.param_groups[0]["lr"],
           "data_read": seen, "data_bad": bad}
    accelerator.print(f"kimg {rec['kimg']:9.3f}  step {step:7d}  loss_D {mean[0]:.3f}  loss_G {mean[1]:.3f}  "
                      f"D(x) {mean[2]:.3f}  D(G(z)) {mean[3]:.3f}  {rec['img_per_s']:8.1f} img/s  "
                      f"{rec['sec_per_kimg']:7.2f} s/kimg  mem {rec['peak_mem_mb']:.0f} MB"
                      + (f"  bad data {bad}/{seen}" if bad else ""))
    metrics.write(rec)
    accelerator.log({k: v for k, v in rec.items() if k != "step"}, step=step)
    return rec
