"""The web app (facegan-app and a Hub folder's app.py). Needs the `app` extra (gradio)."""
