"""Where the work stands: progress lines with a rate and an ETA on a non-terminal stream, at a
bounded rate; training's status line with the target, the percentage and the time left; notes
for choices made for the user (n capped by the data)."""

import io
import re
import time

from conftest import make_folder, run_cli
from facegan.progress import progress
from facegan.train.status import format_duration, status_line


def test_a_log_gets_whole_lines_at_a_bounded_rate(monkeypatch):
    monkeypatch.setenv("FACEGAN_PROGRESS_S", "0.2")
    monkeypatch.delenv("FACEGAN_PROGRESS", raising=False)
    out = io.StringIO()
    t0 = time.time()
    for _ in progress(range(40), desc="work", unit="img", stream=out):
        time.sleep(0.04)
    elapsed = time.time() - t0
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text  # no carriage-return bar spam in a file
    assert 3 <= len(lines) <= elapsed / 0.2 + 3, lines  # one every 0.2 s at most, plus the first and last
    assert "40/40" in lines[-1] and "img/s" in lines[-1]
    assert re.search(r"<\d\d:\d\d", "\n".join(lines[1:-1]))  # a time left on the lines between


def test_progress_can_be_silenced(monkeypatch):
    monkeypatch.setenv("FACEGAN_PROGRESS", "off")
    out = io.StringIO()
    for _ in progress(range(5), desc="quiet", stream=out):
        pass
    assert out.getvalue() == ""


def test_status_line_says_target_percentage_time_left_and_bad_data():
    rec = {"step": 300, "kimg": 9.6, "loss_D": 1.2, "loss_G": 2.5, "D_real": 0.61, "D_fake": 0.33,
           "img_per_s": 58.0, "img_per_s_run": 40.0, "eta_s": 2760.0, "peak_mem_mb": 120, "data_bad": 0,
           "data_read": 9600}
    line = status_line(rec, 120_000, 50)
    assert line.startswith("kimg 9.600/120 ( 8.0%)  ETA 46m00s  step 300")
    assert "58.0 img/s (last 50 steps; run 40.0)" in line
    assert line.endswith("bad data 0/9600")  # shown when 0 too, as the README says
    assert [format_duration(s) for s in (None, 9, 754, 9000)] == ["?", "9s", "12m34s", "2h30m"]


def test_eval_says_n_is_capped_and_shows_feature_progress(tiny_run, tmp_path, random_inception):
    ref = make_folder(str(tmp_path / "ref"), n=10)  # fewer reference images than --n asks for
    r = run_cli("-m", "facegan.cli.eval", tiny_run, "--ref", ref, "--n", "12", "--metrics", "fid",
                "--inception-weights", random_inception, env={"FACEGAN_PROGRESS_S": "0"})
    assert r.returncode == 0, r.stderr[-1500:]
    assert "--n 12 capped at 10" in r.stdout and "compare it only with scores at n = 10" in r.stdout
    assert r.stdout.index("capped") < r.stdout.index("FID ")  # said before the work, not after
    feature_lines = [line for line in r.stderr.splitlines() if line.startswith("Inception features")]
    assert any("10/10" in line for line in feature_lines) and any("12/12" in line for line in feature_lines)
    assert "UserWarning" not in r.stderr  # torchmetrics' KID buffer warning is silenced
