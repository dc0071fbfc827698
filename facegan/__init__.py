"""facegan: turn a pile of face images into a face generator."""

__version__ = "0.1.0"


def __getattr__(name):
    # `from facegan import FaceGenerator` without making `import facegan` (the trainer) need the
    # app extra (huggingface_hub): imported on first use only.
    if name == "FaceGenerator":
        from .share.model import FaceGenerator

        return FaceGenerator
    raise AttributeError(f"module 'facegan' has no attribute {name!r}")
