from .dcgan import Discriminator, DOutput, Generator, init_weights
from .registry import ARCHITECTURES, ArchSpec, architecture, build_generator, build_models, register_architecture

__all__ = ["Generator", "Discriminator", "DOutput", "init_weights", "ARCHITECTURES", "ArchSpec", "architecture",
           "build_generator", "build_models", "register_architecture"]
