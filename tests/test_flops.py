"""The FLOP counter of bench/flops.py against a hand count and against PyTorch's own counter."""

import os
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import flops  # noqa: E402

from facegan.config import ModelConfig  # noqa: E402
from facegan.models import build_models  # noqa: E402


def torch_count(model, x):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def test_hand_count_of_a_conv_and_a_transposed_conv():
    # Conv2d 3->8, k4 s2 p1 on 2x3x16x16: output 2x8x8x8, each output 3*4*4 multiply-adds
    conv = nn.Conv2d(3, 8, 4, 2, 1, bias=False)
    assert flops.forward_flops(conv, torch.zeros(2, 3, 16, 16)) == 2 * (2 * 8 * 8 * 8) * (3 * 16)
    # ConvTranspose2d 5->7, k4 s2 p1 on 3x5x6x6: every input pixel goes through 7*4*4 weights
    convt = nn.ConvTranspose2d(5, 7, 4, 2, 1, bias=False)
    assert flops.forward_flops(convt, torch.zeros(3, 5, 6, 6)) == 2 * (3 * 5 * 6 * 6) * (7 * 16)


@pytest.mark.parametrize("resolution", [32, 64])
def test_dcgan_forward_matches_torch_flop_counter(resolution):
    cfg = ModelConfig(resolution=resolution, ngf=8, ndf=8, nz=16)
    G, D = build_models(cfg)
    G.eval(), D.eval()
    z, x = torch.zeros(2, 16, 1, 1), torch.zeros(2, 3, resolution, resolution)
    assert flops.forward_flops(G, z) == torch_count(G, z) > 0  # counts conv_transpose the same way
    assert flops.forward_flops(D, x) == torch_count(D, x) > 0


def test_step_is_three_g_and_eight_d_forwards_and_the_classic_model_is_about_2_gflop():
    count = flops.step_flops_per_image(ModelConfig(resolution=64, ngf=64, ndf=64))
    assert count["step"] == 3 * count["G_forward"] + 8 * count["D_forward"]
    assert 2.2e9 < count["step"] < 2.4e9  # G and D each about 0.21 GFLOP forward per 64x64 image


def test_peak_table_and_mfu():
    assert flops.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert flops.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert flops.peak_bf16_tflops("NVIDIA H200") == 989.0
    assert flops.peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert flops.peak_bf16_tflops("cpu") is None and flops.mfu(100.0, 1e9, None) is None
    assert flops.mfu(1e5, 2e9, 400.0) == pytest.approx(0.5)
