"""Every command the README and the --help texts write runs as written: each facegan-*, python -m
facegan.cli.*, launch/train.py, accelerate launch and sbatch line is parsed by the real parsers
(accelerate's own, the command's argparse, the config loader with its overrides), so a README edit
that breaks a command fails here; the launch files pass overrides and the rendezvous through."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT
from procs import Launch, free_port, port_open, wait_for

PREFIXES = ("facegan-", "python launch/train.py", "python -m facegan.cli.", "accelerate launch", "sbatch ",
            "make ")


def _readme_commands(text: str) -> list:
    """Command lines of the README: bash code blocks (continuations joined, comments dropped) and
    inline code spans that start like a command."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line:
                commands.append(line)
    commands += [span for span in re.findall(r"`([^`\n]+)`", text) if span.startswith(PREFIXES)]
    return commands


def _help_commands() -> list:
    """Example lines in each command's --help (description and epilog)."""
    import importlib

    lines = []
    for name in ("shard", "train", "sample", "export", "eval", "report"):
        p = importlib.import_module(f"facegan.cli.{name}").build_parser()
        for line in f"{p.description or ''}\n{p.epilog or ''}".splitlines():
            line = line.strip()
            if line.startswith(PREFIXES):
                lines.append(line)
    return lines


def _launch_file_commands() -> list:
    """The usage lines in the comments of launch/slurm.sh and launch/multinode.yaml."""
    lines = []
    for name in ("slurm.sh", "multinode.yaml"):
        with open(os.path.join(ROOT, "launch", name)) as f:
            text = "".join(line[1:].strip() + "\n" for line in f if line.startswith("#   "))
        lines += [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def _is_synopsis(words) -> bool:
    return any(w.startswith("[") or w in ("...", "[key=value", "--config ...") for w in words) or "..." in words


def check_command(line: str) -> str:
    """Parse `line` as its program would; returns what it was recognised as. Raises on a command
    that its parser refuses."""
    import importlib

    from accelerate.commands.launch import launch_command_parser

    from facegan.config import load_config

    words = shlex.split(line)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if _is_synopsis(words):
        return "synopsis"
    if len(words) == 1 or words == ["accelerate", "launch"] or words[0].endswith(":"):
        return "mention"  # a command's name in the text, or a --help's first line
    words = [w.replace("$NODE_RANK", "0").replace("$MASTER_ADDR", "10.0.0.1") for w in words]
    if words[0] == "make":
        with open(os.path.join(ROOT, "Makefile")) as f:
            targets = set(re.findall(r"^([\w.-]+):", f.read(), re.M))
        missing = [w for w in words[1:] if "=" not in w and not w.startswith("-") and w not in targets]
        assert not missing, f"{line}: no Makefile target {', '.join(missing)}"
        return "make"
    if not (words[0].startswith("facegan-") or words[0] in ("python", "accelerate", "sbatch")):
        return "external"  # another program's command (tensorboard, pip, ...): not ours to parse
    if words[0] == "sbatch":
        script = next(i for i, w in enumerate(words) if w.endswith("slurm.sh"))
        assert os.path.isfile(os.path.join(ROOT, words[script])), line
        load_config(os.path.join(ROOT, words[script + 1]), words[script + 2:])
        return "slurm"
    if words[:2] == ["accelerate", "launch"]:
        args = launch_command_parser().parse_args(words[2:])
        if args.config_file:
            assert os.path.isfile(os.path.join(ROOT, args.config_file)), line
        elif (args.num_processes or 1) > 1:  # without it, a machine with no GPU runs one process
            assert args.multi_gpu, f"{line}: several processes need --multi_gpu"
        if args.module:
            module, rest = args.training_script, args.training_script_args
        else:
            assert os.path.isfile(os.path.join(ROOT, args.training_script)), (
                f"{line}: accelerate runs {args.training_script} as a Python file, and there is none")
            module, rest = "facegan.cli.train", args.training_script_args
        words = ["python", "-m", module, *rest]
    if words[0] == "python":
        if words[1] == "-m":
            module, rest = words[2], words[3:]
        else:
            assert words[1] == "launch/train.py", line
            module, rest = "facegan.cli.train", words[2:]
    else:
        module, rest = "facegan.cli." + words[0][len("facegan-"):], words[1:]
    parser = importlib.import_module(module).build_parser()
    args = parser.parse_args(rest)
    if module == "facegan.cli.train":
        load_config(os.path.join(ROOT, args.config) if args.config else None, args.overrides)
    return module


def test_every_readme_and_help_command_parses():
    with open(os.path.join(ROOT, "README.md")) as f:
        commands = _readme_commands(f.read()) + _help_commands() + _launch_file_commands()
    kinds, failed = {}, []
    for line in commands:
        try:
            kinds.setdefault(check_command(line), []).append(line)
        except (SystemExit, Exception) as err:  # argparse's refusal, a UserError of the config
            failed.append(f"{line!r}: {type(err).__name__} {err}")
    assert not failed, "README/--help commands that do not run as written:\n" + "\n".join(failed)
    # The check covers every command of the README (a README without them would pass vacuously).
    for kind in ("facegan.cli.shard", "facegan.cli.train", "facegan.cli.sample", "facegan.cli.export",
                 "facegan.cli.eval", "facegan.cli.report", "slurm"):
        assert kind in kinds, (kind, sorted(kinds))
    assert any("-m facegan.cli.eval" in c and "--num_processes 2" in c for c in kinds["facegan.cli.eval"])
    assert any("--rdzv_backend c10d" in c and "multinode.yaml" in c for c in commands)


@pytest.mark.parametrize("line", [
    "accelerate launch --num_processes 2 facegan-eval runs/demo --ref shards/cartoon32",  # the old README line
    "accelerate launch --num_processes 2 -m facegan.cli.eval runs/demo --ref shards/cartoon32",  # one process on CPU
    "facegan-sample runs/demo --n 64 --out",
    "python launch/train.py --config configs/demo.yaml train.lr_g=nan",
])
def test_the_check_refuses_broken_commands(line):
    """The README check is not vacuous: the issue's own command, and others, fail it."""
    with pytest.raises((AssertionError, SystemExit, Exception)):
        check_command(line)


# ---------------------------------------------------------------- launch/slurm.sh

FAKE_ACCELERATE = """#!{python}
import json, os, sys
with open(os.environ["ARGS_OUT"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == --* ]]; do shift; done
SLURM_NODEID=1 exec "$@"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
printf 'gpu-node-07\\ngpu-node-08\\n'
"""


def test_slurm_script_passes_each_override_as_one_argument(tmp_path):
    """The README's object-store override and a list reach accelerate intact, one argument each,
    with the c10d rendezvous, the node's own rank and the restart count; no folder is needed for
    the log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("accelerate", FAKE_ACCELERATE.format(python=sys.executable)), ("srun", FAKE_SRUN),
                       ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    overrides = ["data.shards=pipe:aws s3 cp s3://b/train-{000000..000002}.tar -", "train.betas=[0.5, 0.999]",
                 "log.name=my run; echo $HOME *"]
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", ARGS_OUT=str(tmp_path / "args.jsonl"),
               SLURM_JOB_NODELIST="gpu-node-[07-08]", SLURM_NNODES="2", SLURM_NODEID="0", MAX_RESTARTS="2")
    r = subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm.sh"), "configs/celeba64.yaml", *overrides],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (args,) = [json.loads(line) for line in open(tmp_path / "args.jsonl")]
    assert args[0] == "launch" and args[args.index("--machine_rank") + 1] == "1"  # the task's own rank
    assert args[args.index("--rdzv_backend") + 1] == "c10d" and args[args.index("--max_restarts") + 1] == "2"
    assert args[args.index("--main_process_ip") + 1] == "gpu-node-07"
    assert args[args.index("--num_processes") + 1] == "16"
    script = args.index("launch/train.py")
    assert args[script + 1:] == ["--config", "configs/celeba64.yaml", *overrides]
    # ...and the trainer reads them as the keys they name.
    from facegan.config import load_config

    cfg = load_config(os.path.join(ROOT, "configs/celeba64.yaml"), overrides[:2])
    assert cfg.data.shards == overrides[0][len("data.shards="):] and cfg.train.betas == [0.5, 0.999]
    output = re.search(r"^#SBATCH --output=(\S+)", open(os.path.join(ROOT, "launch", "slurm.sh")).read(), re.M)
    assert "/" not in output.group(1), "SLURM does not create the log's folder"


# ---------------------------------------------------------------- launch/multinode.yaml

ENV_DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1] + os.environ['RANK'], 'w'))"


def test_multinode_command_gives_workers_a_c10d_rendezvous(tmp_path):
    """The README's multi-node command, on two "nodes" on the loopback address, with the file's
    sizes scaled to one CPU process per node: the workers run under the c10d rendezvous with
    their own store per attempt (TORCHELASTIC_USE_AGENT_STORE False), which is what facegan's
    warning checks; under the static default they would share the launcher's store."""
    with open(os.path.join(ROOT, "README.md")) as f:
        block = re.search(r"```bash\n\s*(TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 accelerate launch --config_file "
                          r"launch/multinode.yaml.*?)```", f.read(), re.S).group(1)
    words = shlex.split(block.replace("\\\n", " "))
    env = dict(w.split("=", 1) for w in words[:words.index("accelerate")])
    launch_args = words[words.index("launch") + 1:words.index("launch/train.py")]
    script = tmp_path / "dump_env.py"
    script.write_text(ENV_DUMP)
    port, prefix = free_port(), str(tmp_path / "env")
    nodes = []

    def node(rank):
        args = [a.replace("$NODE_RANK", str(rank)).replace("$MASTER_ADDR", "127.0.0.1") for a in launch_args]
        # Loopback stand-ins for the file's 2 x 8 GPUs; both nodes share one host, so only node 0
        # hosts the rendezvous store (as tests/test_elastic.py does).
        return Launch(args + ["--num_processes", "2", "--main_process_port", str(port),
                              "--rdzv_conf", f"is_host={int(rank == 0)}", "--monitor_interval", "1",
                              str(script), prefix], f"node{rank}", env=env)

    try:
        nodes.append(node(0))
        wait_for(lambda: port_open(port), 60, "node 0's rendezvous store")
        nodes.append(node(1))
        codes = [n.wait(120) for n in nodes]
        assert codes == [0, 0], "\n".join(n.output for n in nodes)[-3000:]
    finally:
        for n in nodes:
            n.kill()
    seen = [json.load(open(f"{prefix}{r}")) for r in range(2)]
    for worker in seen:
        assert worker["TORCHELASTIC_USE_AGENT_STORE"] == "False", worker  # c10d, fresh store per attempt
        assert worker["GROUP_WORLD_SIZE"] == "2" and worker["WORLD_SIZE"] == "2"
        assert worker["TORCHELASTIC_MAX_RESTARTS"] == "3"
    assert sorted(w["RANK"] for w in seen) == ["0", "1"]
