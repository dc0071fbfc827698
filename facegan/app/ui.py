"""The facegan web app (Gradio Blocks): a seed and a count give a grid, a truncation slider, two
seeds give an interpolation strip and an animated GIF. `facegan-app` and a Hub folder's app.py
both serve build_app().

The two handlers, make_grid() and make_walk(), are plain functions of the visitor's values: every
value goes through facegan.app.bounds first (a note says what was clamped), and nothing a visitor
sends is used as a path. Images are returned as PIL images (PNG downloads); the GIF travels inside
the page as a data URI, so the app writes no files of its own.
"""

import base64
import html
import io
import math

from ..sampling import grid_uint8, seed_walk, to_pil
from . import bounds

# Small faces shown large and sharp (the PNG downloads keep their own pixels).
STYLE = ("<style>.facegan-img img { image-rendering: pixelated; object-fit: contain !important; }"
         " #grid img { height: 320px !important; width: auto !important; max-width: 100%; }"
         " #strip img { height: 96px !important; width: auto !important; max-width: 100%; }</style>")


def _notes(notes: list) -> str:
    return "\n".join(f"- {html.escape(n)}" for n in notes)


def asked_labels(G, text, notes: list) -> dict:
    """A conditional G's labels typed by a visitor ('eyeglasses=1,wearing_hat=0', or a class name
    or index), as keyword arguments of G.sample; what it cannot read is ignored with a note."""
    text = str(text or "").strip()[:500]
    cond = getattr(G, "condition", None)
    if not text or cond is None:
        return {}
    from ..errors import UserError
    from ..sampling import parse_request

    kw = {"attrs": text} if cond.kind == "attributes" else {"klass": text}
    try:
        parse_request(cond, kw.get("attrs"), kw.get("klass"))
    except UserError as err:
        notes.append(f"labels ignored: {err}")
        return {}
    return kw


def make_grid(G, seed, count, psi, labels=""):
    """(PIL grid of `count` samples of `seed` at truncation psi, notes as Markdown). labels: for a
    conditional G, the attributes or class to fix (see asked_labels)."""
    notes = []
    s = bounds.seed(seed, notes)
    n = bounds.bounded_int(count, "count", 1, bounds.MAX_COUNT, 16, notes)
    t = bounds.truncation(psi, notes)
    kw = asked_labels(G, labels, notes)
    images = G.sample(n, seed=s, truncation=t, as_tensor=True, **kw)
    summary = f"{n} image{'s' if n > 1 else ''}, seed {s}, truncation {t:g}"
    if kw:
        summary += f", labels {next(iter(kw.values()))}"
    grid = to_pil(grid_uint8(images, max(1, math.ceil(math.sqrt(n)))))  # as facegan-sample writes it
    return grid, "\n".join([summary, "", _notes(notes)]).strip()


def make_walk(G, seed_a, seed_b, frames, psi):
    """(PIL strip of the walk, HTML with the animated GIF and its download link, notes)."""
    notes = []
    a, b = bounds.seed(seed_a, notes, "seed A"), bounds.seed(seed_b, notes, "seed B")
    k = bounds.bounded_int(frames, "frames", 2, bounds.MAX_FRAMES, 12, notes)
    t = bounds.truncation(psi, notes)
    images = seed_walk(G, a, b, k, truncation=t)  # what G.interpolate returns, as uint8 (k, 3, H, W)
    pics = [to_pil(im) for im in images]
    buf = io.BytesIO()
    back = pics[::-1][1:-1]  # there and back again, so the loop has no jump
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:] + back, duration=90, loop=0)
    uri = "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()
    size = max(128, G.resolution)
    gif = (f'<div class="facegan-img"><img id="walk-gif" src="{uri}" width="{size}" height="{size}" '
           f'alt="walk from seed {a} to seed {b}"><br>'
           f'<a download="walk-{a}-{b}.gif" href="{uri}">Download GIF</a></div>')
    summary = f"{k} frames from seed {a} to seed {b}, truncation {t:g}"
    return to_pil(grid_uint8(images, len(images))), gif, "\n".join([summary, "", _notes(notes)]).strip()


def build_app(G, title: str = "facegan"):
    """A gr.Blocks for generator G (a facegan FaceGenerator), queued one request at a time with
    at most 16 waiting. Not launched: call .launch(server_name=..., server_port=...)."""
    import gradio as gr

    res = G.resolution
    with gr.Blocks(title=f"{title} - facegan", analytics_enabled=False, delete_cache=(600, 600)) as demo:
        gr.HTML(STYLE)
        gr.Markdown(f"# {html.escape(title)}\nA {res}x{res} DCGAN face generator (facegan). A seed names a set of "
                    f"faces: the same seed gives the same faces here, in `facegan-sample` and in "
                    f"`FaceGenerator.sample`. Truncation below 1 gives more typical, less varied faces.")
        with gr.Row():
            seed = gr.Number(value=0, label=f"Seed (0 - {bounds.SEED_RANGE - 1})", elem_id="seed")
            count = gr.Number(value=16, label=f"Images (1 - {bounds.MAX_COUNT})", elem_id="count")
            psi = gr.Slider(bounds.PSI_MIN, bounds.PSI_MAX, value=1.0, step=0.05, label="Truncation (psi)",
                            elem_id="psi")
        cond = getattr(G, "condition", None)
        hint = ("attributes to fix, e.g. " + ",".join(f"{n}=1" for n in cond.names[:2]) + f" (of {', '.join(cond.names)})"
                if cond is not None and cond.kind == "attributes" else
                f"a class: {', '.join(cond.fields[0].classes)}" if cond is not None else "")
        labels = gr.Textbox(value="", label=f"Labels: {hint}; empty: as in the training data", elem_id="labels",
                            visible=cond is not None)
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        grid = gr.Image(label="Samples (download: PNG)", type="pil", format="png", interactive=False,
                        buttons=["download", "fullscreen"], elem_id="grid", elem_classes="facegan-img")
        grid_notes = gr.Markdown(elem_id="grid-notes")
        gr.Markdown("## Interpolate between two seeds")
        with gr.Row():
            seed_a = gr.Number(value=0, label="Seed A", elem_id="seed-a")
            seed_b = gr.Number(value=1, label="Seed B", elem_id="seed-b")
            frames = gr.Number(value=12, label=f"Frames (2 - {bounds.MAX_FRAMES})", elem_id="frames")
        walk = gr.Button("Interpolate", elem_id="interpolate")
        strip = gr.Image(label="Interpolation strip (download: PNG)", type="pil", format="png", interactive=False,
                         buttons=["download"], elem_id="strip", elem_classes="facegan-img")
        gif = gr.HTML(elem_id="walk")
        walk_notes = gr.Markdown(elem_id="walk-notes")
        # Gradio's own slider check refuses out-of-range values with an error; ours clamps them with a
        # note instead, for API callers too, so the raw value is passed on (Numbers pass raw already).
        psi.preprocess = lambda payload: payload
        # The labels box is an input only for a conditional G: an unconditional app's API keeps (seed, count, psi).
        inputs = [seed, count, psi] + ([labels] if cond is not None else [])
        generate.click(lambda *v: make_grid(G, *v), inputs, [grid, grid_notes], api_name="generate")
        walk.click(lambda *v: make_walk(G, *v), [seed_a, seed_b, frames, psi], [strip, gif, walk_notes],
                   api_name="interpolate")
    return demo.queue(default_concurrency_limit=1, max_size=16)
