"""tests/warm.py, the forked commands most tests run: each must behave as `python ...` started cold
would (own process and session, exit status, output, environment, signals, timeout)."""

import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, run_cli, warm_ok

pytestmark = pytest.mark.skipif(not warm_ok(("-c", "pass"), None), reason="warm commands are Linux-only")

PROBE = ("import os, sys, json; print(json.dumps({'pid': os.getpid(), 'sid': os.getsid(0), 'cwd': os.getcwd(), "
         "'argv': sys.argv, 'facegan': 'facegan' in sys.modules, 'path0': sys.path[0], "
         "'probe': os.environ.get('FACEGAN_PROBE')})); print('to stderr', file=sys.stderr); sys.exit(3)")


def test_a_warm_command_is_its_own_process_with_its_own_output_and_status():
    import json

    r = run_cli("-c", PROBE, "a", "b", env={"FACEGAN_PROBE": "yes"})
    assert r.returncode == 3 and r.stderr == "to stderr\n", r
    seen = json.loads(r.stdout)
    assert seen["pid"] != os.getpid() and seen["sid"] == seen["pid"]  # a session of its own
    assert seen["cwd"] == ROOT and seen["argv"] == ["-c", "a", "b"] and seen["path0"] == ""
    assert seen["probe"] == "yes" and seen["facegan"] is False  # facegan is imported afresh by each command


def test_warm_and_cold_runs_of_a_module_agree():
    warm = run_cli("-m", "facegan.cli.shard", "--out")
    cold = run_cli("-m", "facegan.cli.shard", "--out", cold=True)
    assert warm.returncode == cold.returncode == 2
    assert warm.stdout == cold.stdout and warm.stderr == cold.stderr and "--out" in warm.stderr


def test_uncaught_errors_signals_and_timeouts(tmp_path):
    r = run_cli("-c", "raise ValueError('boom')")
    assert r.returncode == 1 and r.stderr.strip().endswith("ValueError: boom")
    r = run_cli("-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert r.returncode == -signal.SIGTERM
    for cold in (False, True):  # an uncaught Ctrl-C ends the interpreter by SIGINT itself
        r = run_cli("-c", "raise KeyboardInterrupt", cold=cold)
        assert r.returncode == -signal.SIGINT and "KeyboardInterrupt" in r.stderr, (cold, r)
    # a child the command leaves behind is ended with it (its whole session is killed)
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("-c", code, timeout=5)
    child = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_variables_read_at_import_send_a_command_cold():
    assert warm_ok(("-m", "facegan.cli.eval"), {"FACEGAN_CACHE": "x", "OMP_NUM_THREADS": "1"})
    assert not warm_ok(("-m", "facegan.cli.eval"), {"HF_HUB_OFFLINE": "1"})
    assert not warm_ok(("-m", "accelerate.commands.launch"), None)
    r = run_cli("-c", "import torch; print(torch.get_num_threads())", env={"OMP_NUM_THREADS": "2"})
    assert r.stdout.strip() == "2"
