"""The trainer through its real entry point: steps, checkpoints, exact resume, signals, DDP."""

import glob
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, run_cli
from facegan.config import ModelConfig, load_config
from facegan.models import build_models
from facegan.train import checkpoint as ckpt

TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
        "data.workers=0", "log.every_steps=2", "train.sample_every_kimg=0.064", "train.ema=0.9"]


def train_cli(shards, run_dir, *extra, **kw):
    return run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={shards}", f"run.dir={run_dir}",
                   *TINY, *extra, **kw)


def kimg(steps, batch=16):
    return f"train.total_kimg={steps * batch / 1000}"


def weights(path):
    return {name: load_file(os.path.join(path, f"{name}.safetensors"))
            for name in ("G", "G_ema", "D", "opt_G", "opt_D")}


def test_one_step_changes_both_networks(cartoon_shards, tmp_path):
    r = train_cli(cartoon_shards, tmp_path, kimg(1))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[0].startswith("facegan: device cpu (1 process), precision fp32")
    g0, d0 = build_models(ModelConfig(resolution=32, nz=16, ngf=8, ndf=8), seed=0)
    w = weights(ckpt.list_checkpoints(str(tmp_path / "checkpoints"))[0])
    for net, init in (("G", g0), ("D", d0)):
        changed = [k for k, v in init.state_dict().items() if not torch.equal(v, w[net][k])]
        assert any("weight" in k for k in changed), net
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "samples" / "reals.png").exists()
    rec = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert {"kimg", "loss_D", "loss_G", "D_real", "D_fake", "img_per_s", "sec_per_kimg", "peak_mem_mb",
            "lr_G"} <= set(rec[-1])


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    cfg = ModelConfig(resolution=32, nz=16, ngf=8, ndf=8)
    g, d = build_models(cfg, seed=1)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.99))
    for _ in range(2):
        opt.zero_grad()
        g(torch.randn(4, 16)).square().mean().backward()
        opt.step()
    rng = {0: ckpt.rng_tensors(torch.device("cpu"))}
    path = ckpt.save_checkpoint(str(tmp_path), 7, {"G": g, "G_ema": g, "D": d}, {"opt_G": opt, "opt_D": opt},
                                {"arch": "dcgan"}, {"images_seen": 112}, rng, keep=3)
    state = ckpt.verify(path)
    g2, d2 = build_models(cfg, seed=2)
    opt2 = torch.optim.Adam(g2.parameters(), lr=0.5)
    ckpt.load_checkpoint(path, state, {"G": g2, "D": d2}, {"opt_G": opt2}, {"arch": "dcgan"})
    for a, b in ((g, g2), (d, d2)):
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for k in s1["state"][i]:
            assert torch.equal(s1["state"][i][k], s2["state"][i][k])
    before = torch.rand(3)
    ckpt.restore_rng(ckpt.load_rng(path, 0), torch.device("cpu"))
    assert torch.equal(torch.rand(3), before)
    assert state["step"] == 7 and not glob.glob(str(tmp_path / ".tmp*"))
    # nothing in a checkpoint is a pickle
    for f in os.listdir(path):
        assert f.endswith((".safetensors", ".json"))


