"""Turn any decoded image into an RGB square of the target size, and encode it."""

import io

from PIL import Image, ImageOps

CROPS = ("center", "celeba", "none")
FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "npy": "npy", "raw": "npy"}
BACKGROUND = (255, 255, 255)

# Face-centred square used for aligned CelebA (178x218): a 128px box centred at (89, 121),
# the crop of Karras et al. (progressive GAN); scaled proportionally for other sizes.
CELEBA_BOX = (178, 218, 128, 89, 121)


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and bring every mode (L, P, RGBA, CMYK, 16-bit, float) to RGB."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not cost us an otherwise good image
        pass
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np  # here, not at the top: the packer starts a tenth of a second sooner

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def crop_square(img: Image.Image, crop: str) -> Image.Image:
    """Crop to a square: the centre, the CelebA face box, or nothing (then resize squashes)."""
    w, h = img.size
    if crop == "none":
        return img
    if crop == "celeba":
        ref_w, ref_h, side, cx, cy = CELEBA_BOX
        s = min(round(side * w / ref_w), w, h)
        x = round(cx * w / ref_w - s / 2)
        y = round(cy * h / ref_h - s / 2)
        x, y = min(max(x, 0), w - s), min(max(y, 0), h - s)
        return img.crop((x, y, x + s, y + s))
    if crop == "center":
        s = min(w, h)
        x, y = (w - s) // 2, (h - s) // 2
        return img.crop((x, y, x + s, y + s))
    raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize with antialiasing (Lanczos filters over the whole footprint when shrinking)."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.LANCZOS)


def encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    """Encode deterministically: the same pixels and options always give the same bytes."""
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=3)  # measured: 40% faster than 6, 9% larger
    elif fmt == "jpg":
        img.save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "npy":  # raw uint8 HWC in .npy framing: no decode cost, ~2x the bytes of PNG
        import numpy as np

        np.lib.format.write_array(buf, np.asarray(img, dtype=np.uint8), allow_pickle=False)
    elif fmt == "webp":
        img.save(buf, format="WEBP", quality=quality, lossless=quality >= 100, method=4)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()

