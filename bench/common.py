"""Shared helpers for benchmarks: the machine description and result files."""

import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RESULTS = os.environ.get("FACEGAN_BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "device": device,
            "python": platform.python_version()}


def report(name: str, figures: dict, ratio_name: str, ratio: float) -> dict:
    result = {"benchmark": name, "machine": machine(), "figures": figures, ratio_name: round(ratio, 3),
              "date": time.strftime("%Y-%m-%d")}
    m = result["machine"]
    print(f"[{name}] {m['cpu']} x{m['cores']}, torch {m['torch']}, device {m['device']}")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"  {ratio_name}: {ratio:.2f}x")
    os.makedirs(RESULTS, exist_ok=True)
    tag = "gpu" if m["device"] != "cpu" else "cpu"
    with open(os.path.join(RESULTS, f"{name}-{tag}.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def make_jpeg_folder(root: str, n: int, size=(178, 218)) -> str:
    """CelebA-like inputs: n JPEGs of synthetic faces at 178x218, in class subfolders."""
    from facegan.data.synthetic import cartoon_face

    marker = os.path.join(root, f".complete-{n}")
    if os.path.exists(marker):
        return root
    for i in range(n):
        sub = os.path.join(root, f"c{i % 4}")
        os.makedirs(sub, exist_ok=True)
        cartoon_face(i, seed=7).resize(size).save(os.path.join(sub, f"{i:06d}.jpg"), quality=92)
    open(marker, "w").close()
    return root
