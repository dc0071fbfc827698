"""The Python flow in a real Jupyter kernel: docs/quickstart.ipynb executed with nbclient at tiny
sizes (pack, train with a live bar, sample, score), so the notebook path stays working."""

import json
import os

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TINY = ["model.ngf=8", "model.ndf=8", "model.nz=16", "data.workers=0", "train.sample_every_kimg=0",
        "train.checkpoint_every_kimg=0", "log.every_steps=2", "train.batch_size=16"]


def _outputs(cell, kind):
    return [o for o in cell.outputs if o.output_type == kind]


def test_quickstart_notebook_runs_the_whole_flow(tmp_path, random_inception, monkeypatch):
    nb = nbformat.read(os.path.join(ROOT, "docs", "quickstart.ipynb"), as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    nb.cells[params[0]].source = (f"IMAGES = 160\nKIMG = 0.128\nN_SCORE = 16\nWORK = {str(tmp_path)!r}\n"
                                  f"EXTRA = {TINY!r}\nINCEPTION = {random_inception!r}")
    monkeypatch.setenv("FACEGAN_PROGRESS_S", "0")  # the kernel inherits it: a line at every update
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": ROOT}})
    client.execute()
    train_cell = next(c for c in nb.cells if "fg.train(" in c.source)
    # The live bar: a tqdm widget in the training cell's output (ipywidgets installed) ...
    widgets = [o for o in _outputs(train_cell, "display_data") if "application/vnd.jupyter.widget-view+json" in o.data]
    assert widgets, [o.output_type for o in train_cell.outputs]
    # ... beside the status lines, which say the target, the percentage and the time left.
    text = "".join(o.text for o in _outputs(train_cell, "stream"))
    assert "kimg 0.128/0.128 (100.0%)" in text and "ETA" in text
    result = _outputs(train_cell, "execute_result")[0].data["text/plain"]
    assert result.replace("\n", "").startswith("(8, 128, ")  # 8 steps of 16 images
    sample_cell = next(c for c in nb.cells if "fg.sample(" in c.source)
    assert "image/png" in _outputs(sample_cell, "execute_result")[0].data
    score_cell = next(c for c in nb.cells if "fg.score(" in c.source)
    scores = _outputs(score_cell, "execute_result")[0].data["text/plain"]
    assert "'fid'" in scores and "'n_real': 16" in scores and "'n_fake': 16" in scores
    assert json.load(open(tmp_path / "shards" / "dataset.json"))["count"] == 160
