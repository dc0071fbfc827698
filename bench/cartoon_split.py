"""Two disjoint face sets from facegan's synthetic cartoons, split by one of their labels (faces with
a hat against faces without), for the fine-tuning row of bench/small_data.py: a generator trained
on one part, fine-tuned on 1k faces of the part it never saw, against those 1k from scratch.

Each part is written as a folder of PNGs and packed with facegan-shard as a user's folder:

    python bench/cartoon_split.py --out bench/out/cartoon-hat-png --count 14000
    facegan-shard bench/out/cartoon-hat-png/with-hat --out bench/out/hats32 --size 32 --val-fraction 0.45

(bench/small_data.py --data hats / --data nohats does both when the pack is missing.)
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def render_split(out: str, count: int, attribute: str = "hat", size: int = 64) -> str:
    """Draws cartoon faces 0 .. count-1 (family 0) at size x size and writes each as
    out/with-<attribute>/face-NNNNNN.png or out/without-<attribute>/face-NNNNNN.png by its label
    (each file written whole, then renamed); a marker file says the split is complete, so a second
    call returns at once. Returns out. KeyError naming the attribute when the faces have no such
    label (facegan.data.synthetic.LABEL_FIELDS)."""
    from common import image_folder, save_png
    from facegan.data.synthetic import cartoon_face

    folders = {True: os.path.join(out, f"with-{attribute}"), False: os.path.join(out, f"without-{attribute}")}

    def write_one(i):
        image, labels = cartoon_face(i, seed=0, size=size, attributes=True)
        if attribute not in labels:
            raise KeyError(f"cartoon faces have no label {attribute!r}; they have {', '.join(sorted(labels))}")
        folder = folders[bool(labels[attribute])]
        os.makedirs(folder, exist_ok=True)
        save_png(image, os.path.join(folder, f"face-{i:06d}.png"))

    image_folder(os.path.join(out, f".complete-{attribute}-{count}-{size}"), count, "cartoon_split", write_one)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the two sub-folders of PNGs")
    ap.add_argument("--count", type=int, default=14000, help="cartoon faces to draw (default 14000)")
    ap.add_argument("--attribute", default="hat", help="the binary label to split by (default hat)")
    ap.add_argument("--size", type=int, default=64, help="width and height in pixels (default 64)")
    args = ap.parse_args()
    if args.count < 1 or args.size < 8:
        ap.error("--count must be at least 1 and --size at least 8")
    sys.path.insert(0, ROOT)
    try:
        render_split(args.out, args.count, args.attribute, args.size)
    except KeyError as e:
        raise SystemExit(f"cartoon_split: {e.args[0]}")
    for name in sorted(os.listdir(args.out)):
        if not name.startswith("."):
            print(f"{name}: {len(os.listdir(os.path.join(args.out, name)))} images")


if __name__ == "__main__":
    main()
