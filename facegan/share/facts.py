"""What a model card says about a generator, gathered from its run: the resolved config, images
seen, training time, device, dataset and scores. Everything here is read-only and optional: an
exported file without its run gives the architecture and whatever its metadata holds."""

import os
import re
from dataclasses import dataclass, field

from ..errors import UserError
from ..io import read_json
from ..train.tracking import read_metrics


@dataclass
class Score:
    """One FID or KID figure with what it was measured on."""
    metric: str            # "fid" | "kid"
    value: float
    n_real: int = None
    n_fake: int = None
    split: str = None      # reference split ("val", "train") when the reference is a shard dataset
    reference: str = None  # what the reference was (a shard dataset path, a folder)
    extractor: str = None
    kimg: float = None     # when the score was logged during training
    std: float = None      # KID's spread over subsets
    origin: str = ""       # where the figure came from (metrics.jsonl, best.json, --scores, --fid)


@dataclass
class RunFacts:
    architecture: dict
    run_dir: str = None
    checkpoint: str = None
    config_text: str = None     # the run's config.yaml as written (the resolved config)
    kimg: float = None
    step: int = None
    train_seconds: float = None  # summed from metrics.jsonl (sec/kimg over each logged interval)
    device: str = None
    dataset_path: str = None
    dataset_kind: str = None
    hub_datasets: list = field(default_factory=list)  # Hub dataset ids the data came from
    scores: list = field(default_factory=list)


def _run_dir_of(weights: str):
    """(run dir or None, checkpoint dir or None) of a G_ema.safetensors inside a run."""
    ckpt_dir = os.path.dirname(os.path.abspath(weights))
    if not os.path.isfile(os.path.join(ckpt_dir, "state.json")):
        return None, None
    run = os.path.dirname(os.path.dirname(ckpt_dir))
    return (run if os.path.isfile(os.path.join(run, "config.yaml")) else None), ckpt_dir


def train_seconds(rows, up_to_kimg: float):
    """Training time up to `up_to_kimg`: sum over logged intervals of (kimg step) x sec/kimg.
    Excludes start-up and evaluation pauses. None when nothing was logged."""
    total, prev, seen = 0.0, 0.0, False
    for r in rows:
        if "sec_per_kimg" not in r or "kimg" not in r or r["kimg"] > up_to_kimg + 1e-9:
            continue
        total += max(0.0, r["kimg"] - prev) * r["sec_per_kimg"]  # a resumed run steps back: adds 0
        prev, seen = r["kimg"], True
    return total if seen else None


def _dataset(path: str, facts: RunFacts) -> None:
    facts.dataset_path = path
    manifest = os.path.join(path, "dataset.json") if path and os.path.isdir(path) else None
    if not manifest or not os.path.isfile(manifest):
        return
    m = read_json(manifest, "manifest")
    facts.dataset_kind = (m.get("source") or {}).get("kind")
    found = re.search(r"\bhf:([\w.-]+/[\w.-]+)", m.get("command") or "")
    if found:
        facts.hub_datasets = [found.group(1)]


def _config_value(text: str, section: str, key: str):
    import yaml

    try:
        return (yaml.safe_load(text) or {}).get(section, {}).get(key)
    except yaml.YAMLError:
        return None


def training_scores(rows, kimg: float, ref: str, best_json: str = None) -> list:
    """FID logged during training for exactly these weights: best.json of a best checkpoint, else a
    metrics.jsonl row at the checkpoint's kimg (the trainer logs FID of the EMA generator)."""
    record = None
    if best_json and os.path.isfile(best_json):
        record, origin = read_json(best_json, "best checkpoint record"), "checkpoints/best/best.json"
    else:
        hits = [r for r in rows if r.get("fid") is not None and kimg is not None and abs(r["kimg"] - kimg) < 1e-6]
        record, origin = (hits[-1], "metrics.jsonl") if hits else (None, "")
    if not record:
        return []
    return [Score("fid", float(record["fid"]), record.get("n_real"), record.get("n_fake"), "val", ref,
                  kimg=record.get("kimg"), origin=origin)]


def scores_from_eval_json(path: str) -> list:
    """Scores from `facegan-eval ... --json FILE`: fid, kid (kid_std), n_real, n_fake, ref, extractor."""
    d = read_json(path, "facegan-eval result")
    if not any(k in d for k in ("fid", "kid")):
        raise UserError(f"{path}: no 'fid' or 'kid' in it (write it with facegan-eval --json)")
    ref, split = d.get("ref"), None
    m = re.match(r"shards (.*):(\w+)$", ref or "")
    if m:
        ref, split = m.group(1), m.group(2)
    elif ref and ref.startswith("folder "):
        ref = ref[len("folder "):]
    common = dict(n_real=d.get("n_real"), n_fake=d.get("n_fake"), split=split, reference=ref,
                  extractor=d.get("extractor"), origin=os.path.basename(path))
    out = []
    if d.get("fid") is not None:
        out.append(Score("fid", float(d["fid"]), **common))
    if d.get("kid") is not None:
        out.append(Score("kid", float(d["kid"]), std=d.get("kid_std"), **common))
    return out


def gather(info: dict, architecture: dict, scores_json: str = None, fid: float = None) -> RunFacts:
    """Facts about the generator load_generator() returned (info: its source and summary)."""
    facts = RunFacts(architecture=architecture)
    summary = info.get("summary") or {}
    facts.kimg, facts.step = summary.get("kimg"), summary.get("step")
    run, ckpt_dir = _run_dir_of(info["source"])
    facts.run_dir, facts.checkpoint = run, ckpt_dir
    rows, ref = [], summary.get("dataset")
    if ckpt_dir:
        state = read_json(os.path.join(ckpt_dir, "state.json"), "checkpoint state")
        facts.device = state.get("device")
    if run:
        with open(os.path.join(run, "config.yaml")) as f:
            facts.config_text = f.read()
        rows = read_metrics(os.path.join(run, "metrics.jsonl"))
        facts.train_seconds = train_seconds(rows, facts.kimg if facts.kimg is not None else float("inf"))
        ref = (_config_value(facts.config_text, "eval", "ref") or _config_value(facts.config_text, "data", "shards")
               or ref)
    _dataset(summary.get("dataset"), facts)
    if scores_json:
        facts.scores = scores_from_eval_json(scores_json)
    elif fid is not None:
        facts.scores = [Score("fid", float(fid), origin="--fid")]
    else:
        best = os.path.join(ckpt_dir, "best.json") if ckpt_dir else None
        facts.scores = training_scores(rows, facts.kimg, ref, best)
        if not facts.scores and summary.get("fid") is not None:
            facts.scores = [Score("fid", float(summary["fid"]), origin="export metadata")]
    return facts

