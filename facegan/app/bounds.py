"""Every value a visitor sends to the app, bounded: whatever arrives (a number of any size, a
negative one, NaN, text, a list, nothing) becomes a value inside its range, with a note saying what
was changed, so no request can ask the machine for more than one bounded piece of work."""

import math

MAX_COUNT = 64          # images in one grid
MAX_FRAMES = 32         # frames in one interpolation
SEED_RANGE = 2 ** 31    # seeds are 0 .. 2**31 - 1; others are reduced modulo this
PSI_MIN, PSI_MAX = 0.05, 1.0
MAX_TEXT = 64           # characters of a number sent as text that we try to read


def _number(value, name: str, default, notes: list):
    """A finite float or int from what was sent, else `default` with a note."""
    if isinstance(value, bool) or value is None:
        notes.append(f"{name}: no number given, used {default}")
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        notes.append(f"{name}: {value} is not a finite number, used {default}")
        return default
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= MAX_TEXT:
            try:
                return int(text)
            except ValueError:
                try:
                    f = float(text)
                    if math.isfinite(f):
                        return f
                except ValueError:
                    pass
        shown = text[:20] + ("..." if len(text) > 20 else "")
        notes.append(f"{name}: '{shown}' is not a number, used {default}")
        return default
    notes.append(f"{name}: a {type(value).__name__} is not a number, used {default}")
    return default


def bounded_int(value, name: str, lo: int, hi: int, default: int, notes: list) -> int:
    """An int in [lo, hi]: fractions rounded down, values outside clamped (with a note)."""
    v = _number(value, name, default, notes)
    v_int = math.floor(v) if isinstance(v, float) else v
    if v_int < lo or v_int > hi:
        clamped = min(max(v_int, lo), hi)
        notes.append(f"{name}: {_short(v_int)} is outside {lo}..{hi}, used {clamped}")
        return clamped
    return int(v_int)


def seed(value, notes: list, name: str = "seed") -> int:
    """A seed in 0 .. 2**31 - 1: an integer outside is reduced modulo 2**31 (so every integer,
    however large or negative, names one seed), with a note."""
    v = _number(value, name, 0, notes)
    v_int = math.floor(v) if isinstance(v, float) else v
    if not 0 <= v_int < SEED_RANGE:
        reduced = v_int % SEED_RANGE
        notes.append(f"{name}: {_short(v_int)} is outside 0..{SEED_RANGE - 1}, used {reduced} (modulo 2**31)")
        return reduced
    return int(v_int)


def truncation(value, notes: list) -> float:
    """psi in [0.05, 1] (see facegan.sampling.latents)."""
    v = float(_number(value, "truncation", 1.0, notes))
    if not PSI_MIN <= v <= PSI_MAX:
        clamped = min(max(v, PSI_MIN), PSI_MAX)
        notes.append(f"truncation: {_short(v)} is outside {PSI_MIN:g}..{PSI_MAX:g}, used {clamped:g}")
        return clamped
    return v


def _short(v) -> str:
    text = f"{v:g}" if isinstance(v, float) else str(v)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"
