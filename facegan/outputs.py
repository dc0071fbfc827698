"""Output files named by the user (facegan-sample, facegan-export): one set of rules for every tool.

- The format follows the extension; an extension the tool cannot write is one line naming the
  ones it can.
- A directory given as a file path is one line; missing parent directories are created.
- An existing file is replaced only when facegan wrote it for the same purpose (a re-run writing
  the same output: images carry `Software: facegan`, exports their facegan format in the
  safetensors metadata) or with --overwrite. Anything else is refused, before any work is done.
- Every file is written through facegan.io.atomic_path: never half a file, umask permissions.
"""

import os
from typing import Callable, Sequence, Tuple

import torch
from PIL import Image

from .errors import UserError
from .io import atomic_path
from .sampling import to_pil

SOFTWARE = "facegan"
GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
ANIMATION_FORMATS = {".gif": "GIF"}
VIDEO_FORMATS = {".mp4": "MP4"}  # H.264 through facegan.eval.video (imageio-ffmpeg)
_EXIF_SOFTWARE = 0x0131  # the TIFF/EXIF "Software" tag


def image_format(path: str, formats: dict, what: str) -> str:
    """The PIL format name for path's extension, or UserError naming the extensions `what` takes."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats:
        raise UserError(f"{path}: {what} is written as {', '.join(sorted(formats))}, not "
                        f"'{ext or '(no extension)'}'")
    return formats[ext]


def check_output(path: str, overwrite: bool, ours: Callable[[str], bool], what: str = "an image facegan wrote") -> None:
    """Refuse (UserError) a directory given as a file, or an existing file that `ours` does not
    recognise as this tool's own earlier output, unless overwrite."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected a file path")
    if os.path.lexists(path) and not overwrite and not ours(path):
        raise UserError(f"{path}: exists and is not {what}; pass --overwrite to replace it")


def is_facegan_image(path: str) -> bool:
    """Whether `path` is an image facegan wrote (its Software marker), read from the header only."""
    try:
        with Image.open(path) as im:
            marks = [im.info.get("Software"), im.info.get("comment")]
            try:
                marks.append(im.getexif().get(_EXIF_SOFTWARE))
            except Exception:
                pass
    except Exception:
        return False
    return any((m.decode(errors="replace") if isinstance(m, bytes) else m) == SOFTWARE for m in marks if m)


def _marked(fmt: str) -> dict:
    """PIL save options that record SOFTWARE in each format's own metadata field."""
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Software", SOFTWARE)
        return {"pnginfo": info, "compress_level": 6}
    if fmt == "GIF":
        return {"comment": SOFTWARE}
    exif = Image.Exif()
    exif[_EXIF_SOFTWARE] = SOFTWARE
    return {"exif": exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {"quality": 95})}


def save_image(image_uint8: torch.Tensor, path: str) -> None:
    """One (3, H, W) uint8 image in the format of path's extension (GRID_FORMATS), atomically."""
    fmt = image_format(path, GRID_FORMATS, "an image")
    with atomic_path(path) as tmp:
        to_pil(image_uint8).save(tmp, format=fmt, **_marked(fmt))


def save_animation(frames_uint8: Sequence[torch.Tensor], path: str, frame_ms: int = 80) -> None:
    """(3, H, W) uint8 frames as a looping animation (ANIMATION_FORMATS), atomically."""
    fmt = image_format(path, ANIMATION_FORMATS, "an animation")
    pics = [to_pil(f) for f in frames_uint8]
    with atomic_path(path) as tmp:
        pics[0].save(tmp, format=fmt, save_all=True, append_images=pics[1:], duration=frame_ms, loop=0,
                     **_marked(fmt))


def save_video(frames_uint8: torch.Tensor, path: str, fps: float = 12.0) -> Tuple[int, int, int]:
    """uint8 (T, 3, H, W) frames as H.264 (VIDEO_FORMATS) through facegan.eval.video.write_mp4,
    atomically; returns (frame count, video height, video width). UserError without imageio-ffmpeg."""
    from .eval.video import write_mp4

    image_format(path, VIDEO_FORMATS, "a video")
    return write_mp4(iter(frames_uint8.permute(0, 2, 3, 1).numpy()), path, fps=fps)
