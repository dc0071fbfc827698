"""The README's small-data table and figure from bench/small_data.py's result files: runs of the
same source, budget, size and augmentation are pooled across files (one seed per file or several),
each row giving the mean over its seeds and, from two seeds on, the sample standard deviation.

    python bench/small_data_figure.py bench/results/small_data-avatars-400kimg-*.json \\
        bench/results/small_data-400kimg-*.json --out docs/small-data-fid.png

Prints the Markdown table; the figure has FID against training-set size (log scale) per source,
one line per augmentation with the seeds' spread as error bars, and ADA's final p against size.
"""

import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUGMENTS = ("none", "diffaug", "ada")
NAMES = {"none": "none", "diffaug": "DiffAugment", "ada": "ADA"}
SAME = ("config", "n", "ada_kimg")  # what every pooled file must share
COLORS = {"none": "tab:blue", "diffaug": "tab:orange", "ada": "tab:green"}  # the same in every panel
SOURCES = {"avatars": "avatars (Multiavatar)", "cartoon": "cartoons (facegan's)", "hats": "cartoons with a hat",
           "nohats": "cartoons without a hat"}


def source_of(result: dict) -> str:
    """The face source a result was measured on, from its pack's name (bench/out/<source><size>-small)."""
    pack = os.path.basename(result["data"].split(" ")[0])
    for name in sorted(SOURCES, key=len, reverse=True):
        if pack.startswith(name):
            return name
    return pack


def start_of(result: dict) -> str:
    """'' for runs trained from scratch, else what they were fine-tuned from (their run.init and
    train.freeze_d overrides)."""
    return " ".join(s for s in result.get("set", []) if s.startswith(("run.init=", "train.freeze_d=")))


def pooled(paths: list) -> dict:
    """{(source, resolution, kimg, images, augment, start): [run, ...]} over every file, one run per
    seed (a seed measured in two files under the same key: the later file's run); start is
    start_of's text. ValueError naming the file when files differ in recipe, n or ada_kimg."""
    cells, first = {}, None
    for path in paths:
        with open(path) as f:
            try:
                result = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: not JSON ({e})") from None
        setup = {k: result.get(k) for k in SAME}
        first = first or (path, setup)
        if setup != first[1]:
            raise ValueError(f"{path} was measured with {setup}, {first[0]} with {first[1]}: not one table")
        res = int(result["data"].split("(")[1].split("x")[0])
        for row in result["rows"].values():
            key = (source_of(result), res, float(result["kimg"]), row["images"], row["augment"], start_of(result))
            runs = {r["seed"]: r for r in cells.get(key, [])}
            runs.update({r["seed"]: r for r in row["runs"]})
            cells[key] = [runs[s] for s in sorted(runs)]
    return cells


def stat(runs: list, key: str):
    """(mean, sample std or None) of a run key over seeds; (None, None) when no run has it."""
    vals = [r[key] for r in runs if r.get(key) is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def shown_start(start: str) -> str:
    """', fine-tuned (freeze_d=K)' for a fine-tuned row's augmentation cell, '' from scratch."""
    if not start:
        return ""
    frozen = [s.split("=", 1)[1] for s in start.split() if s.startswith("train.freeze_d=")]
    return ", fine-tuned" + (f" (freeze_d={frozen[0]})" if frozen else "")


def speed_text(runs: list) -> str:
    """img/s of a row: the mean, or 'lo-hi' when its runs differ by more than 20% (seeds trained on
    different days: these shared machines differ by up to 5x between days, so a mean would mislead)."""
    vals = [r["img_per_s"] for r in runs if r.get("img_per_s")]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    return f"{lo:.0f}-{hi:.0f}" if hi > 1.2 * lo else f"{statistics.fmean(vals):.0f}"


def markdown(cells: dict) -> str:
    lines = ["| source | resolution | kimg | train images | augmentation | runs (seeds) | FID | KID x 1000 | precision / recall "
             "| D(train) / D(val) | final p | img/s |", "|" + "---|" * 12]
    order = sorted(cells, key=lambda k: (k[0], k[1], k[2], k[3], AUGMENTS.index(k[4]) if k[4] in AUGMENTS else 9,
                                         k[5]))
    for key in order:
        source, res, kimg, images, aug, start = key
        runs = cells[key]
        fid, fid_std = stat(runs, "fid")
        m = {k: stat(runs, k)[0] for k in ("kid", "precision", "recall", "D_train", "D_val", "ada_p")}
        fid_text = f"{fid:.2f}" + (f" +- {fid_std:.2f}" if fid_std is not None else "")
        d = "-" if m["D_train"] is None else f"{m['D_train']:.3f} / {m['D_val']:.3f}"
        lines.append(f"| {SOURCES.get(source, source)} | {res} | {kimg:g} | {images} | {NAMES.get(aug, aug)}{shown_start(start)} "
                     f"| {len(runs)} ({','.join(str(r['seed']) for r in runs)}) | {fid_text} | {1000 * m['kid']:.1f} "
                     f"| {m['precision']:.3f} / {m['recall']:.3f} | {d} "
                     f"| {'-' if m['ada_p'] is None else format(m['ada_p'], '.3f')} | {speed_text(runs)} |")
    return "\n".join(lines)


def figure(cells: dict, out: str, kimg: float, resolution: int = 32) -> None:
    """FID against training images per source (one panel each) and ADA's final p against size, for
    the runs at `kimg` and `resolution` trained from scratch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    keys = [k for k in cells if k[2] == kimg and k[1] == resolution and k[0] in ("avatars", "cartoon") and not k[5]]
    sources = sorted({k[0] for k in keys})
    if not sources:
        raise ValueError(f"no run trained from scratch at {kimg:g} kimg and {resolution}x{resolution} to draw")
    fig, axes = plt.subplots(1, len(sources) + 1, figsize=(4.2 * (len(sources) + 1), 3.6))
    for ax, source in zip(axes, sources):
        for aug in AUGMENTS:
            pts = sorted((k[3], *stat(cells[k], "fid")) for k in keys if k[0] == source and k[4] == aug)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] or 0 for p in pts], marker="o",
                            capsize=3, label=NAMES[aug], color=COLORS[aug])
        fids = [stat(cells[k], "fid")[0] for k in keys if k[0] == source]
        ax.set(xscale="log", yscale="log" if max(fids) > 3 * min(fids) else "linear",  # log where FID spans much
               xlabel="training images", ylabel=f"FID (n = 1000) at {kimg:g} kimg", title=SOURCES[source])
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes[-1]
    for source in sources:
        pts = sorted((k[3], stat(cells[k], "ada_p")[0]) for k in keys if k[0] == source and k[4] == "ada")
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=SOURCES[source])
    ax.set(xscale="log", xlabel="training images", ylabel="ADA's final p", title="ADA's p against data", ylim=(0, 1))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="bench/small_data.py result JSON files")
    ap.add_argument("--out", help="write the figure here (PNG)")
    ap.add_argument("--kimg", type=float, default=400, help="the budget the figure shows (default 400)")
    args = ap.parse_args()
    missing = [p for p in args.results if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"small_data_figure: no such file: {missing[0]}")
    try:
        cells = pooled(args.results)
    except ValueError as e:
        raise SystemExit(f"small_data_figure: {e}")
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise SystemExit(f"small_data_figure: not a bench/small_data.py result: {type(e).__name__}: {e}")
    print(markdown(cells))
    if args.out:
        try:
            figure(cells, args.out, args.kimg)
        except (ValueError, OSError) as e:
            raise SystemExit(f"small_data_figure: {args.out}: {e}")
        print(f"small_data_figure: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
