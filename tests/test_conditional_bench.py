"""bench/conditional.py's bookkeeping and its judge (bench/attr_judge.py): the attribute-match
protocols, the data's combination rates and the README table (the GAN runs themselves take tens
of minutes; these use stand-in networks whose answers are known)."""

import pytest
import torch
from torch import nn

from conftest import load_bench
from facegan.data.labels import LabelField
from facegan.conditions import Condition

ATTRS = Condition("attributes", tuple(LabelField(n, "binary") for n in ("glasses", "hat", "beard")))


@pytest.fixture(scope="module")
def bench():
    return load_bench("conditional")


@pytest.fixture(scope="module")
def judge():
    return load_bench("attr_judge")


class PaintsLabels(nn.Module):
    """A 'generator' that paints attribute i as pixel (0, i) bright or dark: it always draws what
    it is asked (obeys=True), or draws nothing whatever it is asked (obeys=False)."""

    def __init__(self, obeys: bool, bank_rate: float = 0.2):
        super().__init__()
        self.condition, self.nz, self.obeys = ATTRS, 4, obeys
        self.scale = nn.Parameter(torch.ones(()))
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("label_bank", torch.where(torch.rand(256, 3, generator=gen) < bank_rate, 1.0, -1.0))
        self.seen = []

    def forward(self, z, c):
        self.seen.append(c.clone())
        x = -torch.ones(len(z), 3, 8, 8)
        if self.obeys:
            x[:, 0, 0, :3] = c * self.scale
        return x


class ReadsPixels(nn.Module):
    """The matching 'classifier': logit i is pixel (0, i) of the first channel."""

    def forward(self, x):
        return x[:, 0, 0, :3]


def test_an_obedient_generator_matches_everything(bench):
    got = bench.attribute_match(PaintsLabels(obeys=True), ReadsPixels(), 400, seed=0)
    for protocol in ("one_at_a_time", "all_at_once"):
        for name in ATTRS.names:
            assert got[protocol][name] == {"match": 1.0, "match_on": 1.0, "match_off": 1.0}
    combos = got["all_at_once_by_combination"]
    assert len(combos) == 8 and sum(v["n"] for v in combos.values()) == 400
    assert all(v["glasses"] == 1.0 for v in combos.values())


def test_a_generator_that_ignores_the_request_scores_about_half(bench):
    G = PaintsLabels(obeys=False)
    got = bench.attribute_match(G, ReadsPixels(), 1000, seed=0)
    for protocol in ("one_at_a_time", "all_at_once"):
        for name in ATTRS.names:
            m = got[protocol][name]
            assert 0.45 < m["match"] < 0.55 and m["match_on"] == 0.0 and m["match_off"] == 1.0
    # one at a time: the attribute asked is on half the time, the others keep the bank's rate (20%)
    first = G.seen[0]  # glasses asked, hat and beard from the bank
    assert 0.45 < (first[:, 0] > 0).float().mean() < 0.55
    assert 0.15 < (first[:, 1:] > 0).float().mean() < 0.25


def test_combination_rates_of_the_data(bench):
    labels = torch.tensor([[1.0, -1.0], [1.0, -1.0], [-1.0, -1.0], [1.0, 1.0]])
    rates = bench.combination_rates(labels, ["glasses", "hat"])
    assert rates == {"glasses=0,hat=0": 0.25, "glasses=1,hat=0": 0.5, "glasses=1,hat=1": 0.25}


def test_table_shows_both_protocols_and_keeps_older_rows_readable(bench):
    m = {"match": 0.9, "match_on": 0.8, "match_off": 1.0}
    result = {"machine": {"device": "cpu", "cpu": "x", "cores": 2}, "kimg": 200, "n": 1000, "seed": 0,
              "data": "d", "config": "c", "attributes": ["glasses"], "classifier_seed": 0, "classifier_aug": "flip",
              "classifier_val_accuracy": {"glasses": 0.99},
              "variants": {"new": {"what": "w", "match_one": {"glasses": m},
                                   "match": {"glasses": dict(m, match=0.7)}, "fid": 90.0, "kid": 0.07,
                                   "train_wall_s": None},
                           "uncond": {"what": "u", "fid": 95.0, "kid": 0.08, "train_wall_s": 300.0}}}
    table = bench.markdown(result)
    assert "all at once: glasses" in table and "one attribute asked at a time" in table
    assert "| new | w | 90.0% (80 / 100) | 70% | 90.00 | 70.0 | - |" in table
    assert "| uncond | u | - | - | 95.00 | 80.0 | 300 s |" in table
    older = dict(result, variants={"old": {"what": "w", "match": {"glasses": m}, "fid": 90.0, "kid": 0.07,
                                           "train_wall_s": 10.0}})
    table = bench.markdown(older)
    assert "all at once" not in table and "| old | w | 90.0% (80 / 100) | 90.00 | 70.0 | 10 s |" in table


