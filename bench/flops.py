"""FLOPs of one DCGAN training step, counted from the layers' shapes, and the model FLOPs
utilization (MFU) of a measured rate against the device's peak dense rate.

Only convolutions and transposed convolutions are counted (BatchNorm, activations, losses and
Adam are memory-bound and add well under 1% of the arithmetic), one multiply-add = 2 FLOPs:

    Conv2d:          2 * N * C_out * H_out * W_out * (C_in / groups) * k_h * k_w
    ConvTranspose2d: 2 * N * C_in  * H_in  * W_in  * (C_out / groups) * k_h * k_w

(a transposed conv scatters every input pixel through the whole kernel; PyTorch's
torch.utils.flop_counter.FlopCounterMode counts both the same way, see tests/test_flops.py).

One GANStep (facegan/train/step.py) per image, with F_G and F_D the forward FLOPs:
    D step: G forward (F_G); D forward on real and on fake (2 F_D); D backward on both, input
            and weight gradients (2 x 2 F_D)                                   -> F_G + 6 F_D
    G step: D forward on fake (F_D); D backward for input gradients only, D frozen (F_D);
            G backward, input and weight gradients (2 F_G)                      -> 2 F_G + 2 F_D
    total: 3 F_G + 8 F_D  (the usual "backward = 2x forward" rule, with the frozen D's
            backward at 1x since it skips weight gradients)
"""

import torch
from torch import nn

# Peak dense (no sparsity) bf16 tensor-core rates in TFLOPS, from the vendors' data sheets,
# matched by substring of torch.cuda.get_device_name(); the first match wins.
PEAK_BF16_TFLOPS = [
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A10G", 70.0),  # dense bf16 (the 140 figure is with sparsity)
    ("L40S", 362.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]


def peak_bf16_tflops(device_name: str):
    """Peak dense bf16 TFLOPS for a device name (e.g. 'NVIDIA H200'), or None if not in the table."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def conv_flops(module: nn.Module, x_shape, y_shape) -> int:
    """FLOPs of one forward call of a Conv2d or ConvTranspose2d, from its input and output shapes
    (N, C, H, W); 0 for any other module."""
    k = module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.ConvTranspose2d):
        n, c_in, h, w = x_shape
        return 2 * n * c_in * h * w * (module.out_channels // module.groups) * k
    if isinstance(module, nn.Conv2d):
        n, c_out, h, w = y_shape
        return 2 * n * c_out * h * w * (module.in_channels // module.groups) * k
    return 0


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Conv FLOPs of model(example): one forward, counted with hooks on every conv layer."""
    total = [0]

    def hook(module, inputs, output):
        total[0] += conv_flops(module, tuple(inputs[0].shape), tuple(output.shape))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def step_flops_per_image(model_cfg) -> dict:
    """Forward FLOPs of G and D for one image, and of one whole GANStep per image (see above)."""
    from facegan.models import build_models

    G, D = build_models(model_cfg)
    G.eval(), D.eval()  # BatchNorm in eval mode accepts a batch of one
    r = model_cfg.resolution
    f_g = forward_flops(G, torch.zeros(1, model_cfg.nz, 1, 1))
    f_d = forward_flops(D, torch.zeros(1, 3, r, r))
    return {"G_forward": f_g, "D_forward": f_d, "step": 3 * f_g + 8 * f_d}


def mfu(images_per_s: float, flops_per_image: float, peak_tflops) -> float:
    """Model FLOPs utilization: achieved FLOP/s over the peak (None when the peak is unknown)."""
    if not peak_tflops:
        return None
    return images_per_s * flops_per_image / (peak_tflops * 1e12)
