"""Golden profiler reports: ``bimlp profile bimlp_xs --img-size 16`` in both numerical modes, text
and JSON, compared with the committed files in ``tests/profile/golden/``.

A change to the models, the counting or the report's layout shows up here as a diff a reviewer
can read line by line. When the change is meant, regenerate the files and review the diff:

    BIMLP_REGENERATE_GOLDEN=1 python -m pytest tests/profile/test_profile_golden.py
    git diff tests/profile/golden/
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bimlp.cli import main

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("BIMLP_REGENERATE_GOLDEN") == "1"


def _compare(path: Path, text: str) -> None:
    if REGENERATE:
        path.write_text(text)
        return
    assert path.is_file(), f"{path} is missing; regenerate it (see this file's docstring)"
    expected = path.read_text()
    if text != expected:
        import difflib

        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(path), "now", n=1))
        pytest.fail(f"profile report differs from {path.name} (regenerate if meant):\n{diff}")


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_profile_report_matches_the_golden_file(mode, tmp_path, capsys):
    json_path = tmp_path / "profile.json"
    code = main(["profile", "bimlp_xs", "--img-size", "16", "--mode", mode, "--json",
                 str(json_path)])
    assert code == 0
    report = capsys.readouterr().out.replace(str(json_path), "PROFILE.json")
    _compare(GOLDEN / f"bimlp_xs_16_{mode}.txt", report)
    # the JSON's totals and stages (its per-layer rows are the text's, exactly)
    data = json.loads(json_path.read_text())
    layers = data.pop("layers")
    assert [row["name"] for row in layers if row["macs"]][:2] == ["patch_embed.proj",
                                                                   "network.0.0.attn.fc_h"]
    _compare(GOLDEN / f"bimlp_xs_16_{mode}.json", json.dumps(data, indent=1) + "\n")
