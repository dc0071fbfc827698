import numpy as np
import pytest
from PIL import Image

from facegan.data import transforms
from facegan.data.decode import decode_hwc


def test_modes_become_rgb():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    assert transforms.to_rgb(rgba).getpixel((0, 0)) == transforms.BACKGROUND
    assert transforms.to_rgb(Image.new("L", (5, 5), 128)).getpixel((0, 0)) == (128, 128, 128)
    assert transforms.to_rgb(Image.new("CMYK", (5, 5), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new("P", (5, 5), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    assert transforms.to_rgb(pal).getpixel((0, 0)) == (10, 20, 30)
    sixteen = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert transforms.to_rgb(sixteen).getpixel((0, 0)) == (255, 255, 255)
    half = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert transforms.to_rgb(half).getpixel((0, 0))[0] == 128


def test_exif_orientation_applied():
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert transforms.to_rgb(Image.open(io.BytesIO(buf.getvalue()))).size == (10, 20)


@pytest.mark.parametrize("crop", ["center", "celeba", "none"])
@pytest.mark.parametrize("size", [8, 37, 64, 1024])
def test_crop_resize_any_size(crop, size):
    img = Image.new("RGB", (178, 218), (1, 2, 3))
    out = transforms.resize_square(transforms.crop_square(img, crop), size)
    assert out.size == (size, size) and out.mode == "RGB"


def test_celeba_crop_is_face_centred_square():
    img = Image.new("RGB", (178, 218))
    box = transforms.crop_square(img, "celeba")
    assert box.size == (128, 128)


def test_resize_is_antialiased():
    # A one-pixel checkerboard shrunk 8x must average to grey, not alias to black or white.
    arr = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)
    small = np.asarray(transforms.resize_square(Image.fromarray(arr).convert("RGB"), 32))
    assert abs(small.mean() - 127.5) < 3 and small.std() < 5


def test_encode_is_deterministic_and_decodes():
    img = Image.new("RGB", (16, 16), (9, 99, 199))
    for fmt in ("png", "jpg", "webp"):
        a, b = transforms.encode(img, fmt, 95), transforms.encode(img, fmt, 95)
        assert a == b
        assert decode_hwc(a).shape == (16, 16, 3)
