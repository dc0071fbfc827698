"""Reading one packer input safely: its bytes, then its first frame, inside set limits.

Whatever a pile of images holds (a FIFO named face.png, a 100000x100000 PNG of a few kilobytes,
a 2 GB file, an HTML page saved as .jpg, an animated GIF), each input is either decoded to one
PIL image or refused with a Skip whose reason reads "category: detail" (the summary counts by
category). Memory per worker stays under about max_file_mb + 4 bytes x max_pixels.
"""

import io
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 64_000_000  # decoded pixels (width x height) of one image
    max_bytes: int = 512 << 20  # size of one input file or archive member
    min_side: int = 0  # images whose short side is smaller are skipped (0: keep all)


class Skip(Exception):
    """This input is not packed; str() is the reason."""


def _too_big(nbytes: int, limits: Limits) -> Skip:
    return Skip(f"file too large: {nbytes / 2**20:.0f} MB, over --max-file-mb {limits.max_bytes >> 20}")


def read_file(path: str, limits: Limits) -> bytes:
    """A regular file's bytes. Opened without blocking, so a FIFO or a device is refused
    instead of hanging the packer; a directory or a dangling link is refused by name."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise Skip("unreadable: permission denied") from None
    except FileNotFoundError:
        raise Skip("unreadable: no such file (removed, or a dangling link)") from None
    except IsADirectoryError:
        raise Skip("unreadable: a directory") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Skip("unreadable: not a regular file (a directory, FIFO, socket or device)")
        if st.st_size > limits.max_bytes:
            raise _too_big(st.st_size, limits)
        return f.read(limits.max_bytes + 1)


def read_zip_member(archive: zipfile.ZipFile, member: str, limits: Limits) -> bytes:
    info = archive.getinfo(member)
    if info.file_size > limits.max_bytes:  # zipfile stops at the declared size and checks the CRC
        raise _too_big(info.file_size, limits)
    return archive.read(info)


def open_image(data: bytes, limits: Limits, min_side: int = 0):  # -> (image, size as stored)
    """Decode the first frame of an image, whatever its extension claims.

    The pixel limit is checked on the header, before any pixel is decoded. For JPEGs, min_side
    lets the decoder scale down in the DCT domain (1/2, 1/4, 1/8) while the short side stays
    >= min_side: a large share of packing time, and a 100 MP photo then decodes at a few MP."""
    if not data:
        raise Skip("empty file")
    if len(data) > limits.max_bytes:
        raise _too_big(len(data), limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        default_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # ours applies instead
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise Skip("not an image: no decoder recognises its bytes") from None
        finally:
            Image.MAX_IMAGE_PIXELS = default_limit
    original = img.size
    w, h = original
    if w < 1 or h < 1:
        raise Skip(f"image has no pixels: {w}x{h}")
    if min(w, h) < limits.min_side:
        raise Skip(f"too small: {w}x{h}, under --min-side {limits.min_side}")
    if min_side and img.format == "JPEG":
        scale = min_side / min(w, h)
        if scale < 0.5:
            img.draft("RGB", (max(1, int(w * scale + 0.999)), max(1, int(h * scale + 0.999))))
    dw, dh = img.size  # after any draft scaling: what decoding will allocate
    if dw * dh > limits.max_pixels:
        raise Skip(f"too large: {w}x{h} ({w * h / 1e6:.0f} MP), over --max-megapixels "
                   f"{limits.max_pixels / 1e6:g}")
    img.load()  # decode now (the first frame of a GIF or TIFF), so damage is caught here
    return img, original
