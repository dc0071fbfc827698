"""CUDA-only checks (skipped elsewhere), through the real trainer on the celeba64 model: bf16 and
fp16 with loss scaling, resume on CUDA, torch.compile without recompiles, NCCL between two
processes. bench/gpu_session.py runs them first; the fast ones come first in this file."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ROOT, run_cli
from procs import free_port

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CELEBA64 = os.path.join(ROOT, "configs", "celeba64.yaml")
BATCH = 64


@pytest.fixture(scope="module")
def shards64(tmp_path_factory):
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    out = str(tmp_path_factory.mktemp("cartoon64"))
    pack(open_source("synthetic:cartoon", limit=1200), out, PackOptions(size=64, shard_size=100, overwrite=True))
    return out


def train(shards, run_dir, steps, *extra, env=None):
    """The celeba64 recipe through launch/train.py for `steps` steps of BATCH images."""
    return run_cli(os.path.join(ROOT, "launch", "train.py"), "--config", CELEBA64, f"data.shards={shards}",
                   f"run.dir={run_dir}", f"train.batch_size={BATCH}", f"train.total_kimg={steps * BATCH / 1000}",
                   "log.every_steps=5", "train.sample_every_kimg=1000", "train.checkpoint_every_kimg=1000",
                   *extra, env=env, timeout=300)


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def newest_checkpoint(run_dir):
    from facegan.train import checkpoint as ckpt

    return ckpt.list_checkpoints(os.path.join(run_dir, "checkpoints"))[0]


def weights(run_dir):
    from safetensors.torch import load_file

    path = newest_checkpoint(run_dir)
    return {net: load_file(os.path.join(path, f"{net}.safetensors")) for net in ("G", "G_ema", "D")}


def max_difference(a, b):
    return max((a[net][k].float() - b[net][k].float()).abs().max().item() for net in a for k in a[net])


def test_fp16_trains_with_loss_scaling(shards64, tmp_path):
    r = train(shards64, tmp_path, 20, "train.mixed_precision=fp16")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "precision fp16 autocast + loss scaling" in r.stdout.splitlines()[0]
    rows = metrics(tmp_path)
    assert rows and all(torch.isfinite(torch.tensor([row["loss_D"], row["loss_G"]])).all() for row in rows)
    with open(os.path.join(newest_checkpoint(tmp_path), "state.json")) as f:
        scaler = json.load(f)["scaler"]
    assert scaler and scaler["scale"] > 0  # the loss scaler's state travels with the checkpoint


def test_bf16_resume_on_cuda_matches_an_uninterrupted_run(shards64, tmp_path):
    """10 + 10 steps resumed vs 20 straight, in bf16 (auto on CUDA). cuDNN autotuning picks
    kernels per process, so two straight runs may differ in the last bits: the resumed run must
    match as closely as a second straight run does (bit for bit when the straight runs agree)."""
    runs = {name: tmp_path / name for name in ("straight", "again", "split")}
    for name in ("straight", "again"):
        r = train(shards64, runs[name], 20)
        assert r.returncode == 0, r.stderr[-3000:]
    assert "precision bf16 autocast" in r.stdout.splitlines()[0]
    rows = metrics(runs["straight"])
    assert rows and all(torch.isfinite(torch.tensor([row["loss_D"], row["loss_G"]])).all() for row in rows)
    assert train(shards64, runs["split"], 10).returncode == 0
    r = train(shards64, runs["split"], 20)
    assert r.returncode == 0 and "resumed from" in r.stdout, r.stderr[-3000:]
    straight, again, split = (weights(runs[n]) for n in ("straight", "again", "split"))
    floor = max_difference(straight, again)
    assert max_difference(straight, split) <= 10 * floor, (max_difference(straight, split), floor)


NCCL_RANK = textwrap.dedent("""
    import os, torch, torch.distributed as dist
    rank = int(os.environ["RANK"])
    torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group("nccl")
    x = torch.full((1024,), float(rank + 1), device="cuda")
    dist.all_reduce(x)
    torch.cuda.synchronize()
    print("sum", x[0].item(), flush=True)
    dist.destroy_process_group()
""")


def test_two_processes_all_reduce_over_nccl(tmp_path):
    """Two ranks, on two GPUs or sharing one (NCCL may refuse that: then the test says so)."""
    script = tmp_path / "rank.py"
    script.write_text(NCCL_RANK)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    procs = [subprocess.Popen([sys.executable, str(script)], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
             for r in range(2)]
    try:
        outs = [p.communicate(timeout=60)[0] for p in procs]
    except subprocess.TimeoutExpired:
        pytest.fail("two NCCL ranks did not finish an all-reduce in 60 s")
    finally:
        for p in procs:
            p.kill()
    if any("Duplicate GPU" in o for o in outs) and torch.cuda.device_count() < 2:
        pytest.skip("NCCL refuses two ranks on one GPU (Duplicate GPU detected)")
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outs)
    assert all("sum 3.0" in o for o in outs)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_ddp_over_nccl(shards64, tmp_path):
    r = run_cli("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--dynamo_backend", "no", os.path.join(ROOT, "launch", "train.py"), "--config", CELEBA64,
                f"data.shards={shards64}", f"run.dir={tmp_path}", f"train.total_kimg={20 * BATCH / 1000}",
                f"train.batch_size={BATCH}", "log.every_steps=5", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes, DDP over nccl" in r.stdout


def test_compile_on_cuda_trains_without_recompiles(shards64, tmp_path):
    r = train(shards64, tmp_path, 20, "train.compile=true", env={"TORCH_LOGS": "recompiles"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Recompiling" not in r.stderr  # D's requires_grad toggles every step
    assert all(torch.isfinite(torch.tensor([row["loss_D"], row["loss_G"]])).all() for row in metrics(tmp_path))
