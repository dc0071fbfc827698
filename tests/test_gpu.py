"""CUDA-only checks (skipped elsewhere): bf16 and fp16 runs of the celeba64 model."""

import json
import os

import pytest
import torch

from conftest import ROOT, run_cli

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_celeba64_model_trains_in_mixed_precision(tmp_path, precision):
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    shards = str(tmp_path / "shards")
    pack(open_source("synthetic:cartoon", limit=2000), shards, PackOptions(size=64, shard_size=250))
    r = run_cli(os.path.join(ROOT, "launch", "train.py"), "--config", os.path.join(ROOT, "configs", "celeba64.yaml"),
                f"data.shards={shards}", f"run.dir={tmp_path / 'run'}", f"train.mixed_precision={precision}",
                "train.max_steps=60", "log.every_steps=20", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    label = "bf16 autocast" if precision == "bf16" else "fp16 autocast + loss scaling"
    assert f"precision {label}" in r.stdout.splitlines()[0]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert all(torch.isfinite(torch.tensor([row["loss_D"], row["loss_G"]])).all() for row in rows)
