"""The Hub folder (`facegan-export RUN --hub-dir DIR`) and its upload (`--push-to-hub USER/REPO`).

DIR/model.safetensors   the EMA generator (also a facegan export: architecture in its metadata)
DIR/config.json         the architecture (FaceGenerator's constructor arguments)
DIR/README.md           the model card (huggingface_hub ModelCard; FID/KID in model-index)
DIR/samples.png         16 samples, seed 0, shown by the card
DIR/app.py, requirements.txt   the facegan app on these weights (a Gradio Space)

The folder is built in a temporary directory and renamed whole (facegan.io.atomic_dir).
"""

import json
import os

from ..errors import UserError
from ..io import atomic_dir, write_text_atomic
from .model import CONFIG, FaceGenerator

MARKER = "library"  # config.json key that marks a folder facegan wrote
GRID_N, GRID_SEED = 16, 0


def _check_target(path: str, overwrite: bool) -> None:
    """Refuse to replace anything but an earlier Hub folder of facegan, and that only with --overwrite."""
    if os.path.isfile(path):
        raise UserError(f"{path}: is a file; --hub-dir takes a directory")
    if not os.path.isdir(path) or not os.listdir(path):
        return
    ours = False
    try:
        with open(os.path.join(path, CONFIG)) as f:
            ours = json.load(f).get(MARKER) == "facegan"
    except (OSError, ValueError):
        pass
    if not ours:
        raise UserError(f"{path}: exists and is not a facegan Hub folder; choose an empty or new directory")
    if not overwrite:
        raise UserError(f"{path}: exists; pass --overwrite to replace it")


def write_hub_dir(source: str, out: str, license: str = "other", repo_id: str = None, scores_json: str = None,
                  fid: float = None, overwrite: bool = False) -> dict:
    """Write the Hub folder for the EMA generator of `source` (run, checkpoint or export) to `out`.
    Returns {"dir", "facts", "card"}. Raises UserError for an unusable source or target."""
    from ..sampling import save_grid
    from .card import build_card
    from .facts import gather
    from .space import APP_PY, requirements_txt

    _check_target(out, overwrite)
    G = FaceGenerator.from_pretrained(source)
    facts = gather(G.info, G.architecture(), scores_json, fid)
    G.info["summary"] = dict(G.info.get("summary") or {}, fid=next((s.value for s in facts.scores
                                                                    if s.metric == "fid"), None))
    name = (repo_id.split("/")[-1] if repo_id else os.path.basename(os.path.abspath(out))) or "facegan-generator"
    card = build_card(facts, name, license, repo_id)
    with atomic_dir(out) as tmp:
        # The card first: save_pretrained writes its own generic README.md only where none exists.
        write_text_atomic(os.path.join(tmp, "README.md"), str(card))
        G.save_pretrained(tmp)  # model.safetensors + config.json through FaceGenerator._save_pretrained
        images = G.sample(GRID_N, seed=GRID_SEED, as_tensor=True)
        save_grid(images, os.path.join(tmp, "samples.png"), nrow=4)
        write_text_atomic(os.path.join(tmp, "app.py"), APP_PY)
        write_text_atomic(os.path.join(tmp, "requirements.txt"), requirements_txt())
    return {"dir": out, "facts": facts, "card": card}


def push_folder(folder: str, repo_id: str, private: bool = False) -> str:
    """Upload `folder` to the model repo `repo_id` (created if missing) in one commit, with the
    token of `hf auth login` or HF_TOKEN. Offline, without a token, or refused by the Hub: UserError
    saying the folder is kept. Returns the commit URL."""
    from huggingface_hub import HfApi, constants, get_token

    later = f"the folder {folder} is kept; push it later with: hf upload {repo_id} {folder} ."
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"--push-to-hub: HF_HUB_OFFLINE is set, nothing was uploaded; {later}")
    token = get_token()
    if not token:
        raise UserError(f"--push-to-hub: no Hugging Face token (run `hf auth login` or set HF_TOKEN); {later}")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=folder,
                                 commit_message="Upload facegan generator")
    except Exception as err:  # no network, bad token, no permission: one line, folder kept
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"--push-to-hub {repo_id}: {type(err).__name__}: {first[:200]}; {later}") from None
    return getattr(info, "commit_url", str(info))
