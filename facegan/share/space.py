"""app.py and requirements.txt of a Hub folder: the facegan app on the folder's own weights.

app.py imports facegan (pinned in requirements.txt to the version that exported the folder)
rather than carrying a copy of the generator and the interface: one app for `facegan-app` and the
Space, so a Space draws the same face for a seed as facegan-sample does, and a fix reaches both.
"""

from .. import __version__

APP_PY = '''"""Gradio app for this facegan generator: `python app.py` here, or as a Hugging Face Space.

Loads the weights beside this file (or the repo in FACEGAN_MODEL, e.g. user/name, when the
Space holds only this file). FACEGAN_APP_BUILD_ONLY=1 builds the interface without serving it.
"""

import os

from facegan.app.ui import build_app
from facegan.share.model import FaceGenerator

HERE = os.path.dirname(os.path.abspath(__file__))
G = FaceGenerator.from_pretrained(os.environ.get("FACEGAN_MODEL") or HERE)
demo = build_app(G, title=os.path.basename(HERE) or "facegan")

if __name__ == "__main__" and not os.environ.get("FACEGAN_APP_BUILD_ONLY"):
    demo.launch()
'''


def requirements_txt() -> str:
    return (f"# facegan {__version__} exported this folder; app.py runs on its app extra.\n"
            f"# Where facegan is not on your package index, use: facegan[app] @ git+<facegan repository URL>\n"
            f"facegan[app]=={__version__}\n")
