"""The model card (README.md of a Hub model repo), through huggingface_hub's ModelCard,
ModelCardData and EvalResult: YAML front matter the Hub reads (library, license, tags, datasets,
model-index with FID/KID), then how it was trained, how it scores and how to use it."""

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .facts import RunFacts
from .model import TAGS

TASK = "unconditional-image-generation"
METRIC_NAMES = {"fid": "FID", "kid": "KID"}


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _dataset_id(facts: RunFacts) -> tuple:
    """(dataset_type, dataset_name) for model-index: the Hub id when known, else a local name."""
    if facts.hub_datasets:
        return facts.hub_datasets[0], facts.hub_datasets[0]
    name = (facts.dataset_path or "unknown").rstrip("/").split("/")[-1] or "unknown"
    kind = f" ({facts.dataset_kind})" if facts.dataset_kind else ""
    return name, f"{name}{kind}"


def eval_results(facts: RunFacts) -> list:
    dtype, dname = _dataset_id(facts)
    out = []
    for s in facts.scores:
        n = f"n={s.n_fake} generated vs {s.n_real} real" if s.n_fake else "n not recorded"
        args = {k: v for k, v in (("n_real", s.n_real), ("n_fake", s.n_fake), ("reference", s.reference),
                                  ("extractor", s.extractor), ("from", s.origin)) if v is not None}
        out.append(EvalResult(task_type=TASK, task_name="Unconditional image generation", dataset_type=dtype,
                              dataset_name=dname, dataset_split=s.split, metric_type=s.metric,
                              metric_value=round(s.value, 6), metric_name=f"{METRIC_NAMES[s.metric]} ({n})",
                              metric_args=args))
    return out


def _scores_table(facts: RunFacts) -> str:
    if not facts.scores:
        return ("Not scored yet. Score it with `facegan-eval model.safetensors --ref SHARDS --n 10000 --json "
                "scores.json` and export again with `--scores scores.json`.")
    lines = ["| metric | value | n (generated / real) | reference | split | from |", "|---|---|---|---|---|---|"]
    for s in facts.scores:
        value = f"{s.value:.3f}" if s.metric == "fid" else f"{s.value:.5f}" + (f" ± {s.std:.5f}" if s.std else "")
        lines.append(f"| {METRIC_NAMES[s.metric]} | {value} | {s.n_fake or '?'} / {s.n_real or '?'} | "
                     f"{s.reference or '?'} | {s.split or '?'} | {s.origin} |")
    return "\n".join(lines) + ("\n\nFID is biased upward at small n: compare figures measured with the same n "
                               "and reference, not with papers that use 50k images.")


def _training(facts: RunFacts) -> str:
    a = facts.architecture
    rows = [("architecture", f"DCGAN (Radford et al. 2015), {a['resolution']}x{a['resolution']}, "
                             f"nz {a['nz']}, ngf {a['ngf']}; weights are the EMA of G")]
    if facts.kimg is not None:
        rows.append(("images seen", f"{facts.kimg:g} kimg ({round(facts.kimg * 1000):,} images)"
                     + (f", {facts.step:,} steps" if facts.step else "")))
    rows.append(("training time", _hms(facts.train_seconds) + " (logged steps; start-up and evaluation excluded)"
                 if facts.train_seconds is not None else "not recorded"))
    rows.append(("device", facts.device or "not recorded by this run"))
    rows.append(("data", f"{facts.dataset_path or 'not recorded'}"
                 + (f" ({facts.dataset_kind})" if facts.dataset_kind else "")
                 + (f", from the Hub dataset `{facts.hub_datasets[0]}`" if facts.hub_datasets else "")))
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    config = ("\n\nThe resolved training config (`config.yaml` of the run):\n\n"
              f"```yaml\n{facts.config_text.strip()}\n```"
              if facts.config_text else "\n\nThe run's config was not available at export (exported from a file).")
    return table + config


def _conditioning(facts: RunFacts, where: str) -> str:
    """The card's section on labels, for a conditional generator ('' otherwise)."""
    spec = facts.architecture.get("condition")
    if not spec:
        return ""
    fields = spec["fields"]
    if spec["kind"] == "attributes":
        names = [f["name"] for f in fields]
        example = ", ".join(f'"{n}": {1 - i % 2}' for i, n in enumerate(names[:2]))
        return f"""
## Conditioning

Conditioned on {len(names)} binary attributes: {', '.join(f'`{n}`' for n in names)}
(G: {facts.architecture.get('g_condition', 'embed')}; D: {facts.architecture.get('d_condition', 'projection')}).
Unasked attributes are drawn as in the training data.

```python
images = G.sample(16, seed=0, attrs={{{example}}})
```

`facegan-sample model.safetensors --attr {names[0]}=1 --out grid.png`; `--toggle {names[0]}` writes the
same faces with the attribute off and on.
"""
    f = fields[0]
    return f"""
## Conditioning

Conditioned on the class `{f['name']}`: {', '.join(f'`{c}`' for c in f['classes'])}.

```python
images = G.sample(16, seed=0, klass="{f['classes'][0]}")
```

`facegan-sample model.safetensors --class {f['classes'][0]} --out grid.png`.
"""


def build_card(facts: RunFacts, model_name: str, license: str, repo_id: str = None,
               grid: str = "samples.png", grid_seed: int = 0) -> ModelCard:
    """The card for a Hub folder. repo_id (user/name) goes into the usage lines; without it the
    lines load the folder itself ('.')."""
    data = ModelCardData(library_name="facegan", license=license, tags=list(TAGS), pipeline_tag=TASK,
                         datasets=facts.hub_datasets or None, model_name=model_name,
                         eval_results=eval_results(facts) or None)
    where = repo_id or "."
    res = facts.architecture["resolution"]
    body = f"""
# {model_name}

A DCGAN face generator ({res}x{res}) trained with facegan.

![16 samples, seed {grid_seed}]({grid})

## Use it

```python
from facegan import FaceGenerator
G = FaceGenerator.from_pretrained("{where}")
images = G.sample(16, seed=0)  # (16, {res}, {res}, 3) uint8 numpy; as_tensor=True: (16, 3, {res}, {res})
```

`pip install "facegan[app]"` gives `FaceGenerator` and the app. Samples are the same for a seed
as `facegan-sample model.safetensors --seed 0` gives (codes from `facegan.sampling.latents`), and
`truncation=0.7` trades variety for typical faces. `facegan-app {where}` (or `python app.py` in
this folder) serves a web app: grids, a truncation slider, interpolation strips and GIFs.
`model.safetensors` is also a facegan export (architecture in its metadata); nothing here is a pickle.

{_conditioning(facts, where)}
## Training

{_training(facts)}

## Scores

{_scores_table(facts)}

## Limitations

A GAN reproduces the faces and the biases of its training data; its images are synthetic and can
be mistaken for photos. Check the license of the training data before using this model.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
