"""FID during training (eval.every_kimg): logged like any metric; the best checkpoint kept apart."""

import json
import os
import shutil

from ..io import atomic_dir, write_json_atomic
from ..errors import UserError
from ..log import get_logger, status_logger
from .features import InceptionFeatures
from .metrics import fid_kid, reference_features, small_n_warning
from .scoring import generated_features, open_reference

BEST = "best"

log = get_logger()
status_log = status_logger()  # the FID line sits among the status lines, as one of them


class TrainingEvaluator:
    def __init__(self, cfg, accelerator):
        self.cfg, self.acc = cfg, accelerator
        self.extractor = InceptionFeatures(cfg.eval.inception_weights).to(accelerator.device).eval()
        ref = cfg.eval.ref or cfg.data.shards
        try:
            shards, cache_dir = open_reference(ref, "val", cfg.model.resolution)
            split = "val"
        except UserError:  # no val split: score against train, and say so
            shards, cache_dir = open_reference(ref, "train", cfg.model.resolution)
            split = "train"
            log.info(f"{ref} has no val split; FID reference is the train split")
        self.real = reference_features(shards, cache_dir, split, cfg.eval.n, self.extractor, accelerator.device,
                                       accelerator=accelerator)
        self.best_path = os.path.join(cfg.run.dir, "checkpoints", BEST)
        self.best_fid = float("inf")
        info = os.path.join(self.best_path, "best.json")
        if os.path.exists(info):
            with open(info) as f:
                self.best_fid = json.load(f)["fid"]

        if warning := small_n_warning(self.real.shape[0], cfg.eval.n, self.real.shape[1]):
            log.info(f"FID during training: {warning}")

    def __call__(self, G_ema, step, images_seen, write_checkpoint, metrics):
        fake = generated_features(G_ema, self.cfg.eval.n, self.extractor, self.acc.device, accelerator=self.acc)
        result = fid_kid(self.real, fake, ("fid",))  # identical on every rank: same gathered features
        record = {"step": step, "kimg": round(images_seen / 1000, 3), "fid": result["fid"],
                  "n_real": result["n_real"], "n_fake": result["n_fake"]}
        metrics.write(record)
        self.acc.log({"fid": result["fid"]}, step=step)
        status_log.info(f"kimg {record['kimg']:9.3f}  FID {result['fid']:.3f} (n {result['n_fake']})")
        if result["fid"] < self.best_fid:
            self.best_fid = result["fid"]
            path = write_checkpoint()  # collective: every rank takes this branch together
            if self.acc.is_main_process:
                self._keep_best(path, record)
        return result["fid"]

    def _keep_best(self, path, record):
        """Copy the checkpoint beside the rotation, atomically, with its FID."""
        with atomic_dir(self.best_path) as tmp:
            for name in os.listdir(path):
                shutil.copy2(os.path.join(path, name), os.path.join(tmp, name))
            write_json_atomic(os.path.join(tmp, "best.json"), dict(record, checkpoint=os.path.basename(path)))
