"""Where a training runs: device, precision, processes, threads, stop signals, the run lock.

Accelerate owns devices and ranks; this module picks what to ask it for and says what it got.
"""

import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs, broadcast_object_list

from ..errors import UserError
from ..io import DirLock
from .tracking import tracker_setup
from .distributed import init_process_group_for_restarts, shared_store_note


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
    return f"device {name} ({mode}), precision {prec}"


def cpu_threads_note(world: int):
    """A hint when a CPU run uses fewer threads than its share of the cores: `accelerate launch`
    sets OMP_NUM_THREADS=1 unless told otherwise, which halves a 2-core machine's speed."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    used = torch.get_num_threads()
    if used >= share:
        return None
    return (f"note: {used} CPU thread(s) per process of {cores} cores (OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); `accelerate launch --num_cpu_threads_per_process "
            f"{share}` uses them all")


@dataclass
class Runtime:
    accelerator: Accelerator
    kind: str  # cuda | mps | cpu
    precision: str  # no | bf16 | fp16
    memory_format: torch.memory_format
    batch: int  # per rank
    notes: list  # what to tell the user about it (printed once the run directory is taken)
    description: str = ""  # e.g. "NVIDIA H100 (8 processes, DDP over nccl), precision bf16 autocast"

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process


def setup_runtime(cfg) -> Runtime:
    """Start Accelerate for this config; its notes say what it got. UserError for a batch that
    does not divide over the processes or a precision the device lacks."""
    kind = pick_device()
    precision = resolve_precision(cfg.train.mixed_precision, kind)
    timeout = datetime.timedelta(seconds=cfg.dist.timeout_s)
    init_process_group_for_restarts(timeout)  # before Accelerate starts its own
    accelerator = Accelerator(
        cpu=kind == "cpu", mixed_precision=precision, **tracker_setup(cfg),
        # D sees real and fake as separate batches: DDP's in-place buffer broadcast between the
        # two forwards would break autograd, and BatchNorm statistics stay per rank as in DCGAN.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False),
                         # a rank that stops making progress ends the job instead of hanging it
                         InitProcessGroupKwargs(timeout=timeout)])
    notes = [describe(accelerator, kind, precision)]
    notes += [n for n in (cpu_threads_note(accelerator.num_processes) if kind == "cpu" else None,
                          shared_store_note()) if n]
    if cfg.train.batch_size % accelerator.num_processes:
        raise UserError(f"train.batch_size: {cfg.train.batch_size} does not divide evenly over "
                        f"{accelerator.num_processes} processes")
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls/convs on tensor cores
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    fmt = torch.channels_last if use_channels_last(cfg.train.channels_last, kind) else torch.contiguous_format
    return Runtime(accelerator, kind, precision, fmt, cfg.train.batch_size // accelerator.num_processes, notes,
                   notes[0].removeprefix("device "))


def lock_run_dir(rt: Runtime, run_dir: str):
    """The main process locks the run directory for its life (one training per run directory);
    every rank learns the outcome, so a refused run stops on all of them at once. Returns the
    lock (None on other ranks)."""
    lock, refusal = None, None
    if rt.is_main:
        try:
            lock = DirLock(run_dir, "run directory").acquire()
        except UserError as err:
            refusal = str(err)
    refusal = broadcast_object_list([refusal])[0]  # rank 0's outcome, on every rank
    if refusal:
        if not rt.is_main:
            sys.exit(2)  # rank 0 says it, once
        raise UserError(refusal)
    return lock
