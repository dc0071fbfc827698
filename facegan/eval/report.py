"""Training report: loss curves, a progress GIF (and H.264 MP4 when imageio-ffmpeg is installed) of
the sample grids, FID over kimg, one HTML page."""

import html
import os

from PIL import Image

from ..io import atomic_path, write_text_atomic
from ..progress import progress
from ..train.samples import list_fakes
from ..train.tracking import read_metrics
from .video import available as video_available


def _plot(rows, series, path, title, ylabel):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4), dpi=100, squeeze=False)
    for ax, group in zip(axes[0], series):
        for key, label in group:
            pts = [(r["kimg"], r[key]) for r in rows if key in r and r[key] is not None]
            if pts:
                ax.plot(*zip(*pts), label=label, linewidth=1.2)
        ax.set_xlabel("kimg")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel with no series yet (r_t before ADA's first adjustment)
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _progress_frames(samples_dir: str, max_frames: int, size: int) -> list:
    """The fixed-noise grids in order (at most max_frames, the newest always), as RGB PIL images
    no larger than size."""
    grids = list_fakes(samples_dir)
    if not grids:
        return []
    step = max(1, -(-len(grids) // max_frames))
    picked = grids[::step]
    if picked[-1] != grids[-1]:
        picked.append(grids[-1])
    frames = []
    for f in progress(picked, desc="report: reading grids", unit="grid", disable=len(picked) < 50):
        with Image.open(os.path.join(samples_dir, f)) as im:
            im = im.convert("RGB")
            if max(im.size) > size:
                im = im.resize((size, size * im.height // im.width), Image.Resampling.LANCZOS)
            frames.append(im)
    return frames


def progress_gif(samples_dir: str, path: str, max_frames: int = 100, size: int = 512) -> int:
    """The fixed-noise grids in order, as an animated GIF (the last frame held longer)."""
    frames = [im.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
              for im in _progress_frames(samples_dir, max_frames, size)]
    if not frames:
        return 0
    durations = [150] * (len(frames) - 1) + [1500]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return len(frames)


def progress_mp4(samples_dir: str, path: str, max_frames: int = 300, size: int = 1024, fps: float = 8.0) -> int:
    """The fixed-noise grids in order as H.264 (facegan.eval.video), the last one held for 1.5 s.
    Returns the number of grids shown (0: none, nothing written)."""
    import numpy as np

    from .video import write_mp4

    frames = _progress_frames(samples_dir, max_frames, size)
    if not frames:
        return 0
    arrays = [np.asarray(im) for im in frames]
    arrays += [arrays[-1]] * int(round(1.5 * fps))
    write_mp4(iter(arrays), path, fps=fps)
    return len(frames)


def write_report(run_dir: str, mp4=None) -> dict:
    """Write losses.png, d_outputs.png, fid.png (when FID was logged), ada.png (train.augment=ada),
    progress.gif, report.html, and progress.mp4 when mp4 is True, or when it is None and
    imageio-ffmpeg is installed."""
    rows = [r for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if "kimg" in r]
    out = {}
    train_rows = [r for r in rows if "loss_D" in r]
    if train_rows:
        out["losses"] = os.path.join(run_dir, "losses.png")
        _plot(train_rows, [[("loss_D", "D loss"), ("loss_G", "G loss")],
                           [("D_real", "D(x)"), ("D_fake", "D(G(z))")]], out["losses"],
              "Training losses and discriminator outputs", "value")
    fid_rows = [r for r in rows if "fid" in r]
    if fid_rows:
        out["fid"] = os.path.join(run_dir, "fid.png")
        _plot(fid_rows, [[("fid", "FID")]], out["fid"], "FID over training", "FID")
    ada_rows = [r for r in rows if "ada_p" in r]
    if ada_rows:  # train.augment=ada: the augmentation probability and the overfitting signal steering it
        out["ada"] = os.path.join(run_dir, "ada.png")
        _plot(ada_rows, [[("ada_p", "p")], [("ada_rt", "r_t = E[sign(D(real))]")]], out["ada"],
              "Adaptive augmentation: p and r_t", "value")
    samples = os.path.join(run_dir, "samples")
    if os.path.isdir(samples) and progress_gif(samples, os.path.join(run_dir, "progress.gif")):
        out["progress"] = os.path.join(run_dir, "progress.gif")
        if mp4 if mp4 is not None else video_available():
            out["progress_mp4"] = os.path.join(run_dir, "progress.mp4")
            progress_mp4(samples, out["progress_mp4"])
    grids = list_fakes(samples)
    out["html"] = os.path.join(run_dir, "report.html")
    _write_html(run_dir, out, train_rows, fid_rows, grids)
    return out


def _throughput(rows) -> str:
    """Images per second over the whole run (kimg over the wall-clock seconds metrics.jsonl records
    across resumes, start-up and checkpoints included), and the last status interval's, labeled:
    one interval's figure swings with the machine and says little about the run."""
    if not rows:
        return "-"
    last = rows[-1]
    wall = last.get("wall_s")
    run = f"{1000 * last['kimg'] / wall:.0f} img/s over the run" if wall else None
    interval = f"{last.get('img_per_s', 0):.0f} img/s in the last interval"
    return f"{run} ({interval})" if run else interval


def _write_html(run_dir, out, train_rows, fid_rows, grids):
    last = train_rows[-1] if train_rows else {}
    best = min(fid_rows, key=lambda r: r["fid"]) if fid_rows else None
    facts = [("images seen", f"{last.get('kimg', 0):.1f} kimg"), ("steps", last.get("step", "-")),
             ("last loss D / G", f"{last.get('loss_D', float('nan')):.3f} / {last.get('loss_G', float('nan')):.3f}"
              if last else "-"),
             ("throughput", _throughput(train_rows)),
             ("best FID", f"{best['fid']:.2f} at {best['kimg']:.1f} kimg" if best else "not measured")]
    config = ""
    cfg_path = os.path.join(run_dir, "config.yaml")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            config = f.read()
    rel = lambda p: html.escape(os.path.relpath(p, run_dir))
    imgs = []
    for key, caption in (("progress", "Fixed-noise samples over training"), ("losses", "Losses"),
                         ("fid", "FID"), ("ada", "Adaptive augmentation (ADA): p and r_t")):
        if key in out:
            imgs.append(f'<figure><img src="{rel(out[key])}"><figcaption>{caption}</figcaption></figure>')
        if key == "progress" and "progress_mp4" in out:
            imgs.append(f'<p><a href="{rel(out["progress_mp4"])}">The same as H.264 video (progress.mp4)</a></p>')
    if grids:
        imgs.append(f'<figure><img src="samples/{html.escape(grids[-1])}"><figcaption>Newest samples '
                    f'({html.escape(grids[-1])})</figcaption></figure>')
    if os.path.exists(os.path.join(run_dir, "samples", "reals.png")):
        imgs.append('<figure><img src="samples/reals.png"><figcaption>Training images</figcaption></figure>')
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>facegan report: {html.escape(os.path.basename(os.path.abspath(run_dir)))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}th,td{{padding:4px 12px;text-align:left;border-bottom:1px solid #ddd}}
figure{{margin:1.5em 0}}pre{{background:#f5f5f5;padding:1em;overflow:auto}}</style></head><body>
<h1>facegan training report</h1><table>{rows}</table>{''.join(imgs)}
<h2>Config</h2><pre>{html.escape(config)}</pre></body></html>"""
    write_text_atomic(out["html"], page)
