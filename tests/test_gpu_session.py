"""bench/gpu_session.py, the one-call GPU session, in its --smoke mode on the CPU: every part's
code path runs as a real process before a GPU ever sees it."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import gpu_session  # noqa: E402

PARTS = ["data", "pytest", "e2e", "options", "loader", "hires", "quality"]


def finite_or_explained(value, where):
    """Every figure is a finite number or says why it is missing (skipped, failed, a status)."""
    if isinstance(value, dict):
        for k, v in value.items():
            finite_or_explained(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            finite_or_explained(v, f"{where}[{i}]")
    elif isinstance(value, bool) or value is None:
        assert value is not None, f"{where} is null"
    elif isinstance(value, (int, float)):
        assert math.isfinite(value), f"{where} = {value}"
    else:
        assert isinstance(value, str) and value, f"{where} = {value!r}"


@pytest.mark.slow
def test_smoke_session_runs_every_part_and_bundles_its_results(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "bench", "gpu_session.py"), "--smoke", "--out", str(out),
           "--workdir", str(tmp_path / "work")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    env.pop("OUT", None)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
                          start_new_session=True) as proc:
        try:
            text = proc.communicate(timeout=400)[0]
        finally:  # the session, its parts and their loader workers, whatever the outcome
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, text[-4000:]
    result = json.loads((out / "results.json").read_text())
    assert list(result["parts"]) == PARTS
    for name, entry in result["parts"].items():
        assert entry["status"] == "ok", (name, entry)
        finite_or_explained(entry["figures"], name)
    parts = {name: entry["figures"] for name, entry in result["parts"].items()}
    assert parts["pytest"]["skipped"] >= 4 and parts["pytest"]["failed"] == 0  # no CUDA here
    e2e = parts["e2e"]
    for key in ("classic_images_per_s", "facegan_images_per_s", "speedup_vs_classic", "fraction_of_bound"):
        assert e2e[key] > 0, key
    assert e2e["bound"]["images_per_s"] > 0 and e2e["setup"]["step_gflop_per_image"] > 0
    assert parts["options"]["trainer's choices"]["vs_trainer_choices"] == 1.0
    assert parts["options"]["torch.compile"]["recompiles"] == 0  # D's requires_grad toggles every step
    assert parts["options"]["fp16 + loss scaling"] == {"status": "skipped: needs CUDA"}
    for k in ("loader_png", "loader_jpg", "loader_npy", "device_cache"):
        assert parts["loader"][k]["images_per_s"] > 0, k
    assert parts["hires"]["largest_batch_64"]["batch"] == 16  # the smoke cap; no OOM on a CPU
    assert parts["quality"]["best"]["variant"] == "lr10-ema10-b32-beta0"  # smoke: one row of the two
    assert set(result["goals"]) and "| e2e | ok |" in text
    files = sorted(os.listdir(out))
    assert files == ["quality-best.png", "quality-best.safetensors", "results.json", "session.log"]
    assert all(os.path.getsize(out / f) <= 16 * 2**20 for f in files) and not result["out_problems"]
    assert "===== hires: ok" in (out / "session.log").read_text()


def test_a_part_past_its_limit_is_stopped_with_its_children(tmp_path):
    child = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    t = time.time()
    with open(tmp_path / "log", "w") as log:
        status, rc, seconds = gpu_session.run_limited([sys.executable, "-c", script], 3, log)
    assert status == "timeout" and rc != 0 and seconds < 15 and time.time() - t < 15
    pid = int(child.read_text())
    for _ in range(50):  # the grandchild went with its process group
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"process {pid} outlived its part")
    with open(tmp_path / "log", "w") as log:
        assert gpu_session.run_limited([sys.executable, "-c", "raise SystemExit(3)"], 30, log)[:2] == ("failed", 3)


def test_a_failed_measurement_marks_its_part_partial():
    figures = {"bound": {"images_per_s": 10.0}, "classic_images_per_s": "failed: RuntimeError: boom",
               "hires": {"largest_batch_256": "failed: OSError: x", "note": "skipped: CUDA only"}}
    assert gpu_session.failed_measurements(figures) == ["classic_images_per_s: failed: RuntimeError: boom",
                                                        "hires.largest_batch_256: failed: OSError: x"]


def test_pytest_outcomes_are_read_from_verbose_lines():
    text = ("tests/test_gpu.py::test_fp16_trains_with_loss_scaling PASSED [ 20%]\n"
            "tests/test_gpu.py::test_two_gpu_ddp_over_nccl SKIPPED (needs two GPUs) [ 40%]\n"
            "tests/test_gpu.py::test_compile_on_cuda_trains_without_recompiles FAILED [ 60%]\n"
            "SKIPPED [1] tests/test_gpu.py:90: needs two GPUs\n")
    counts = gpu_session.pytest_counts(text)
    assert (counts["passed"], counts["skipped"], counts["failed"]) == (1, 1, 1)
    assert counts["skip_reasons"] == ["tests/test_gpu.py:90: needs two GPUs"]
