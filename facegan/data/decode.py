"""Shard bytes -> (H, W, 3) uint8 arrays, where no input can crash the process.

torchvision's C decoders are the fastest here (JPEG 2-3x PIL's speed), but its PNG decoder ends
the process with a segmentation fault on a damaged PNG (libpng's error path: one bit flipped
in the image data is enough). So PNGs are decoded by PIL, which raises on damage; a gate in
front of torchvision that re-checks CRCs and inflates the stream first cost more than PIL's
decode at 64x64 and up. JPEG and WebP went through thousands of random bit flips and cuts in
torchvision without a crash (tests/test_damaged_shards.py keeps them going through it).

Images stay height-width-channel until a whole batch is stacked (one copy per image): the
batch is then handed over as an (N, 3, H, W) view in channels_last memory, which is the layout
the trainer uses anyway.
"""

import functools
import io
import struct

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
NPY_MAX_HEADER = 10_000  # numpy's own limit for headers it parses without being told otherwise


def _npy_header_span(data: bytes) -> int:
    """Where a .npy header ends (its length field is 2 bytes in version 1, 4 in version 2)."""
    version = data[6:8]
    if version == b"\x01\x00":
        end = 10 + struct.unpack("<H", data[8:10])[0]
    elif version == b"\x02\x00" and len(data) >= 12:
        end = 12 + struct.unpack("<I", data[8:12])[0]
    else:
        raise ValueError(f"unsupported .npy version {tuple(version)}")
    if end > NPY_MAX_HEADER or end > len(data):
        raise ValueError(f".npy header of {end} bytes is too long or cut off")
    return end


@functools.lru_cache(maxsize=64)
def _npy_layout(header: bytes):
    """(shape, fortran_order, dtype) of a .npy header. numpy parses the header's dict with
    ast.literal_eval (never pickle); a shard repeats one header for every sample, so it is
    parsed once instead of twice per image (that was half the cost of loading raw shards)."""
    stream = io.BytesIO(header)
    major, _ = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(stream)


def _npy_hwc(data: bytes) -> np.ndarray:
    end = _npy_header_span(data)
    shape, fortran, dtype = _npy_layout(bytes(data[:end]))
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"raw image array has shape {shape} and dtype {dtype}, expected (H, W, 3) uint8")
    count = shape[0] * shape[1] * 3
    if len(data) - end != count:
        raise ValueError(f"raw image array holds {len(data) - end} bytes, its header says {count}")
    flat = np.frombuffer(data, dtype=np.uint8, count=count, offset=end)
    return flat.reshape(shape, order="F" if fortran else "C")


# JPEG start-of-frame markers (they carry the size); C4, C8 and CC are other segments.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes):
    """(width, height) from a JPEG's frame header, or None where the segments do not lead to
    one (PIL then reads the file). Each step moves forward, so any bytes end the loop; PIL's
    full header parse costs as much as torchvision's whole decode of a 64x64 JPEG."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            pos += 2
            continue
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def image_size(data: bytes):
    """(width, height) from the header alone: nothing is decoded (or allocated) before the size
    is known to be right, so a sample that claims a huge image costs nothing."""
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(data)
        if size is not None:
            return size
    if data[:6] == NPY_MAGIC:
        shape = _npy_layout(bytes(data[:_npy_header_span(data)]))[0]
        return (shape[1], shape[0]) if len(shape) >= 2 else (0, 0)
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def decode_hwc(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 from PNG, JPEG, WebP, raw .npy (never pickled) or anything PIL reads.
    The array may be a read-only view: stack it (decoded_batch) before writing to it."""
    if data[:6] == NPY_MAGIC:
        return _npy_hwc(data)
    if data[:8] == PNG_SIGNATURE:
        return _pil_hwc(data)
    try:
        chw = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError:
        return _pil_hwc(data)
    return chw.permute(1, 2, 0).numpy()


def _pil_hwc(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # raises on a damaged file
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def decoded_batch(images) -> torch.Tensor:
    """(H, W, 3) arrays -> one uint8 (N, 3, H, W) tensor, channels_last in memory."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
