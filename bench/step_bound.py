"""The training step's own bound: GANStep (facegan/train/step.py) on one batch already on the
device, with no loader and no logging, under one set of options at a time (precision, memory
format, Adam implementation, torch.compile, batch); and the largest batch that fits in memory.
Used by bench/gpu_parts.py; the trainer's own choices are the defaults here."""

import gc
import time

import torch

import common  # noqa: F401  (puts the repository root on sys.path)
import flops

from facegan.config import ModelConfig


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err)


def bound_rate(model_cfg: ModelConfig, batch: int, steps: int, warmup: int, precision: str = "no",
               channels_last: bool = True, adam: str = "fused", compile_mode: str = None,
               compile_backend: str = "inductor", tf32: bool = True, autotune: bool = True) -> dict:
    """Images/s of GANStep on one batch resident on the device (no loader, no logging), with one
    set of options; also the recompiles after warm-up and the peak memory (MiB, CUDA only).
    autotune: cuDNN benchmark mode, as the trainer (off for the memory probes: it times every
    algorithm at every new shape)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from facegan.models import build_models
    from facegan.train.ema import EmaSchedule, make_ema
    from facegan.train.step import GANStep

    dev = device()
    AcceleratorState._reset_state(True)  # each variant gets its own precision setting
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = autotune
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    acc = Accelerator(cpu=dev.type == "cpu", mixed_precision=precision)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = (m.to(acc.device, memory_format=fmt) for m in build_models(model_cfg))
    kw = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[adam]
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    if compile_mode:
        torch._dynamo.reset()
        G = torch.compile(G, mode=compile_mode if compile_backend == "inductor" else None, backend=compile_backend)
        D = torch.compile(D, mode=compile_mode if compile_backend == "inductor" else None, backend=compile_backend)
    G, D, oG, oD = acc.prepare(G, D, oG, oD)
    step = GANStep(acc, G, D, oG, oD, make_ema(acc.unwrap_model(G, keep_torch_compile=False)),
                   EmaSchedule(0.999, batch), model_cfg.nz)
    r = model_cfg.resolution
    real = (torch.rand(batch, 3, r, r, device=acc.device) * 2 - 1).contiguous(memory_format=fmt)
    for _ in range(warmup):
        step(real)
    # graphs compiled so far (torch._dynamo is imported only when compiling: it takes seconds)
    graphs = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"] if compile_mode else 0  # noqa: E731
    before = graphs()
    sync(acc.device)
    t = time.perf_counter()
    for _ in range(steps):
        step(real)
    sync(acc.device)
    rate = steps * batch / (time.perf_counter() - t)
    out = {"images_per_s": round(rate, 1), "step_ms": round(1000 * batch / rate, 3)}
    if compile_mode:
        out["recompiles"] = graphs() - before
    if dev.type == "cuda":
        out["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def default_precision(dev: torch.device) -> str:
    """What the trainer's mixed_precision=auto picks on this device."""
    if dev.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def with_mfu(result: dict, flops_per_image: int, peak) -> dict:
    m = flops.mfu(result["images_per_s"], flops_per_image, peak)
    return dict(result, mfu=round(m, 4) if m is not None else "skipped: no peak rate for this device")


def largest_batch(model_cfg: ModelConfig, start: int, cap: int, precision: str, deadline: float, report) -> None:
    """Largest power-of-two batch (start..cap) for which two steps run without running out of
    memory; report(dict) after every probe, so a search stopped by the part's limit still says
    how far it got (and one stopped at the deadline says the answer is a lower bound)."""
    best, b = {"batch": "none fits"}, start
    while b <= cap:
        if time.time() > deadline:
            report(dict(best, search="stopped at its time share (a lower bound)", cap=cap))
            return
        error = None
        try:
            res = bound_rate(model_cfg, b, 1, 1, precision, autotune=False)
        except Exception as err:  # out of memory, or cuDNN failing to allocate its workspace
            error = "ran out of memory" if is_oom(err) else f"failed: {type(err).__name__}: {str(err)[:160]}"
        if error:  # the error's frames (and the tensors they hold) are freed by now
            gc.collect()
            torch.cuda.empty_cache()
            report(dict(best, search=f"complete (batch {b} {error})", cap=cap))
            return
        best = {"batch": b, "peak_mem_mb": res.get("peak_mem_mb", "skipped: CUDA only")}
        report(dict(best, search="in progress", cap=cap))
        b *= 2
    report(dict(best, search="complete (reached the cap)", cap=cap))
