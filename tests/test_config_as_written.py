"""A config is read as written: a key given twice is refused, text keys take the text typed (not
YAML 1.1's 202405, octal or sexagesimal reading), names stay names, ${...} in a pipe: URL reaches
the shell, and each error line points at the place (file, line, column; the nearest key; how to
pack a folder of images)."""

import io
import os
import tarfile

import pytest
import yaml

from conftest import make_folder
from facegan.config import dump_config, load_config
from facegan.data.shardset import resolve_shards
from facegan.errors import UserError


def write(tmp_path, text, name="x.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def refused(path=None, overrides=()):
    """The UserError load_config raises for this file and these overrides, as its one line."""
    with pytest.raises(UserError) as err:
        load_config(path, list(overrides))
    message = str(err.value)
    assert "\n" not in message
    return message


def cli_refusal(capsys, argv):
    """facegan-train with argv, in this process: exit status 2 and one error line (no traceback)."""
    from facegan.cli.train import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("facegan-train: error: "), err
    return err[0][len("facegan-train: error: "):]


# ---------------------------------------------------------------- keys given twice (pyyaml#165)

def test_a_section_given_twice_names_both_lines(tmp_path):
    path = write(tmp_path, "train:\n  lr_g: 1.0e-3\nlog:\n  wandb: off\ntrain:\n  seed: 1\n")
    assert refused(path) == f"{path}: line 5: key 'train' given twice (first at line 1)"


def test_a_key_given_twice_in_a_section_names_both_lines(tmp_path):
    path = write(tmp_path, "data:\n  workers: 1\ntrain:\n  total_kimg: 10\n  seed: 2\n  total_kimg: 1000\n")
    assert refused(path) == f"{path}: line 6: key 'total_kimg' given twice (first at line 4)"


def test_a_key_given_twice_in_a_flow_mapping_and_quoted_counts_too(tmp_path):
    path = write(tmp_path, "model: {ngf: 8, ndf: 8, 'ngf': 16}\n")
    assert refused(path) == f"{path}: line 1: key 'ngf' given twice (first at line 1)"


def test_merge_keys_let_the_mapping_override_what_it_merges_but_not_repeat_itself(tmp_path):
    """`<<: {...}` keeps YAML 1.1's meaning: the mapping's own keys win over merged ones, which is
    what a merge is for, so that is no duplicate; a key twice among its own keys, or twice in what
    it merges, is."""
    cfg = load_config(write(tmp_path, "train:\n  <<: {lr_g: 1.0e-3, seed: 2}\n  seed: 3\n"))
    assert (cfg.train.lr_g, cfg.train.seed) == (1e-3, 3)
    again = write(tmp_path, "train:\n  <<: {seed: 2}\n  seed: 3\n  seed: 4\n", "again.yaml")
    assert refused(again) == f"{again}: line 4: key 'seed' given twice (first at line 3)"
    inside = write(tmp_path, "train:\n  <<: {seed: 2, seed: 5}\n", "inside.yaml")
    assert refused(inside) == f"{inside}: line 2: key 'seed' given twice (first at line 2)"


def test_an_alias_takes_the_text_of_its_anchor(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  shards: &s shards/2024_05\neval:\n  ref: *s\n"))
    assert cfg.eval.ref == cfg.data.shards == "shards/2024_05"


def test_a_key_twice_on_the_command_line_stops_before_anything_is_written(tmp_path, capsys):
    path = write(tmp_path, "run:\n  dir: somewhere\nrun:\n  dir: elsewhere\n")
    line = cli_refusal(capsys, ["--config", path, f"run.dir={tmp_path / 'run'}"])
    assert line == f"{path}: line 3: key 'run' given twice (first at line 1)"
    assert sorted(os.listdir(tmp_path)) == ["x.yaml"]


# ---------------------------------------------------------------- text keys take the text typed (pyyaml#395)

AS_TYPED = {"run.dir": "2024_05", "log.project": "0755", "log.name": "1:30", "data.shards": "2024-05-01",
            "run.resume": "0x10", "eval.ref": "1_000", "eval.inception_weights": "0o17"}


def _get(cfg, key):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def test_text_keys_in_a_file_take_the_text_as_written(tmp_path):
    sections = {}
    for key, text in AS_TYPED.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"  {name}: {text}\n")
    text = "".join(f"{section}:\n" + "".join(lines) for section, lines in sections.items())
    cfg = load_config(write(tmp_path, text))
    for key, text in AS_TYPED.items():
        assert _get(cfg, key) == text and type(_get(cfg, key)) is str, (key, _get(cfg, key))


@pytest.mark.parametrize("key,text", list(AS_TYPED.items()))
def test_text_keys_on_the_command_line_take_the_text_as_typed(key, text):
    assert _get(load_config(None, [f"{key}={text}"]), key) == text


def test_lists_of_text_take_each_item_as_written(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  labels: [0755, 1:30, 2024_05, 'quoted']\n"))
    assert cfg.model.labels == ["0755", "1:30", "2024_05", "quoted"]
    assert load_config(None, ["model.labels=0755"]).model.labels == ["0755"]
    assert load_config(None, ["model.labels=2024_05,0755"]).model.labels == ["2024_05", "0755"]


def test_null_still_unsets_an_optional_text_key_and_an_empty_text_key_is_refused(tmp_path):
    cfg = load_config(write(tmp_path, "log:\n  name: ~\neval:\n  ref:\n"))
    assert cfg.log.name is None and cfg.eval.ref is None
    path = write(tmp_path, "run:\n  dir:\n", "empty.yaml")
    assert refused(path) == f"{path}: line 2: run.dir: expected str, got nothing"


def test_the_resolved_config_reads_back_as_it_was(tmp_path):
    """runs/NAME/config.yaml (dump_config) of a run whose text keys look like YAML 1.1 numbers
    loads back to the same config."""
    cfg = load_config(None, [f"{k}={t}" for k, t in AS_TYPED.items()])
    dump_config(cfg, str(tmp_path / "config.yaml"))
    again = load_config(str(tmp_path / "config.yaml"))
    assert again == cfg


# ---------------------------------------------------------------- number keys are YAML 1.2 numbers

def test_a_number_key_given_1_30_is_refused_in_a_file_and_on_the_command_line(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: 32\n  total_kimg: 1:30\n")
    hint = "(numbers are YAML 1.2 decimals here: no 1:30 sexagesimal, no _ separators)"
    assert refused(path) == f"{path}: line 3: train.total_kimg: expected float, got '1:30' {hint}"
    assert refused(None, ["train.total_kimg=1:30"]) == f"train.total_kimg: expected float, got '1:30' {hint}"
    assert refused(None, ["train.seed=1_000"]) == f"train.seed: expected int, got '1_000' {hint}"
    assert refused(None, ["train.lr_g=fast"]) == "train.lr_g: expected float, got 'fast'"  # no hint there


def test_number_keys_read_yaml_1_2_numbers(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  seed: 0755\n  batch_size: 0x20\n  lr_g: 1e-3\n"
                                      "  lr_d: \"2e-4\"\n  total_kimg: .5\n"))
    assert (cfg.train.seed, cfg.train.batch_size) == (755, 32)  # decimal, not 0755 octal (493)
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.total_kimg) == (1e-3, 2e-4, 0.5)
    assert type(cfg.train.lr_g) is float
    with pytest.raises(UserError, match=r"^train.lr_g: must be a finite number"):
        load_config(None, ["train.lr_g=.inf"])


def test_a_date_is_text_not_a_date(tmp_path):
    path = write(tmp_path, "train:\n  seed: 2024-05-01\n")
    assert refused(path) == f"{path}: line 2: train.seed: expected int, got '2024-05-01'"


def test_an_explicit_int_tag_keeps_to_yaml_1_2(tmp_path):
    path = write(tmp_path, "train:\n  seed: !!int 1_000\n")
    assert refused(path) == f"{path}: line 2, column 9: not valid YAML (not an integer: '1_000')"


# ---------------------------------------------------------------- names, not paths

@pytest.mark.parametrize("trackers", [["log.trackers=tensorboard"], ["log.wandb=offline"],
                                      ["log.trackers=wandb,tensorboard"]])
def test_a_project_that_is_a_path_is_refused_before_anything_is_written(tmp_path, capsys, trackers):
    """log.trackers=tensorboard log.project=../../esc wrote event files beside the run directory."""
    run = tmp_path / "runs" / "demo"
    line = cli_refusal(capsys, [f"run.dir={run}", *trackers, "log.project=../../esc"])
    assert line == "log.project: '../../esc' is a name, not a path (no /, \\ or ..)"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("override,message", [
    ("log.name=a\\b", "log.name: 'a\\\\b' is a name, not a path (no /, \\ or ..)"),
    ("log.name=..", "log.name: '..' is a name, not a path (no /, \\ or ..)"),
    ("log.project=.", "log.project: '.' is a name, not a path (no /, \\ or ..)"),
    ("log.project=/abs", "log.project: '/abs' is a name, not a path (no /, \\ or ..)"),
    ("log.project=", "log.project: must not be empty (a name, not a path: no /, \\ or ..)"),
    ("log.project=a\0b", "log.project: 'a\\x00b' holds a NUL character"),
])
def test_names_with_separators_dots_nothing_or_nul_are_refused(override, message):
    assert refused(None, [override]) == message


def test_a_name_is_checked_in_a_file_too_and_plain_names_pass(tmp_path):
    path = write(tmp_path, "log:\n  trackers: [tensorboard]\n  project: ../up\n")
    assert refused(path) == "log.project: '../up' is a name, not a path (no /, \\ or ..)"
    cfg = load_config(None, ["log.project=my..project", "log.name=run 7: lr 1e-3"])
    assert (cfg.log.project, cfg.log.name) == ("my..project", "run 7: lr 1e-3")


def test_wandb_projects_keep_to_wandbs_rule_before_wandb_sees_them():
    """wandb refuses / \\ # ? % : in a project only inside wandb.init, after the run directory
    exists; TensorBoard takes such a folder name."""
    assert refused(None, ["log.wandb=offline", "log.project=a:b"]) == \
        "log.project: 'a:b' is not a wandb project name (none of / \\ # ? % :, at most 128 characters)"
    assert load_config(None, ["log.trackers=tensorboard", "log.project=a:b"]).log.project == "a:b"


# ---------------------------------------------------------------- ${...} in shard URLs

def _tar(path, samples):
    with tarfile.open(path, "w") as tar:
        for key, payload in samples:
            info = tarfile.TarInfo(f"{key}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_a_shell_variable_in_a_pipe_url_reaches_the_shell(tmp_path, monkeypatch):
    """WebDataset's expansion read ${HOME} as WDS_HOME and stopped with an AssertionError; the
    pipe: command's shell expands it now."""
    from facegan.data.shard_reader import shard_samples

    _tar(tmp_path / "x-0.tar", [("a", b"first")])
    _tar(tmp_path / "x-1.tar", [("b", b"second")])
    monkeypatch.setenv("FACEGAN_TEST_SHARDS", str(tmp_path))
    shards = resolve_shards("pipe:cat ${FACEGAN_TEST_SHARDS}/x-{0..1}.tar")
    assert shards.urls == ["pipe:cat ${FACEGAN_TEST_SHARDS}/x-0.tar", "pipe:cat ${FACEGAN_TEST_SHARDS}/x-1.tar"]
    problems = []
    read = [s["txt"] for url in shards.urls for s in shard_samples(url, problems)]
    assert read == [b"first", b"second"] and problems == []


def test_the_eval_reference_takes_the_same_urls():
    """facegan-eval --ref pipe:...: the same expansion (through open_reference)."""
    from facegan.eval.image_sets import open_image_set

    ref = open_image_set("pipe:cat ${HOME}/val-{0..1}.tar::pipe:curl -s ${HOST}/v.tar", split="val")
    assert ref.kind == "shards"
    assert ref.shards.urls == ["pipe:cat ${HOME}/val-0.tar", "pipe:cat ${HOME}/val-1.tar",
                               "pipe:curl -s ${HOST}/v.tar"]


@pytest.mark.parametrize("spec,message", [
    ("${HOME}/x.tar", "${HOME}/x.tar: ${HOME} is expanded only in a pipe: command (by its shell); "
                      "write the path out"),
    ("https://example.org/${BUCKET}/x.tar", "https://example.org/${BUCKET}/x.tar: ${BUCKET} is expanded only in "
                                            "a pipe: command (by its shell); write the path out"),
    ("shards/x/train-{000000..000003.tar", "shards/x/train-{000000..000003.tar: unbalanced braces "
                                           "(a shard pattern reads like train-{000000..000099}.tar)"),
])
def test_a_shell_variable_outside_a_pipe_or_bad_braces_is_one_line(spec, message):
    with pytest.raises(UserError) as err:
        resolve_shards(spec)
    assert str(err.value) == message


def test_a_shell_variable_in_data_shards_is_one_line_from_the_trainer(tmp_path, capsys):
    line = cli_refusal(capsys, ["data.shards=${HOME}/x.tar", f"run.dir={tmp_path / 'run'}"])
    assert line == "${HOME}/x.tar: ${HOME} is expanded only in a pipe: command (by its shell); write the path out"
    assert not os.path.exists(tmp_path / "run")


# ---------------------------------------------------------------- errors that point at the place

def test_a_yaml_syntax_error_gives_file_line_and_column(tmp_path, capsys):
    path = write(tmp_path, "data:\n  workers: 1\ntrain:\n  lr_g: a: b\n")
    assert refused(path) == f"{path}: line 4, column 10: not valid YAML (mapping values are not allowed here)"
    assert cli_refusal(capsys, ["--config", path]) == refused(path)


def test_an_unclosed_list_and_a_tab_give_their_place(tmp_path):
    path = write(tmp_path, "train:\n  betas: [0.5, 0.999\nlog:\n  wandb: off\n")
    assert refused(path) == (f"{path}: line 3, column 4: not valid YAML (while parsing a flow sequence at line 2, "
                             f"column 10: expected ',' or ']', but got ':')")
    tab = write(tmp_path, "train:\n\tseed: 1\n", "tab.yaml")
    assert refused(tab) == (f"{tab}: line 2, column 1: not valid YAML "
                            f"(found character '\\t' that cannot start any token)")


def test_an_unknown_key_suggests_the_nearest_known_one(tmp_path):
    line = refused(None, ["train.total_kimgs=10"])
    assert line.startswith("unknown config key 'train.total_kimgs'; did you mean 'train.total_kimg'? "
                           "(known: train.batch_size, train.lr_g,")
    assert refused(None, ["model.total_kimg=10"]).startswith(
        "unknown config key 'model.total_kimg'; did you mean 'train.total_kimg'? (known: model.arch,")
    assert refused(None, ["trian.seed=1"]) == \
        "unknown config key 'trian'; did you mean 'train'? (known: data, model, train, run, dist, log, eval)"
    assert refused(None, ["train.zzzz=1"]).startswith("unknown config key 'train.zzzz' (known: ")


def test_an_unknown_key_in_a_file_gives_its_line(tmp_path):
    path = write(tmp_path, "train:\n  seed: 1\n  total_kimgs: 10\n")
    assert refused(path).startswith(f"{path}: line 3: unknown config key 'train.total_kimgs'; "
                                    f"did you mean 'train.total_kimg'?")
    section = write(tmp_path, "data:\n  workers: 1\nloggin:\n  wandb: off\n", "section.yaml")
    assert refused(section) == (f"{section}: line 3: unknown config key 'loggin'; did you mean 'log'? "
                                f"(known: data, model, train, run, dist, log, eval)")
    wrong = write(tmp_path, "data:\n  workers: 1\ntrain:\n  lr_g: fast\n", "wrong.yaml")
    assert refused(wrong) == f"{wrong}: line 4: train.lr_g: expected float, got 'fast'"


def test_a_folder_of_images_as_shards_says_how_to_pack_it(tmp_path, capsys):
    faces = make_folder(str(tmp_path / "faces"))  # an ImageFolder tree: the images are one level down
    line = cli_refusal(capsys, [f"data.shards={faces}", f"run.dir={tmp_path / 'run'}"])
    assert line == (f"{faces}: a folder of images, not a packed dataset; pack it first: "
                    f"facegan-shard {faces} --out shards/faces --size N")
    assert not os.path.exists(tmp_path / "run")


def test_interrupted_packing_and_other_folders_keep_their_own_message(tmp_path):
    interrupted = tmp_path / "half"
    interrupted.mkdir()
    _tar(interrupted / "train-000000.tar", [("a", b"x")])
    (interrupted / "stray.png").write_bytes(b"")  # shards there decide: it was a packer's output
    with pytest.raises(UserError) as err:
        resolve_shards(str(interrupted))
    assert str(err.value) == f"{interrupted}: not a facegan dataset (no dataset.json; was packing interrupted?)"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here\n")
    with pytest.raises(UserError) as err:
        resolve_shards(str(notes))
    assert str(err.value) == f"{notes}: not a facegan dataset (no dataset.json)"


def test_facegan_eval_still_scores_a_folder_of_images_as_a_folder(tmp_path):
    """--ref DIR of images is a reference in its own right for facegan-eval: no packing hint there."""
    from facegan.eval.image_sets import open_image_set

    faces = make_folder(str(tmp_path / "faces"))
    assert open_image_set(faces).kind == "folder"


def test_read_yaml_gives_plain_values_with_the_same_rules():
    from facegan.config import DuplicateKeyError, read_yaml

    assert read_yaml("a: 0755\nb: 2024_05\nc: [1:30, off]\n") == {"a": 755, "b": "2024_05", "c": ["1:30", "off"]}
    with pytest.raises(DuplicateKeyError):
        read_yaml("a: 1\na: 2\n")
    assert isinstance(DuplicateKeyError("a", 1, 2, None), yaml.YAMLError)
