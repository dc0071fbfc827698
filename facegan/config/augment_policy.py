"""The text of train.augment: none, a comma list of DiffAugment policies, ada, or auto (ada below
SMALL_DATASET training images, none from there). Text only, so the config can check it without the
augmentation code (facegan.train.augment, which applies it)."""

POLICIES = ("color", "translation", "cutout")  # DiffAugment's (Zhao et al. 2020)
ADA = "ada"  # adaptive augmentation (facegan.train.ada), never combined with POLICIES
AUTO = "auto"  # ADA on a small training set, nothing on a large one: resolved once the data is counted
# Training images below which a run is "small": auto turns ADA on and the trainer says so. Measured
# (README "Small datasets"): at 1k images ADA gave 0.18x (a source facegan did not make) and 0.81x
# (facegan's cartoons) the FID of no augmentation at 400 kimg; at 10k it is not needed.
SMALL_DATASET = 5000


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


def resolve_auto(text: str, images) -> tuple:
    """train.augment as the run will use it: `auto` becomes `ada` for fewer than SMALL_DATASET
    training images and `none` otherwise (or when the count is unknown: a `pipe:` source without a
    manifest); anything else is kept. Returns (augment, a note when auto chose none, else None: the
    trainer's small-dataset note says when it chose ada)."""
    if parse_policy(text) != (AUTO,):
        return text, None
    if images is None:
        return "none", ("note: train.augment=auto: none (the number of training images is unknown); "
                        "train.augment=ada turns adaptive augmentation on")
    if images < SMALL_DATASET:
        return ADA, None
    return "none", (f"note: train.augment=auto: none ({images} training images; ADA turns on below "
                    f"{SMALL_DATASET})")
