"""Procedural cartoon faces: the offline default dataset.

Each face is a pure function of (seed, index), so a dataset is reproducible anywhere. Faces vary
in head shape and skin tone, eyes, brows, nose, mouth, hair style and colour, ears, blush,
glasses, hats, beards and background, with a small head tilt: enough structure and variety that
a GAN has something real to learn, while staying recognizably a face.
"""

import random

from PIL import Image, ImageDraw, ImageFilter

from .labels import BINARY, CLASS, LabelField

NATIVE = 256  # drawn at this size; the packer resizes to the target resolution

SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 128), (198, 134, 96), (141, 85, 54),
        (255, 205, 148), (120, 200, 120), (150, 180, 255), (255, 170, 200)]
HAIR = [(20, 20, 20), (70, 40, 20), (140, 80, 30), (230, 200, 90), (200, 60, 30),
        (240, 240, 240), (120, 60, 180), (40, 120, 220), (230, 80, 160), (90, 170, 90)]
IRIS = [(60, 40, 20), (40, 100, 200), (50, 140, 60), (120, 80, 40), (150, 50, 160), (20, 20, 20)]
HAIR_STYLES = ["short", "long", "spiky", "bun", "bald", "mohawk"]
MOUTHS = ["smile", "grin", "flat", "open", "o", "frown"]
# The attributes a face is drawn with, as dataset labels: binary ones 0/1, `hair` and `mouth`
# the index of the style in HAIR_STYLES / MOUTHS.
LABEL_FIELDS = (*(LabelField(name, BINARY) for name in ("glasses", "hat", "beard", "moustache", "blush")),
                LabelField("hair", CLASS, tuple(HAIR_STYLES)), LabelField("mouth", CLASS, tuple(MOUTHS)))


def _jitter(rng, colour, amount=18):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)


def _darker(colour, f=0.7):
    return tuple(int(c * f) for c in colour)


