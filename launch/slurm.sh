#!/usr/bin/env bash
# Train on several nodes under SLURM: one task per node, Accelerate starts one process per GPU.
#   sbatch --nodes 4 launch/slurm.sh configs/celeba64.yaml train.total_kimg=10000
#SBATCH --job-name=facegan
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch launch/slurm.sh CONFIG [key=value ...]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# SIGTERM (preemption, or --signal above) reaches every rank: each finishes its step, a
# checkpoint is written and the job exits 0; --requeue plus run.resume=auto picks it up again.
srun --kill-on-bad-exit=1 bash -c "accelerate launch \
  --multi_gpu --num_machines $SLURM_NNODES --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
  --machine_rank \$SLURM_NODEID --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
  --rdzv_backend static --same_network \
  launch/train.py --config $CONFIG $*"
