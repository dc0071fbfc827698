"""facegan: turn a pile of face images into a face generator."""

__version__ = "0.1.0"
