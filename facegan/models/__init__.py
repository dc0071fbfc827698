from .dcgan import Discriminator, Generator, architecture, build_models, init_weights

__all__ = ["Generator", "Discriminator", "architecture", "build_models", "init_weights"]