def _background(rng, draw, s):
    top = _jitter(rng, (rng.randint(60, 255), rng.randint(60, 255), rng.randint(60, 255)), 0)
    bottom = _jitter(rng, top, 60)
    for y in range(s):  # vertical gradient
        t = y / (s - 1)
        draw.line([(0, y), (s, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    if rng.random() < 0.3:  # polka dots
        dot = _jitter(rng, top, 50)
        for _ in range(rng.randint(5, 14)):
            x, y, r = rng.randint(0, s), rng.randint(0, s), rng.randint(4, 14)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=dot)


def _hair_back(rng, draw, style, hair, box):
    x0, y0, x1, y1 = box
    w = x1 - x0
    if style == "long":
        draw.rounded_rectangle([x0 - w * 0.12, y0 - w * 0.08, x1 + w * 0.12, y1 + w * 0.25],
                               radius=int(w * 0.4), fill=hair)
    elif style == "bun":
        cx = (x0 + x1) / 2
        r = w * 0.2
        draw.ellipse([cx - r, y0 - r * 1.6, cx + r, y0 + r * 0.4], fill=hair)


def _hair_front(rng, draw, style, hair, box):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if style in ("short", "long", "bun"):
        draw.chord([x0 - 2, y0 - 4, x1 + 2, y0 + h * 0.75], 180, 360, fill=hair)
        if rng.random() < 0.5:  # a fringe
            draw.chord([x0 + w * 0.1, y0 + h * 0.05, x1 - w * 0.3, y0 + h * 0.45], 180, 360, fill=hair)
    elif style == "spiky":
        n = rng.randint(5, 9)
        for i in range(n):
            bx = x0 + w * (i + 0.5) / n
            draw.polygon([(bx - w / n, y0 + h * 0.2), (bx + w / n, y0 + h * 0.2),
                          (bx + rng.uniform(-6, 6), y0 - h * rng.uniform(0.1, 0.25))], fill=hair)
        draw.chord([x0, y0 - 2, x1, y0 + h * 0.5], 180, 360, fill=hair)
    elif style == "mohawk":
        cx = (x0 + x1) / 2
        draw.rounded_rectangle([cx - w * 0.09, y0 - h * 0.2, cx + w * 0.09, y0 + h * 0.3],
                               radius=8, fill=hair)


def _eyes(rng, draw, cx, ey, gap, size, iris):
    kind = rng.choice(["round", "round", "oval", "closed", "wink"])
    for side, ex in ((-1, cx - gap), (1, cx + gap)):
        closed = kind == "closed" or (kind == "wink" and side == 1)
        if closed:
            draw.arc([ex - size, ey - size * 0.6, ex + size, ey + size * 0.6], 200, 340,
                     fill=(30, 20, 20), width=max(2, int(size * 0.25)))
            continue
        ry = size * (1.3 if kind == "oval" else 1.0)
        draw.ellipse([ex - size, ey - ry, ex + size, ey + ry], fill=(250, 250, 250),
                     outline=(30, 20, 20), width=2)
        look = rng.uniform(-0.3, 0.3) * size
        r = size * 0.6
        draw.ellipse([ex - r + look, ey - r, ex + r + look, ey + r], fill=iris)
        r2 = size * 0.3
        draw.ellipse([ex - r2 + look, ey - r2, ex + r2 + look, ey + r2], fill=(10, 10, 10))
        hl = size * 0.15
        draw.ellipse([ex - size * 0.25 + look - hl, ey - size * 0.3 - hl,
                      ex - size * 0.25 + look + hl, ey - size * 0.3 + hl], fill=(255, 255, 255))


def _brows(rng, draw, cx, by, gap, size, colour):
    tilt = rng.uniform(-0.35, 0.35) * size
    width = max(3, int(size * 0.35))
    for side in (-1, 1):
        ex = cx + side * gap
        draw.line([(ex - size, by + side * tilt * 0.5), (ex + size, by - side * tilt * 0.5)],
                  fill=colour, width=width)


def _nose(rng, draw, cx, ny, size, skin):
    kind = rng.choice(["dot", "triangle", "hook", "button"])
    edge = _darker(skin, 0.75)
    if kind == "dot":
        draw.ellipse([cx - size * 0.25, ny - size * 0.2, cx + size * 0.25, ny + size * 0.2], fill=edge)
    elif kind == "triangle":
        draw.polygon([(cx, ny - size), (cx - size * 0.4, ny + size * 0.3), (cx + size * 0.4, ny + size * 0.3)],
                     fill=_darker(skin, 0.88))
    elif kind == "hook":
        draw.arc([cx - size * 0.4, ny - size * 0.6, cx + size * 0.4, ny + size * 0.3], 20, 200, fill=edge, width=3)
    else:
        draw.ellipse([cx - size * 0.45, ny - size * 0.35, cx + size * 0.45, ny + size * 0.35],
                     fill=_darker(skin, 0.9), outline=edge, width=2)


def _mouth(rng, draw, cx, my, width):
    """Draws a mouth; returns its kind."""
    kind = rng.choice(MOUTHS)
    lip = (120, 30, 40)
    if kind == "smile":
        draw.arc([cx - width, my - width * 0.6, cx + width, my + width * 0.5], 20, 160, fill=lip, width=4)
    elif kind == "grin":
        draw.chord([cx - width, my - width * 0.5, cx + width, my + width * 0.6], 0, 180, fill=lip)
        draw.chord([cx - width * 0.8, my - width * 0.4, cx + width * 0.8, my + width * 0.25], 0, 180,
                   fill=(255, 255, 255))
    elif kind == "flat":
        draw.line([(cx - width * 0.7, my), (cx + width * 0.7, my)], fill=lip, width=4)
    elif kind == "open":
        draw.ellipse([cx - width * 0.6, my - width * 0.25, cx + width * 0.6, my + width * 0.45], fill=lip)
        draw.ellipse([cx - width * 0.35, my + width * 0.05, cx + width * 0.35, my + width * 0.4],
                     fill=(230, 90, 100))
    elif kind == "o":
        r = width * 0.3
        draw.ellipse([cx - r, my - r, cx + r, my + r], fill=lip)
    else:
        draw.arc([cx - width, my, cx + width, my + width], 200, 340, fill=lip, width=4)
    return kind


def _accessories(rng, draw, cx, ey, gap, size, box, hair):
    """Draws glasses, a beard or moustache, a hat (each by chance); returns which it drew."""
    x0, y0, x1, y1 = box
    drawn = dict.fromkeys(("glasses", "beard", "moustache", "hat"), 0)
    if rng.random() < 0.25:  # glasses
        drawn["glasses"] = 1
        frame = rng.choice([(20, 20, 20), (160, 30, 30), (200, 170, 40), (40, 40, 160)])
        r = size * 1.6
        square = rng.random() < 0.5
        for ex in (cx - gap, cx + gap):
            shape = draw.rectangle if square else draw.ellipse
            shape([ex - r, ey - r * 0.8, ex + r, ey + r * 0.8], outline=frame, width=4)
        draw.line([(cx - gap + r, ey), (cx + gap - r, ey)], fill=frame, width=4)
    if rng.random() < 0.15:  # beard
        drawn["beard"] = 1
        draw.chord([x0 + 6, y0 + (y1 - y0) * 0.45, x1 - 6, y1 + 6], 0, 180, fill=hair)
    elif rng.random() < 0.12:  # moustache
        drawn["moustache"] = 1
        my = ey + (y1 - y0) * 0.33
        draw.ellipse([cx - size * 2, my - size * 0.35, cx + size * 2, my + size * 0.45], fill=hair)
    if rng.random() < 0.18:  # hat
        drawn["hat"] = 1
        colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        w = x1 - x0
        draw.rectangle([x0 - w * 0.12, y0 + 4, x1 + w * 0.12, y0 + 16], fill=colour)
        draw.rounded_rectangle([x0 + w * 0.12, y0 - w * 0.35, x1 - w * 0.12, y0 + 8], radius=10,
                               fill=colour)
    return drawn


def cartoon_face(index: int, seed: int = 0, size: int = NATIVE, attributes: bool = False):
    """Draw face number `index` of the family `seed`: deterministic for a given pair. With
    attributes=True, returns (image, {attribute: int}) with the attributes it was drawn with
    (LABEL_FIELDS' values); the image is the same either way."""
    rng = random.Random(seed * 1_000_003 + index)
    s = NATIVE
    img = Image.new("RGB", (s, s))
    draw = ImageDraw.Draw(img)
    _background(rng, draw, s)

    skin = _jitter(rng, rng.choice(SKIN))
    hair = _jitter(rng, rng.choice(HAIR))
    fw = s * rng.uniform(0.50, 0.66)
    fh = fw * rng.uniform(1.0, 1.3)
    cx = s / 2 + rng.uniform(-10, 10)
    cy = s * 0.54 + rng.uniform(-8, 8)
    box = (cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2)
    style = rng.choice(HAIR_STYLES)

    _hair_back(rng, draw, style, hair, box)
    ear = fw * 0.12
    for ex in (box[0], box[2]):  # ears behind the face outline
        draw.ellipse([ex - ear, cy - ear * 1.4, ex + ear, cy + ear * 1.2], fill=_darker(skin, 0.93))
    if rng.random() < 0.5:
        draw.ellipse(box, fill=skin, outline=_darker(skin, 0.6), width=3)
    else:
        draw.rounded_rectangle(box, radius=int(fw * rng.uniform(0.25, 0.45)), fill=skin,
                               outline=_darker(skin, 0.6), width=3)

    eye_y = box[1] + fh * rng.uniform(0.42, 0.5)
    gap = fw * rng.uniform(0.17, 0.24)
    eye = fw * rng.uniform(0.07, 0.11)
    blushing = rng.random() < 0.35
    if blushing:
        blush = (255, 120, 140)
        for side in (-1, 1):
            bx, by = cx + side * gap * 1.25, eye_y + eye * 2.6
            draw.ellipse([bx - eye * 1.2, by - eye * 0.6, bx + eye * 1.2, by + eye * 0.6], fill=blush)
    _eyes(rng, draw, cx, eye_y, gap, eye, _jitter(rng, rng.choice(IRIS)))
    _brows(rng, draw, cx, eye_y - eye * rng.uniform(1.6, 2.3), gap, eye * 1.1, _darker(hair, 0.8))
    _nose(rng, draw, cx, eye_y + fh * 0.16, eye * 1.2, skin)
    mouth = _mouth(rng, draw, cx, eye_y + fh * rng.uniform(0.28, 0.34), fw * rng.uniform(0.12, 0.2))
    _hair_front(rng, draw, style, hair, box)
    drawn = _accessories(rng, draw, cx, eye_y, gap, eye, box, _darker(hair, 0.9))

    img = img.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC, fillcolor=img.getpixel((0, 0)))
    img = img.filter(ImageFilter.SMOOTH)
    img = img if size == s else img.resize((size, size), Image.Resampling.LANCZOS)
    if not attributes:
        return img
    drawn.update(blush=int(blushing), hair=HAIR_STYLES.index(style), mouth=MOUTHS.index(mouth))
    return img, drawn
