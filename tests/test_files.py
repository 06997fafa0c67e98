"""Atomic writes: unique temporary names, nothing left behind on error, a plain file's mode,
bad output paths refused before any work (``bimlp convert -o DIR`` / ``-o ''``)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from bimlp.checkpoint import read_weights, save_weights
from bimlp.cli import main as cli
from bimlp.files import (
    OutputPathError,
    atomic_write,
    atomic_write_text,
    check_output_file,
)
from bimlp.train.state import atomic_torch_save

OFFICIAL = Path(__file__).parent / "data" / "official" / "tiny_bn.ckpt"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_mode(tmp_path: Path) -> int:
    ref = tmp_path / "plain"
    ref.write_text("x")
    return _mode(ref)


def test_every_writer_gives_the_mode_of_a_plain_file_and_leaves_no_temp(tmp_path):
    plain = _plain_mode(tmp_path)
    a = save_weights({"w": torch.ones(3)}, tmp_path / "w.safetensors")
    b = atomic_torch_save({"x": 1}, tmp_path / "last.pt")
    c = atomic_write_text(tmp_path / "t.txt", "hello")
    assert [_mode(p) for p in (a, b, c)] == [plain] * 3  # was 0600 for safetensors
    assert not list(tmp_path.glob(".*.tmp"))
    torch.testing.assert_close(read_weights(a)[0]["w"], torch.ones(3))


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "f.txt", "old")

    def boom(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    # an unserialisable tensor dict (safetensors refuses shared storage) likewise
    t = torch.ones(4)
    with pytest.raises(RuntimeError, match="share"):
        save_weights({"a": t, "b": t[:2]}, tmp_path / "shared.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_concurrent_writers_never_share_a_temp_file(tmp_path):
    path = tmp_path / "same.txt"
    errors = []

    def write(i: int) -> None:
        try:
            for _ in range(20):
                atomic_write_text(path, f"writer {i}\n" * 1000)
        except Exception as e:  # pragma: no cover - the failure being tested for
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = set(path.read_text().splitlines())
    assert len(lines) == 1  # one whole file of one writer, never a mix
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("bad", ["", "DIR", "FILE/below.safetensors"])
def test_bad_output_paths_are_refused(bad, tmp_path):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("x")
    target = "" if bad == "" else str(tmp_path / bad)
    with pytest.raises(OutputPathError):
        check_output_file(target)


@pytest.mark.parametrize("output", ["DIR", ""])
def test_convert_to_a_folder_or_empty_name_leaves_nothing(output, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR").mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert cli(["convert", str(OFFICIAL), "-o", output]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bimlp convert: -o/--output: ") and "folder" in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no .tmp left anywhere


def test_export_to_a_folder_and_a_negative_image_size(tmp_path, capsys):
    (tmp_path / "DIR").mkdir()
    assert cli(["export", "--model", "bimlp_s", "-o", str(tmp_path / "DIR")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert cli(["export", "--model", "bimlp_s", "-o", str(tmp_path / "a.bimlp"), "--onnx",
                str(tmp_path / "a.onnx"), "--img-size", "-5"]) == 2
    assert "--img-size must be >= 1, got -5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]
    assert os.listdir(tmp_path / "DIR") == []