def test_resume_is_exact(cartoon_shards, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_cli(cartoon_shards, straight, kimg(8)).returncode == 0
    assert train_cli(cartoon_shards, split, kimg(4)).returncode == 0
    r = train_cli(cartoon_shards, split, kimg(8))
    assert r.returncode == 0 and "resumed from" in r.stdout
    a = weights(ckpt.list_checkpoints(str(straight / "checkpoints"))[0])
    b = weights(ckpt.list_checkpoints(str(split / "checkpoints"))[0])
    assert a.keys() == b.keys()
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


def test_sigterm_checkpoints_and_resumes(cartoon_shards, tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}",
           f"run.dir={tmp_path}", *TINY, "train.total_kimg=100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    for line in proc.stdout:  # wait until it is really training
        if line.startswith("kimg"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "stop requested" in out
    path, state = ckpt.find_resumable(str(tmp_path / "checkpoints"))
    assert path and state["step"] >= 2
    # The grid a user opens after a stop shows the stop's step, and the run names it.
    grid = os.path.join(tmp_path, "samples", f"fakes-kimg{state['images_seen'] / 1000:010.3f}.png")
    assert f"Newest sample grid: {grid}" in out and os.path.exists(grid)
    r = train_cli(cartoon_shards, tmp_path, kimg(state["step"] + 2))
    assert r.returncode == 0 and f"(step {state['step']}," in r.stdout


def test_damaged_newest_checkpoint_is_passed_over(cartoon_shards, tmp_path):
    r = train_cli(cartoon_shards, tmp_path, kimg(4), "train.checkpoint_every_kimg=0.032")
    assert r.returncode == 0, r.stderr[-2000:]
    newest, older = ckpt.list_checkpoints(str(tmp_path / "checkpoints"))[:2]
    with open(os.path.join(newest, "D.safetensors"), "r+b") as f:
        f.seek(200)
        f.write(b"\x00garbage\x00")
    r = train_cli(cartoon_shards, tmp_path, kimg(5))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "passing over damaged checkpoint" in r.stdout + r.stderr
    assert f"resumed from {older}" in r.stdout


def test_architecture_mismatch_is_refused(cartoon_shards, tmp_path):
    assert train_cli(cartoon_shards, tmp_path, kimg(1)).returncode == 0
    r = train_cli(cartoon_shards, tmp_path, kimg(2), "model.ngf=16")
    assert r.returncode == 2 and "model.ngf" in r.stderr and "Traceback" not in r.stderr


def test_non_finite_loss_stops_naming_the_step(cartoon_shards, tmp_path):
    assert train_cli(cartoon_shards, tmp_path, kimg(2)).returncode == 0
    good = ckpt.list_checkpoints(str(tmp_path / "checkpoints"))
    r = train_cli(cartoon_shards, tmp_path, kimg(40), "train.lr_d=1e30", "train.lr_g=1e30")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "non-finite loss at step" in r.stderr and good[0] in r.stderr
    named = [line.rsplit(": ", 1)[1] for line in r.stdout.splitlines() if "sample grid at the stop" in line]
    assert len(named) == 1 and os.path.exists(named[0])  # the grid of the moment it went wrong
    assert ckpt.list_checkpoints(str(tmp_path / "checkpoints")) == good
    ckpt.verify(good[0])


# Through the real command line; tests/test_config.py checks every key's parsing in-process.
@pytest.mark.parametrize("override,key", [
    ("train.totl_kimg=5", "train.totl_kimg"),
    ("model.resolution=48", "model.resolution"),
])
def test_config_errors_exit_2_naming_the_key(tmp_path, override, key):
    r = run_cli(os.path.join(ROOT, "launch", "train.py"), "--config", os.path.join(ROOT, "configs", "demo.yaml"),
                override)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in r.stderr


def test_every_recipe_loads():
    for path in glob.glob(os.path.join(ROOT, "configs", "*.yaml")):
        cfg = load_config(path)
        assert cfg.model.resolution in (32, 64, 128, 256), path


def test_demo_config_runs_a_few_steps(tmp_path):
    shards = str(tmp_path / "cartoon")
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    size = load_config(os.path.join(ROOT, "configs", "demo.yaml")).model.resolution
    pack(open_source("synthetic:cartoon", limit=160), shards, PackOptions(size=size, workers=1))
    r = run_cli(os.path.join(ROOT, "launch", "train.py"), "--config", os.path.join(ROOT, "configs", "demo.yaml"),
                f"data.shards={shards}", f"run.dir={tmp_path / 'run'}", "train.max_steps=3", "data.workers=0")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Newest sample grid:" in r.stdout
    assert glob.glob(str(tmp_path / "run" / "samples" / "fakes-*.png"))


@pytest.mark.slow
def test_two_process_ddp_on_cpu(cartoon_shards, tmp_path):
    prefix = str(tmp_path / "rank")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "tests", "helpers", "ddp_train.py"), prefix, f"data.shards={cartoon_shards}",
           f"run.dir={run}", *TINY, "train.batch_size=16", "data.workers=1", kimg(6),
           "train.checkpoint_every_kimg=0.032"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes, DDP over gloo" in r.stdout
    ranks = [json.load(open(f"{prefix}{i}.json")) for i in range(2)]
    assert ranks[0]["world"] == 2 and ranks[0]["step"] == ranks[1]["step"] == 6
    for net in ("G", "D", "G_ema"):
        assert ranks[0][net] == ranks[1][net], net  # weights identical on both ranks
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # disjoint data
    # one writer: each status step appears once, no temporary checkpoint left behind
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps == sorted(set(steps))
    assert not glob.glob(str(run / "checkpoints" / ".tmp*"))
    assert r.stdout.count("Newest sample grid") == 1


def test_wandb_only_when_enabled(cartoon_shards, tmp_path):
    code = ("import sys; from facegan.cli.train import main; rc = main(sys.argv[1:]); "
            "print('WANDB_IMPORTED', 'wandb' in sys.modules); sys.exit(rc)")
    off = run_cli("-c", code, f"data.shards={cartoon_shards}", f"run.dir={tmp_path / 'off'}", *TINY, kimg(1))
    assert off.returncode == 0 and "WANDB_IMPORTED False" in off.stdout, off.stderr[-2000:]


@pytest.mark.slow
def test_wandb_offline_logs_metrics_and_images(cartoon_shards, tmp_path):
    r = train_cli(cartoon_shards, tmp_path, kimg(4), "log.wandb=offline", "log.name=smoke",
                  env={"WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert runs, os.listdir(tmp_path)
    state = ckpt.verify(ckpt.list_checkpoints(str(tmp_path / "checkpoints"))[0])
    assert state["wandb_id"] and state["wandb_id"] in runs[0]
    media = glob.glob(os.path.join(runs[0], "files", "media", "images", "*.png"))
    assert media  # the sample grids went to wandb as images


def test_device_cache_and_channels_last_train_and_resume_exactly(cartoon_shards, tmp_path):
    opts = ["data.device_cache=true", "train.channels_last=true"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    r = train_cli(cartoon_shards, straight, kimg(6), *opts)
    assert r.returncode == 0 and "training images cached on cpu" in r.stdout, r.stderr[-2000:]
    assert train_cli(cartoon_shards, split, kimg(3), *opts).returncode == 0
    assert train_cli(cartoon_shards, split, kimg(6), *opts).returncode == 0
    a = weights(ckpt.list_checkpoints(str(straight / "checkpoints"))[0])
    b = weights(ckpt.list_checkpoints(str(split / "checkpoints"))[0])
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)


@pytest.mark.slow
def test_sigterm_to_a_two_process_launch_checkpoints(cartoon_shards, tmp_path):
    """Preemption as SLURM or torchrun deliver it: SIGTERM to the whole process group,
    loader workers included. Every rank finishes its step and one checkpoint is written."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={tmp_path}",
           *TINY, "data.workers=1", "train.total_kimg=100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True)
    for line in proc.stdout:
        if line.startswith("kimg"):
            break
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert "stop requested; checkpoint written" in out, out[-3000:]
    path, state = ckpt.find_resumable(str(tmp_path / "checkpoints"))
    assert path and state["world_size"] == 2 and state["step"] > 0


@pytest.mark.slow
def test_compile_option_trains_without_recompiles(cartoon_shards, tmp_path):
    r = train_cli(cartoon_shards, tmp_path, kimg(12), "train.compile=true", env={"TORCH_LOGS": "recompiles"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Recompiling" not in r.stderr  # D's requires_grad toggles every step
    w = weights(ckpt.list_checkpoints(str(tmp_path / "checkpoints"))[0])
    assert not any("_orig_mod" in k for net in ("G", "D", "G_ema") for k in w[net])


def test_trainer_does_not_import_the_eval_package():
    """The CLI hands the evaluator and the report writer to the trainer (one-way dependency)."""
    code = "import sys, facegan.train.loop; print(sorted(m for m in sys.modules if m.startswith('facegan.eval')))"
    r = run_cli("-c", code)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_cpu_thread_note_names_the_launch_flag(monkeypatch):
    from facegan.train.runtime import cpu_threads_note

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # what accelerate launch sets by default
    assert "--num_cpu_threads_per_process 4" in cpu_threads_note(1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert cpu_threads_note(1) is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert cpu_threads_note(2) is None  # two processes share the four cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert "--num_cpu_threads_per_process 4" in cpu_threads_note(2)  # one of them on this machine


def test_collective_errors_become_one_line_naming_the_timeout(tmp_path):
    import torch.distributed as dist

    from facegan.train.distributed import CollectiveFailure, explain_collective_error

    gloo = "[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 15000ms for recv operation to complete"
    assert explain_collective_error(RuntimeError(gloo), 0, 15) is None  # no process group: not ours to explain
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        timed_out = explain_collective_error(RuntimeError(gloo), 0, 15)
        assert isinstance(timed_out, CollectiveFailure) and "dist.timeout_s=15 s" in str(timed_out)
        lost = explain_collective_error(RuntimeError("[pair.cc:561] Connection closed by peer [127.0.0.1]:1"), 1, 300)
        assert str(lost).startswith("rank 1: lost the connection to another rank")
        assert explain_collective_error(RuntimeError("CUDA out of memory"), 0, 300) is None
        assert explain_collective_error(ValueError("timed out"), 0, 300) is None
    finally:
        dist.destroy_process_group()
