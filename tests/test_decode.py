"""Shard image decoding: every format gives the same pixels as PIL, sizes come from headers."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import face_like
from facegan.data.decode import decode_hwc, decoded_batch, image_size


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    if fmt == "NPY":
        np.lib.format.write_array(buf, np.asarray(img), allow_pickle=False, **kw)
    else:
        img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("NPY", {}), ("NPY", {"version": (2, 0)}), ("WEBP", {"lossless": True}),
                                    ("JPEG", {"quality": 95}), ("BMP", {})])
def test_pixels_match_pil(fmt, kw):
    img = face_like(7, size=(40, 24))
    data = encode(img, fmt, **kw)
    out = decode_hwc(data)
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert image_size(data) == (40, 24)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) if fmt != "NPY" else np.asarray(img)
    if fmt == "JPEG":  # libjpeg-turbo in torchvision vs PIL's: the same decoder, maybe other IDCT
        assert np.abs(out.astype(int) - expected).mean() < 1.0
    else:
        assert np.array_equal(out, expected)


@pytest.mark.parametrize("mode,kw", [("RGB", {"progressive": True}), ("L", {}), ("CMYK", {}),
                                     ("RGB", {"exif": Image.Exif(), "quality": 50}), ("RGB", {"subsampling": 2})])
def test_jpeg_size_from_the_frame_header(mode, kw):
    img = face_like(3, size=(50, 30)).convert(mode)
    if "exif" in kw:  # an APP1 segment with a thumbnail-sized payload before the frame header
        kw["exif"][0x010E] = "x" * 3000
    data = encode(img, "JPEG", **kw)
    assert image_size(data) == (50, 30)
    assert decode_hwc(data).shape == (30, 50, 3)


def test_jpeg_without_a_frame_header_falls_back_to_pil():
    with pytest.raises(Exception):
        image_size(b"\xff\xd8\xff" + b"\x00" * 40)


def test_raw_arrays_of_the_wrong_shape_or_length_are_refused():
    for arr in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError, match="expected \\(H, W, 3\\) uint8"):
            decode_hwc(encode(arr, "NPY"))
    good = encode(np.zeros((4, 4, 3), np.uint8), "NPY")
    with pytest.raises(ValueError, match="holds 47 bytes, its header says 48"):
        decode_hwc(good[:-1])
    with pytest.raises(ValueError, match="unsupported .npy version"):
        decode_hwc(good[:6] + b"\x09\x00" + good[8:])
    with pytest.raises(ValueError, match="too long or cut off"):
        decode_hwc(good[:8] + b"\xff\xff" + good[10:])


def test_fortran_ordered_raw_arrays_decode_to_the_same_pixels():
    arr = np.asarray(face_like(2, size=(8, 6)))
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asfortranarray(arr), allow_pickle=False)
    assert np.array_equal(decode_hwc(buf.getvalue()), arr)


def test_batches_are_nchw_views_in_channels_last_memory():
    imgs = [np.asarray(face_like(i, size=(8, 6))) for i in range(3)]
    batch = decoded_batch(imgs)
    assert batch.shape == (3, 3, 6, 8) and batch.dtype == torch.uint8
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch[1], torch.from_numpy(imgs[1].copy()).permute(2, 0, 1))
