"""Every config key: its section, type, default, accepted range or values (fields.num, fields.one_of)
and a one-line meaning. The README's key table is checked against this file (tests/test_config.py)."""

import dataclasses
from dataclasses import dataclass, field
from typing import Collection, List, Optional, Union

from ..conditions import CONDITION_KINDS, D_CONDITIONS, G_CONDITIONS
from ..models import ARCHITECTURES
from ..models.dcgan import D_NORMS
from .fields import Range, num, one_of

TRACKERS = ("wandb", "tensorboard")  # the values log.trackers takes (Accelerate's trackers)

# train.loss takes the names in the loss table (facegan.train.losses). That table holds torch code
# and config never imports train/, so the table hands its names over (accept_losses); until it does,
# the built-in losses are the names.
_loss_names: Collection[str] = ("bce", "hinge", "lsgan")


def accept_losses(names: Collection[str]) -> None:
    """Make train.loss accept the names in names, read each time a config is checked: given the loss
    table itself (a dict), a loss registered or removed later counts."""
    global _loss_names
    _loss_names = names


def loss_names() -> tuple:
    """The names train.loss accepts now."""
    return tuple(_loss_names)


@dataclass
class DataConfig:
    shards: str = "shards/cartoon64"  # dataset directory, or shard URLs (brace patterns, pipe:, http)
    workers: int = num(2, ge=0)  # DataLoader worker processes per rank
    max_bad_fraction: float = num(0.01, ge=0, le=1)  # unreadable samples tolerated (a fraction) before the run stops
    stall_s: float = num(120.0, gt=0, unit="seconds")  # a shard stream delivering nothing this long is bad
    flip: bool = True  # random horizontal flips, applied on the device
    device_cache: bool = False  # hold this rank's training images on the device (small datasets)


@dataclass
class ModelConfig:
    arch: str = one_of("dcgan", lambda: tuple(ARCHITECTURES))  # by name, facegan.models.ARCHITECTURES
    resolution: int = 64  # a power of two in 16..512
    nz: int = num(100, ge=1)
    ngf: int = num(64, ge=1)
    ndf: int = num(64, ge=1)
    d_norm: str = one_of("batch", D_NORMS)  # batch (the paper); spectral: spectral norm instead of BatchNorm
    # Conditional GAN on the dataset's labels (facegan-shard --labels): attributes (binary, any mix)
    # or class (one class label); none: unconditional. See facegan.conditions.
    condition: str = one_of("none", CONDITION_KINDS)
    labels: List[str] = field(default_factory=list)  # labels to condition on; []: every binary one / the class one
    # The defaults are the best measured (bench/conditional.py, README "Conditional generation").
    g_condition: str = one_of("cbn", G_CONDITIONS)  # cbn: conditional BatchNorm; embed: embedding joined to z (cGAN)
    d_condition: str = one_of("projection+aux", D_CONDITIONS)  # projection (Miyato & Koyama 2018), concat, aux (AC-GAN), adc (ADC-GAN)


@dataclass
class TrainConfig:
    batch_size: int = num(128, ge=1)  # global, split evenly across processes
    lr_g: float = num(2e-4, gt=0)
    lr_d: float = num(2e-4, gt=0)
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999], metadata={"range": Range(ge=0, lt=1)})
    loss: str = one_of("bce", loss_names)  # bce: non-saturating, the paper's (train.losses)
    augment: str = "none"  # DiffAugment policy for D: none, or a comma list of color, translation, cutout; or ada; or auto (ada below 5000 training images or from 20 passes over them)
    ada_target: float = num(0.6, gt=0, lt=1)  # ADA: the r_t = E[sign(D(real))] that p is steered to (Karras et al. 2020)
    ada_kimg: float = num(500.0, gt=0)  # ADA: p can travel from 0 to 1 in this many kimg
    freeze_d: int = num(0, ge=0)  # FreezeD: D's first this many blocks keep their weights (fine-tuning); 0: none
    r1_gamma: float = num(0.0, ge=0)  # R1 gradient penalty weight on real images; 0: off
    r1_every: int = num(16, ge=1)  # lazy R1: apply the penalty every this many steps (scaled to match)
    aux_weight: float = num(1.0, ge=0)  # conditional D with a classifier head (d_condition *aux, *adc): its loss weight
    fake_labels: str = one_of("data", ("data", "balanced"))  # conditional runs: the fakes' labels, the real batch's or each attribute / class equally often
    total_kimg: float = num(1000.0, gt=0)
    checkpoint_every_kimg: float = num(50.0, ge=0)  # 0: only at the end
    sample_every_kimg: float = num(10.0, ge=0)  # 0: only at the start and the end
    keep_checkpoints: int = num(3, ge=1)
    ema: Union[float, str] = num(10.0, ge=0)  # half-life in kimg (>= 1 or "0.5kimg"), a beta in (0, 1), or 0: off
    ema_rampup: float = num(0.05, ge=0, le=1)  # half-life at most this fraction of the images seen (StyleGAN2-ADA's 0.05); 0: off
    mixed_precision: str = one_of("auto", ("auto", "no", "fp16", "bf16"))
    seed: int = num(0, ge=0)
    sync_batchnorm: bool = False  # SyncBatchNorm on multi-GPU CUDA
    max_steps: int = num(0, ge=0)  # stop after this many steps (0: run to total_kimg); for smoke runs
    channels_last: Union[bool, str] = one_of("auto", ("auto", True, False))  # auto: on, except on MPS (slower)
    compile: bool = False  # torch.compile G and D (first steps slower while it compiles)


@dataclass
class RunConfig:
    dir: str = "runs/demo"
    resume: str = "auto"  # auto | none | PATH to a checkpoint directory
    init: Optional[str] = None  # fine-tune from: a run or checkpoint dir, an export, a Hub folder or repo id


@dataclass
class DistConfig:
    timeout_s: float = num(300.0, gt=0, unit="seconds")  # a collective waiting longer ends the job (a stalled rank)


@dataclass
class LogConfig:
    every_steps: int = num(50, ge=1)  # status line, metrics.jsonl and tracker cadence
    wandb: str = one_of("off", ("off", "offline", "online"))  # not off: adds wandb to log.trackers
    trackers: List[str] = one_of([], TRACKERS)  # any of wandb, tensorboard (Accelerate's trackers)
    project: str = "facegan"  # TensorBoard's folder and wandb's project: a name, not a path
    name: Optional[str] = None  # wandb's run name: a name, not a path


@dataclass
class EvalConfig:
    every_kimg: float = num(0.0, ge=0)  # FID during training; 0: off
    n: int = num(5000, ge=2)  # generated images per evaluation
    ref: Optional[str] = None  # reference shards (default: data.shards, val split)
    inception_weights: Optional[str] = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def declared_fields(cfg: Config):
    """(dotted key, field, value) of every config key."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        for f in dataclasses.fields(sub):
            yield f"{section.name}.{f.name}", f, getattr(sub, f.name)
