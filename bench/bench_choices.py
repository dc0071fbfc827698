"""Each speed choice measured against the default in the same process: the training step's own
bound (one batch on the device) with one option changed at a time.

Options: channels_last, Adam implementation (for-loop / foreach / fused), bf16 autocast,
torch.compile (with a recompile count: D's requires_grad toggles every step).
"""

import argparse
import time

import torch
from common import report

from facegan.config import ModelConfig
from facegan.models import build_models
from facegan.train.ema import EmaSchedule, make_ema
from facegan.train.step import GANStep


def run(device, model_cfg, batch, steps, warmup, channels_last=False, adam="default", precision="no",
        compile_=False):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # each variant gets its own precision setting
    acc = Accelerator(cpu=device.type == "cpu", mixed_precision=precision)
    G, D = build_models(model_cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(acc.device, memory_format=fmt), D.to(acc.device, memory_format=fmt)
    kw = {"default": {}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}[adam]
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), **kw)
    if compile_:
        torch._dynamo.reset()
        G, D = torch.compile(G), torch.compile(D)
    G, D, oG, oD = acc.prepare(G, D, oG, oD)
    step = GANStep(acc, G, D, oG, oD, make_ema(acc.unwrap_model(G)), EmaSchedule(0.999, batch), model_cfg.nz)
    r = model_cfg.resolution
    real = (torch.rand(batch, 3, r, r, device=acc.device) * 2 - 1).contiguous(memory_format=fmt)
    for _ in range(warmup):
        step(real)
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"] if compile_ else 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step(real)
    sync()
    rate = steps * batch / (time.perf_counter() - t)
    recompiles = (torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames_before) if compile_ else 0
    return rate, recompiles


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--ngf", type=int, default=0, help="default: 64 on GPU, 32 on CPU")
    ap.add_argument("--batch", type=int, default=0, help="default: 128 on GPU, 64 on CPU")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="include torch.compile (minutes of compiling on CPU)")
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    ngf, batch = args.ngf or (64 if gpu else 32), args.batch or (128 if gpu else 64)
    steps, warmup = args.steps or (100 if gpu else 10), 20 if gpu else 3
    cfg = ModelConfig(resolution=args.resolution, ngf=ngf, ndf=ngf)
    variants = [("default (fp32, contiguous, default Adam)", {}),
                ("channels_last", {"channels_last": True}),
                ("Adam foreach", {"adam": "foreach"}),
                ("Adam for-loop", {"adam": "for-loop"}),
                ("bf16 autocast", {"precision": "bf16"})]
    if gpu:
        variants += [("Adam fused", {"adam": "fused"}), ("fp16 autocast", {"precision": "fp16"}),
                     ("bf16 + channels_last + fused", {"precision": "bf16", "channels_last": True, "adam": "fused"})]
    if args.compile or gpu:
        variants.append(("torch.compile", {"compile_": True}))
    base, _ = run(device, cfg, batch, steps, warmup)
    figures = {"resolution": args.resolution, "ngf": ngf, "batch": batch, "baseline_images_per_s": round(base, 1)}
    best = 1.0
    for name, kw in variants[1:]:
        try:
            rate, recompiles = run(device, cfg, batch, steps, warmup, **kw)
        except Exception as err:  # an option this device lacks: say so, keep going
            figures[name] = f"unavailable ({type(err).__name__})"
            continue
        figures[name] = f"{rate:.1f} img/s ({rate / base:.2f}x)" + (f", {recompiles} recompiles" if kw.get("compile_") else "")
        best = max(best, rate / base)
    report("choices", figures, "speedup_best_option", best)


if __name__ == "__main__":
    main()
