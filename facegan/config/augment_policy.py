"""The text of train.augment: none, a comma list of DiffAugment policies, ada, or auto (ada below
SMALL_DATASET training images or from LONG_RUN_PASSES passes over them, none otherwise). Text only,
so the config can check it without the augmentation code (facegan.train.augment, which applies it)."""

POLICIES = ("color", "translation", "cutout")  # DiffAugment's (Zhao et al. 2020)
ADA = "ada"  # adaptive augmentation (facegan.train.ada), never combined with POLICIES
AUTO = "auto"  # ADA on a small training set, nothing on a large one: resolved once the data is counted
# Training images below which a run is "small": auto turns ADA on and the trainer says so. Measured
# (README "Small datasets"): at 500 to 1k images ADA gave about 0.2x (a source facegan did not make)
# and 0.8x (facegan's cartoons) the FID of no augmentation at 400 kimg.
SMALL_DATASET = 5000
# Passes over the training set (total_kimg * 1000 / images) from which auto turns ADA on at any size:
# D overfits large sets too when it sees each image long enough (10k avatars at 400 kimg, 40 passes:
# FID 164.7 without ADA, 50.2 with it). Shorter runs keep the speed (ADA halves img/s on a CPU):
# the demo's 120 kimg on 9k images is 13 passes.
LONG_RUN_PASSES = 20


def parse_policy(text: str) -> tuple:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); 'none' or '' -> ();
    'ada' -> ('ada',); 'auto' -> ('auto',). ValueError for an unknown name, or ada or auto among
    other names."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return ()
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    for alone in (ADA, AUTO):
        if alone in names and len(names) > 1:
            raise ValueError(f"{alone} chooses its own augmentations; give it alone (train.augment={alone})")
    if names in ((ADA,), (AUTO,)):
        return names
    if "none" in names or "off" in names:
        raise ValueError("none means no augmentation; give it alone (train.augment=none)")
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(bad)}; choose from {', '.join(POLICIES)}, ada, auto or none")
    return names


def resolve_auto(text: str, images, kimg: float = None) -> tuple:
    """train.augment as the run will use it: `auto` becomes `ada` for fewer than SMALL_DATASET
    training images, or when a budget of `kimg` thousand images shows each of them LONG_RUN_PASSES
    times or more, and `none` otherwise (or when the count is unknown: a `pipe:` source without a
    manifest); anything else is kept. Returns (augment, a note saying what auto chose and why, or
    None where the trainer's small-dataset note says it)."""
    if parse_policy(text) != (AUTO,):
        return text, None
    if images is None:
        return "none", ("note: train.augment=auto: none (the number of training images is unknown); "
                        "train.augment=ada turns adaptive augmentation on")
    if images < SMALL_DATASET:
        return ADA, None
    rule = f"ADA turns on below {SMALL_DATASET} images or from {LONG_RUN_PASSES} passes over them"
    if not kimg:
        return "none", f"note: train.augment=auto: none ({images} training images; {rule})"
    passes = kimg * 1000 / images
    seen = f"{images} training images, each seen about {passes:.1f} times in {kimg:g} kimg"
    if passes >= LONG_RUN_PASSES:
        return ADA, f"note: train.augment=auto: ada ({seen}: long enough for D to overfit them; {rule})"
    return "none", f"note: train.augment=auto: none ({seen}; {rule})"