def test_panel_lines_up_judges_and_the_unconditional_model_with_the_same_networks(bench):
    def result(judge, seed, glasses, fid_cond, fid_uncond):
        m = {"match": glasses, "match_on": glasses, "match_off": 1.0}
        return {"seed": seed, "classifier_seed": judge, "classifier_aug": "flip", "attributes": ["glasses"],
                "variants": {"cond-cbn-aux-ngf64": {"match_one": {"glasses": m}, "fid": fid_cond},
                             "uncond-ngf64g": {"fid": fid_uncond}, "uncond": {"fid": 1.0}}}

    table = bench.panel([result(0, 0, 0.9, 90.0, 100.0), result(2, 0, 0.85, 90.0, 100.0),
                         result(0, 1, 0.95, 99.0, 90.0)])
    assert "| model | seed | glasses, judges 0 / 2 | lowest | FID | FID / unconditional |" in table
    assert "| cond-cbn-aux-ngf64 | 0 | 90.0 / 85.0 | 85.0% | 90.00 | 0.90x |" in table
    assert "| cond-cbn-aux-ngf64 | 1 | 95.0 / - | 95.0% | 99.00 | 1.10x |" in table
    assert "uncond" not in table.split("\n", 2)[2]  # unconditional models are only the FID baseline
    assert bench.baseline("cond-cbn-aux") == "uncond" and bench.baseline("cond-cbn-aux3-ngf64") == "uncond-ngf64g"


def test_the_degrade_judge_sees_soft_noisy_images_and_the_panel_names_it(bench, judge):
    gen = torch.Generator().manual_seed(0)
    x = -torch.ones(64, 3, 16, 16)
    x[:, :, 8, :] = 1.0  # a one-pixel line, like a glasses frame at 32x32
    y = judge.degrade(x, gen)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    peak = y[:, 0, 8, 4:12].mean(1)
    assert (peak < 0.9).any() and (peak > 0.9).any()  # some lines softened, some kept
    assert not torch.equal(y, x) and torch.equal(x[:, :, 8, 0], torch.ones(64, 3))  # the input is left alone
    assert judge.judge_name(0, "flip") == "0" and judge.judge_name(2, "degrade") == "d2"

    m = {"match": 0.9, "match_on": 0.8, "match_off": 1.0}
    row = {"match_one": {"glasses": m}, "fid": 90.0}
    results = [{"seed": 0, "classifier_seed": s, "classifier_aug": aug, "attributes": ["glasses"],
                "variants": {"cond-cbn-aux": row}} for s, aug in ((1, "degrade"), (0, "flip"), (0, "degrade"))]
    table = bench.panel(results)
    assert "glasses, judges 0 / d0 / d1 |" in table


def test_committed_results_are_in_the_current_format(bench):
    """Every conditional result in bench/results names its judge and shared overrides (no defaults
    filled in on reading), and its table and the panel print."""
    import glob
    import json
    import os

    from conftest import ROOT

    paths = sorted(glob.glob(os.path.join(ROOT, "bench", "results", "conditional*.json"))
                   + glob.glob(os.path.join(ROOT, "bench", "results", "conditional-recipe", "*.json")))
    assert paths
    for path in paths:
        result = json.load(open(path))
        assert all(k in result for k in ("set", "classifier_seed", "classifier_aug")), path
        assert "| model | G / D conditioning |" in bench.markdown(result)
    recipe = [json.load(open(p)) for p in paths if "conditional-recipe" in p]
    assert "judges 0 / 1 / 2 / d0 / d1 / d2" in bench.panel(recipe)
