#!/usr/bin/env bash
# Train on several nodes under SLURM: one task per node, Accelerate starts one process per GPU.
#   sbatch --nodes 4 launch/slurm.sh configs/celeba64.yaml train.total_kimg=10000
#   MAX_RESTARTS=5 sbatch --nodes 4 launch/slurm.sh configs/celeba64.yaml
# Each override reaches the trainer as one argument, spaces and braces included:
#   sbatch --nodes 4 launch/slurm.sh configs/celeba64.yaml \
#       'data.shards=pipe:aws s3 cp s3://bucket/celeba64/train-{000000..000099}.tar -' 'train.betas=[0.5, 0.999]'
# The log is facegan-JOBID.out in the directory sbatch was run from (SLURM opens it before this
# script starts and does not create folders for it).
#SBATCH --job-name=facegan
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch launch/slurm.sh CONFIG [key=value ...]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# A rank that dies (node failure, OOM killer, bad GPU) restarts the whole group up to this many
# times; each restart resumes from the newest checkpoint (run.resume=auto, the default).
MAX_RESTARTS=${MAX_RESTARTS:-3}
# awk reads every line: `head -n 1` would close the pipe early, and under pipefail scontrol's
# SIGPIPE (exit 141) would end the job.
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')
MASTER_PORT=${MASTER_PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# Each restart meets in a fresh store: a shared one keeps the dead ranks' addresses and the
# restarted group can fail to connect (gloo "connectFullMesh ... Connection refused").
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
# c10d rendezvous: when one node's rank dies, every node's launcher restarts its ranks together
# (the static rendezvous restarts only the node that failed, and the others never rejoin).
# SIGTERM (preemption, or --signal above, 120 s before the time limit) reaches every rank: each
# finishes its step, a checkpoint is written and the job exits 0. SLURM requeues the job only
# when it is preempted (--requeue); a job that reaches its time limit ends there: submit it
# again and run.resume=auto continues from that checkpoint.
LAUNCH=(--multi_gpu --num_machines "$SLURM_NNODES" --num_processes "$((SLURM_NNODES * GPUS_PER_NODE))"
        --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT"
        --rdzv_backend c10d --max_restarts "$MAX_RESTARTS" --monitor_interval 5)
# Every word goes to srun as its own argument (no shell reads the overrides again); only the
# node's rank is filled in on each node, from that task's own SLURM_NODEID.
srun --kill-on-bad-exit=1 bash -c 'exec accelerate launch --machine_rank "$SLURM_NODEID" "$@"' facegan-node \
  "${LAUNCH[@]}" launch/train.py --config "$CONFIG" "$@"
