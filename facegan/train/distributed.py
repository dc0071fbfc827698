"""A distributed run's processes: their rank, restarts under torchrun, and what a failed
collective means to the user. (What rank 0 decides for all, e.g. the checkpoint to resume, goes
through accelerate.utils.broadcast_object_list.)

A rank that dies or stalls shows up on the others as an error inside a collective (gloo:
"Timed out waiting ...", "Connection closed by peer"; NCCL's watchdog ends the process itself).
The trainer turns that into one line naming dist.timeout_s and exits 1, so torchrun's
--max_restarts can restart the group, which resumes from the newest checkpoint.
"""

import os

import torch
import torch.distributed as dist

# Substrings of the errors a collective raises when a peer is gone or silent.
_TIMEOUT = ("timed out", "timeout")
_PEER_LOST = ("closed by peer", "reset by peer", "connection closed", "connection reset", "broken pipe",
              "connection refused")


class CollectiveFailure(RuntimeError):
    """Another rank stopped answering: the job ends (exit 1) so the launcher can restart it."""


def explain_collective_error(err: BaseException, rank: int, timeout_s: float):
    """A one-line CollectiveFailure for an error a collective raised, or None for any other error."""
    if not (isinstance(err, RuntimeError) and dist.is_available() and dist.is_initialized()):
        return None
    text = str(err).lower()
    restart = ("the job stops; under `accelerate launch --max_restarts N` (torchrun) the group restarts "
               "and resumes from the newest checkpoint")
    if any(s in text for s in _TIMEOUT):
        return CollectiveFailure(f"rank {rank}: another rank sent nothing for dist.timeout_s={timeout_s:g} s "
                                 f"(stalled or lost); {restart}")
    if any(s in text for s in _PEER_LOST):
        return CollectiveFailure(f"rank {rank}: lost the connection to another rank (it died or was killed); "
                                 f"{restart}")
    return None


def rank_world(accelerator=None) -> tuple:
    """(rank, number of processes) of an Accelerator, or (0, 1) without one."""
    return (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)


def init_process_group_for_restarts(timeout) -> bool:
    """Start the process group ourselves where torchrun's restarts would otherwise fail to reconnect.

    Under torchrun the workers of every restart meet in the launcher's own store, whose keys
    outlive the workers that wrote them: a restarted rank can read a dead rank's address from the
    previous attempt and fail (gloo "connectFullMesh ... Connection refused"), using up a restart.
    With one launcher (one node) the restart count is the same on every rank, so keys under
    /facegan/attempt_<count> are fresh for each attempt. With several launchers the counts differ;
    there the launcher must not share its store (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, as
    launch/slurm.sh sets), and this does nothing. Returns whether it started the group.
    """
    env = os.environ
    if (dist.is_initialized() or int(env.get("WORLD_SIZE", "1")) < 2
            or env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or env.get("GROUP_WORLD_SIZE", "1") != "1"):
        return False
    store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=timeout)
    attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout,
                            store=dist.PrefixStore(f"/facegan/attempt_{attempt}", store),
                            rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]))
    return True


def shared_store_note():
    """A warning for several launchers that share their store between restarts (see above)."""
    env = os.environ
    if (int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            and env.get("GROUP_WORLD_SIZE", "1") != "1"):
        return ("warning: with several nodes, restarts (--max_restarts) can fail to reconnect while the "
                "launcher shares its store between attempts; set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for "
                "`accelerate launch` (launch/slurm.sh does) and use --rdzv_backend c10d")
    return None
