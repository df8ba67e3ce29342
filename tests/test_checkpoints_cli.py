"""The CLI side of weights and preprocessing: `zoo extract` prints, returns (--json) and writes
(manifest) the provenance; --size / --crop-pct are honoured and recorded; a checkpoint that needs
full unpickling is one clear error until --trust-weights; `zoo info` shows the transform."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from conftest import assert_user_error, run_zoo


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_extract_reports_provenance_and_records_size_overrides(tmp_path: Path):
    result = run_zoo("extract", "toy/cnn", "--layers", "stage1", "--size", "48", "--crop-pct",
                     "0.75", "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    prov = summary["provenance"]
    assert prov["id"] == "toy/cnn" and prov["random_init"] and prov["weights_sha256"] is None
    assert prov["preprocessing"]["size"] == 48 and prov["preprocessing"]["crop_pct"] == 0.75
    assert prov["preprocessing"]["override"] == "size=48,crop_pct=0.75"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["provenance"] == prov
    table = run_zoo("extract", "toy/cnn", "--layers", "stage1")
    assert table.returncode == 0, table.stderr
    assert "weights: random init" in table.stdout and "input: 32 px" in table.stdout


def test_a_checkpoint_needing_full_unpickling_is_refused_until_trusted(tmp_path: Path):
    from zoo.registry.host import get_registry

    state = get_registry().model("toy/cnn").load().module.state_dict()
    marker = tmp_path / "ran"
    torch.save({**state, "note": Payload(marker)}, tmp_path / "toy.pth")
    refused = run_zoo("extract", "toy/cnn", "--weights", str(tmp_path / "toy.pth"),
                      "--layers", "stage1", "--no-cache")
    assert_user_error(refused, "--trust-weights", "system")
    assert not marker.exists()
    torch.save(state, tmp_path / "clean.pth")
    ok = run_zoo("extract", "toy/cnn", "--weights", str(tmp_path / "clean.pth"), "--layers",
                 "stage1", "--no-cache", "--json")
    assert ok.returncode == 0, ok.stderr
    import hashlib

    prov = json.loads(ok.stdout)["provenance"]
    assert prov["weights_sha256"] == hashlib.sha256((tmp_path / "clean.pth").read_bytes()
                                                    ).hexdigest()
    assert prov["weights_source"] == str(tmp_path / "clean.pth") and not prov["random_init"]


def test_info_shows_the_resolved_transform_and_the_caches_it_looks_in():
    result = run_zoo("info", "mae", "--size", "256", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["input"]["crop_pct"] == 0.9 and info["input"]["size"] == 256
    assert info["input"]["library"] == "timm" and info["input"]["override"] == "size=256"
    assert "resize short side to 284" in info["transform"]
    assert [s["entry"] for s in info["sources"]] == [
        "HF cache timm/vit_base_patch16_224.mae", "HF cache facebook/vit-mae-base",
        "torch hub cache mae_pretrain_vit_base.pth"]
