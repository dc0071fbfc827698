"""A rank that dies or stalls, with real processes: two "nodes" on the loopback address under
torchrun's c10d rendezvous, and a two-process launch with a frozen rank."""

import glob
import json
import os
import signal
import time

import pytest

from procs import ROOT, Launch, free_port, port_open, wait_for
from test_train import TINY

pytestmark = pytest.mark.slow


def _checkpoints(run):
    return glob.glob(os.path.join(str(run), "checkpoints", "step-*"))


def test_two_nodes_on_loopback_restart_after_a_rank_is_killed(cartoon_shards, tmp_path):
    """The commands the README gives for several nodes: node 1's rank is killed with SIGKILL after
    the first checkpoint; both nodes restart (--max_restarts), resume from that checkpoint and
    finish with status 0 and identical weights on both ranks."""
    run, prefix, port = tmp_path / "run", str(tmp_path / "rank"), free_port()
    nodes = []

    def node(rank):
        return Launch(["--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                       "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
                       "--rdzv_backend", "c10d", "--rdzv_conf", f"is_host={int(rank == 0)}",
                       "--max_restarts", "1", "--monitor_interval", "1",
                       os.path.join(ROOT, "tests", "helpers", "ddp_train.py"), prefix,
                       f"data.shards={cartoon_shards}", f"run.dir={run}", *TINY, "data.workers=1",
                       "train.total_kimg=2", "train.checkpoint_every_kimg=0.5", "dist.timeout_s=30"], f"node{rank}",
                      env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})  # as launch/slurm.sh sets it

    try:
        nodes.append(node(0))
        wait_for(lambda: port_open(port), 60, "node 0's rendezvous store")  # both would host it on one machine
        nodes.append(node(1))
        wait_for(lambda: _checkpoints(run), 120, "the first checkpoint")
        victim = nodes[1].ranks()
        assert len(victim) == 1, victim
        os.kill(victim[0], signal.SIGKILL)
        killed = time.time()
        codes = [n.wait(180) for n in nodes]
        logs = "\n".join(f"[{n.name}] {n.output}" for n in nodes)
        assert codes == [0, 0], logs[-4000:]
        resumed = [n.first_time("facegan: resumed from") for n in nodes]
        assert None not in resumed, logs[-4000:]
        ranks = [json.load(open(f"{prefix}{i}.json")) for i in range(2)]
        assert ranks[0]["step"] == ranks[1]["step"] == 125  # 2 kimg at 16 per step
        for net in ("G", "D", "G_ema"):
            assert ranks[0][net] == ranks[1][net], net
        print(f"restart: resumed {max(resumed) - killed:.1f} s after the kill")
    finally:
        for n in nodes:
            n.kill()


def test_a_stalled_rank_ends_the_attempt_within_the_timeout_and_the_group_restarts(cartoon_shards, tmp_path):
    """SIGSTOP freezes rank 1 after the first checkpoint: rank 0's next collective gives up after
    dist.timeout_s and says so in one line; the launcher kills the frozen rank (after its 30 s
    grace) and, under --max_restarts, restarts both ranks, which resume and finish. Without
    --max_restarts the job ends there (exit 1); that ends 36 s after SIGSTOP (timeout plus the grace)."""
    timeout_s, restarts = 5, 1
    run = tmp_path / "run"
    launch = Launch(["--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                     "--main_process_port", str(free_port()), "--max_restarts", str(restarts), "--monitor_interval", "1",
                     os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={run}",
                     *TINY, "data.workers=1", "train.total_kimg=2", "train.checkpoint_every_kimg=0.5",
                     f"dist.timeout_s={timeout_s}"])
    try:
        wait_for(lambda: _checkpoints(run), 120, "the first checkpoint")
        ranks = launch.ranks()
        assert len(ranks) == 2, ranks
        os.kill(max(ranks), signal.SIGSTOP)  # either rank will do; the other one waits for it
        stopped = time.time()
        code = launch.wait(timeout_s + 30 + 60)
        ended = time.time()
        errors = [line for _, line in launch.lines if line.startswith("facegan-train: error:")]
        assert len(errors) == 1 and f"dist.timeout_s={timeout_s} s" in errors[0], launch.output[-3000:]
        assert "[rank0]: Traceback" not in launch.output and "[rank1]: Traceback" not in launch.output
        said = launch.first_time("facegan-train: error:") - stopped
        assert said < timeout_s + 15, said
        assert code == 0, launch.output[-3000:]
        assert "facegan: resumed from" in launch.output and "facegan: done at step 125" in launch.output
        assert ended - stopped < timeout_s + 30 + 45, ended - stopped
        wait_for(lambda: not launch.group_alive(), 20, "every process of the launch to exit")
        print(f"stall: reported {said:.1f} s after SIGSTOP, "
              f"launch ended after {ended - stopped:.1f} s")
    finally:
        launch.kill()
