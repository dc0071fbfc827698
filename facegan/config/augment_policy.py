"""The text of train.augment: none, a comma list of DiffAugment policies, or ada. Text only, so the
config can check it without the augmentation code (facegan.train.augment, which applies it)."""

POLICIES = ("color", "translation", "cutout")  # DiffAugment's (Zhao et al. 2020)
ADA = "ada"  # adaptive augmentation (facegan.train.ada), never combined with POLICIES


def parse_policy(text: str) -> tuple:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); 'none' or '' -> ();
    'ada' -> ('ada',). ValueError for an unknown name or ada among DiffAugment policies."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return ()
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if ADA in names:
        if len(names) > 1:
            raise ValueError("ada steers its own set of augmentations; give it alone (train.augment=ada)")
        return names
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(bad)}; choose from {', '.join(POLICIES)}, ada or none")
    return names
