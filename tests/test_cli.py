"""The ``bimlp`` command line: fast help without torch, one flag vocabulary, override syntax."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from bimlp.cli import COMMANDS, build_parser, main
from bimlp.commands.train import flag_overrides


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_building_the_parser_imports_no_torch():
    # every subcommand's --help is this parser; print it for all of them in a fresh interpreter
    code = (
        "import sys, io, contextlib\n"
        "from bimlp.cli import COMMANDS, build_parser\n"
        "parser = build_parser()\n"
        "for name in [None, *COMMANDS]:\n"
        "    argv = [name, '--help'] if name else ['--help']\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: parser.parse_args(argv)\n"
        "        except SystemExit: pass\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'torchvision', 'numpy', 'yaml') if m in sys.modules)\n"
        "print(repr(heavy))\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, shown", [([], "COMMAND"), (["train"], "--batch-size")])
def test_help_answers_well_under_two_seconds(argv, shown):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bimlp.cli", *argv, "--help"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and shown in done.stdout, done.stdout
    assert elapsed < 2.0, f"bimlp {' '.join(argv)} --help took {elapsed:.2f} s"


def test_each_subcommand_is_the_module_of_its_name():
    # one naming rule: `bimlp NAME` lives in bimlp/commands/NAME.py, and every module there is one
    from pathlib import Path

    import bimlp.commands

    modules = {p.stem for p in Path(bimlp.commands.__file__).parent.glob("*.py")} - {"__init__"}
    assert {name: module for name, (module, _) in COMMANDS.items()} == {
        name: f"bimlp.commands.{name}" for name in modules}


@pytest.mark.parametrize("first", ["bimlp", "timm"])
def test_import_bimlp_registers_the_models_with_timm(first):
    # either import order: timm imported first, or timm imported after bimlp (the import hook)
    second = "timm" if first == "bimlp" else "bimlp"
    done = _python(f"import {first}, {second}\n"
                   "print(sorted(set(bimlp.list_models()) - set(timm.list_models())))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # every model of ours is in timm's registry


def test_import_bimlp_alone_is_light():
    done = _python("import sys, bimlp; print('torch' in sys.modules, bimlp.__version__)")
    assert done.returncode == 0, done.stderr
    from importlib.metadata import version
    assert done.stdout.split() == ["False", version("bimlp")]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    from bimlp import __version__
    assert capsys.readouterr().out.strip() == f"bimlp {__version__}"


def test_shared_flags_have_timm_names():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    flags = {name: {s for a in p._actions for s in a.option_strings if a.help != "==SUPPRESS=="}
             for name, p in sub.items()}
    assert set(flags) == set(COMMANDS)
    for name, expected in {
        "train": {"--img-size", "-b", "--batch-size", "--data-dir", "-j", "--workers", "--amp",
                  "--output"},
        "eval": {"-b", "--batch-size", "--data-dir", "-j", "--workers", "--checkpoint", "--amp"},
        "profile": {"--img-size"},
        "demo": {"--img-size", "-b", "--batch-size"},
        "export": {"--img-size", "--checkpoint", "--output"},
        "bench": {"--img-size", "-b", "--batch-size", "--checkpoint"},
        "convert": {"--output"},
    }.items():
        assert expected <= flags[name], (name, expected - flags[name])
    every = set().union(*flags.values())
    assert not every & {"--input-size", "--image-size", "--data", "--batch", "--set"}


def test_resume_does_not_swallow_the_next_positional():
    args = build_parser().parse_args(["train", "--resume", "a/last.pt", "optim.lr=1e-3"])
    assert (args.resume, args.overrides) == ("a/last.pt", ["optim.lr=1e-3"])
    args = build_parser().parse_args(["train", "--auto-resume", "optim.lr=1e-3"])
    assert (args.resume, args.auto_resume, args.overrides) == (None, True, ["optim.lr=1e-3"])


def test_train_flags_are_overrides_that_positionals_refine(capsys, tmp_path):
    args = build_parser().parse_args(
        ["train", "--data-dir", "/d/x y", "-b", "16", "-j", "3", "--img-size", "40",
         "--amp", "bf16", "--output", str(tmp_path)])
    assert flag_overrides(args) == [
        'data.root="/d/x y"', "data.batch_size=16", "data.workers=3", "data.image_size=40",
        'run.amp="bf16"', f'run.out_dir={json.dumps(str(tmp_path))}']
    assert main(["train", "--print-config", "-b", "16", "--output", str(tmp_path),
                 "data.batch_size=8"]) == 0
    import yaml
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert [d["data"]["batch_size"] for d in docs] == [8, 8]  # the positional came last
    assert [d["run"]["out_dir"] for d in docs] == [f"{tmp_path}/step1", f"{tmp_path}/step2"]


def test_resume_and_auto_resume_together_is_an_error(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path / "x.pt"), "--auto-resume"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_eval_takes_positional_overrides_like_train():
    args = build_parser().parse_args(["eval", "--model", "bimlp_s", "--checkpoint", "m.st",
                                      "--data-dir", "d", "mode=official", "drop_rate=0.1"])
    assert args.overrides == ["mode=official", "drop_rate=0.1"] and args.data_dir == "d"
    old = build_parser().parse_args(["eval", "--model", "bimlp_s", "--checkpoint", "m.st",
                                     "--data", "d", "--set", "mode=official"])
    assert (old.data_dir, old.legacy_set) == ("d", ["mode=official"])  # older spellings still work
