"""H.264 MP4 from uint8 RGB frames, through imageio-ffmpeg (its wheel ships an ffmpeg binary, so
nothing else is installed). Used by facegan-sample's latent walks and facegan-report's progress video."""

from typing import Iterable, Tuple

import numpy as np

from ..errors import UserError
from ..io import atomic_path

HINT = "install the video extra: pip install 'facegan[video]' (imageio-ffmpeg, which ships ffmpeg)"


def available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def video_size(height: int, width: int, min_side: int = 256) -> Tuple[int, int, int]:
    """(scale, H, W) of the video for frames of height x width: enlarged by the smallest whole
    factor that makes the shorter side at least min_side (nearest neighbour: a 32 px face stays sharp
    instead of a player blurring it), then padded up to even sizes as yuv420p needs."""
    scale = max(1, -(-min_side // min(height, width)))
    return scale, height * scale + (height * scale) % 2, width * scale + (width * scale) % 2


def write_mp4(frames: Iterable[np.ndarray], path: str, fps: float = 12.0, crf: int = 18,
              min_side: int = 256) -> Tuple[int, int, int]:
    """Write frames, each a uint8 (H, W, 3) array of one size, to `path` as H.264 in yuv420p (the
    pixel format every player decodes) at constant quality crf (x264: 0 lossless, 18 visually near
    lossless, 23 its default). Frames are enlarged and padded as video_size says. The file appears
    only when complete (written to a temporary name and renamed).

    Returns (frame count, video height, video width). Raises UserError when imageio-ffmpeg is not
    installed or there are no frames, ValueError on frames that are not uint8 (H, W, 3) or change size.
    """
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError(f"{path}: writing MP4 needs imageio-ffmpeg; {HINT}") from None
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise UserError(f"{path}: no frames to write")
    h, w = first.shape[:2]
    scale, vh, vw = video_size(h, w, min_side)
    count = 0
    with atomic_path(path) as tmp:
        # -f mp4: the temporary name has no .mp4 ending to guess the format from.
        writer = imageio_ffmpeg.write_frames(
            tmp, (vw, vh), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=1, output_params=["-crf", str(int(crf)), "-movflags", "+faststart", "-f", "mp4"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in _chain(first, frames):
                if frame.dtype != np.uint8 or frame.shape != (h, w, 3):
                    raise ValueError(f"frame {count}: expected uint8 ({h}, {w}, 3), got {frame.dtype} {frame.shape}")
                big = frame.repeat(scale, 0).repeat(scale, 1) if scale > 1 else frame
                if big.shape[:2] != (vh, vw):
                    big = np.pad(big, ((0, vh - big.shape[0]), (0, vw - big.shape[1]), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(big))
                count += 1
        finally:
            writer.close()
    return count, vh, vw


def _chain(first, rest):
    yield first
    yield from rest


def read_mp4(path: str) -> Tuple[np.ndarray, dict]:
    """All frames of a video as uint8 (T, H, W, 3) and ffmpeg's metadata (size, fps, codec), for checks."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8), meta
