"""The `pixels` reference family: each statistic against a hand-computed answer on synthetic
images, and `zoo compare pixels MODEL` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.plugins.pixels import BANDS, EDGE_STEPS, GABOR_FREQS, GABOR_ORIENTS, HIST_BINS, SIZE

# Statistics run in float32 on [0, 1] pixels: sums over 224^2 pixels keep ~1e-6 relative accuracy.
TOL = 1e-5


@pytest.fixture(scope="module")
def model():
    return zoo.load("pixels")


def features(model, images):
    """All statistics of uint8 (H, W, 3) arrays, as numpy."""
    x = model.preprocess([Image.fromarray(a) for a in images])
    out = model.forward_layers(x, list(model.layers), stop_early=False)
    return {k: v.numpy() for k, v in out.items()}


def flat(rgb):
    return np.tile(np.array(rgb, dtype=np.uint8), (SIZE, SIZE, 1))


def grating(freq, vertical_stripes=True):
    """A grey sinusoid of `freq` cycles per pixel along x (vertical stripes) or along y."""
    img = np.tile(0.5 + 0.4 * np.cos(2 * np.pi * freq * np.arange(SIZE)), (SIZE, 1))
    img = img if vertical_stripes else img.T
    return np.repeat(np.round(img * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def test_colour_and_luminance_of_flat_images(model):
    f = features(model, [flat((77, 153, 230)), flat((128, 128, 128))])
    hist = f["colour_hist"].reshape(2, 3, HIST_BINS)
    # 77/255 = 0.30 -> bin 2, 153/255 = 0.60 -> bin 4, 230/255 = 0.90 -> bin 7, all pixels
    assert [int(np.argmax(h)) for h in hist[0]] == [2, 4, 7]
    np.testing.assert_allclose(hist.max(axis=2), 1.0, atol=TOL)
    np.testing.assert_allclose(f["colour_moments"][0], [77 / 255, 153 / 255, 230 / 255, 0, 0, 0],
                               atol=TOL)
    grey = 128 / 255
    np.testing.assert_allclose(f["luminance"][1], [grey, 0.0, grey, grey, grey], atol=TOL)
    luma = 0.2126 * 77 / 255 + 0.7152 * 153 / 255 + 0.0722 * 230 / 255
    assert f["luminance"][0, 0] == pytest.approx(luma, abs=TOL)
    np.testing.assert_allclose(f["edges"][0], 0.0, atol=TOL)


def test_a_grating_puts_its_energy_in_its_band_and_orientation(model):
    imgs = [grating(GABOR_FREQS[1]), grating(GABOR_FREQS[1], vertical_stripes=False),
            grating(GABOR_FREQS[0])]
    f = features(model, imgs)
    edges = np.logspace(np.log10(1 / SIZE), np.log10(0.5), BANDS + 1)
    for row, freq in ((0, GABOR_FREQS[1]), (2, GABOR_FREQS[0])):
        assert int(np.argmax(f["spectrum"][row])) == int(np.searchsorted(edges, freq) - 1)
    energy = f["gabor"].reshape(3, len(GABOR_FREQS), GABOR_ORIENTS)
    # vertical stripes vary along x: frequency 1 (0.125), orientation 0; horizontal: pi/2
    assert np.unravel_index(np.argmax(energy[0]), energy[0].shape) == (1, 0)
    assert np.unravel_index(np.argmax(energy[1]), energy[1].shape) == (1, GABOR_ORIENTS // 2)
    assert np.unravel_index(np.argmax(energy[2]), energy[2].shape) == (0, 0)


def test_a_sharp_step_is_two_columns_of_unit_gradient(model):
    img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    img[:, SIZE // 2:] = 255
    f = features(model, [img])["edges"][0]
    # Sobel / 4 of a 0 -> 1 step is 1 on the two columns beside it, 0 elsewhere
    np.testing.assert_allclose(f, [2 / SIZE] * (1 + len(EDGE_STEPS)), atol=TOL)


def test_pixels_refuses_weights_and_is_deterministic(model, tmp_path):
    with pytest.raises(zoo.ZooError, match="pixels has no weights"):
        zoo.load("pixels", weights=str(tmp_path))
    assert zoo.load("pixels", random_init=True).fingerprint == model.fingerprint


def test_compare_pixels_with_a_model():
    result = zoo.compare_models("pixels", "toy/cnn", "samples", "cka", cache=False)
    assert result.values("cka").index.tolist() == [n for n in zoo.load("pixels").layers]
    assert np.isfinite(result.values("cka").to_numpy()).all()


@pytest.mark.slow
def test_compare_pixels_with_a_model_cli(tmp_path):
    from tests.conftest import run_zoo

    out = tmp_path / "run"
    r = run_zoo("compare", "pixels", "toy/cnn", "--random-init", "--data", "samples",
                "-m", "cka", "--images", "0", "--no-cache", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {row["layer_a"] for row in rows} == {"colour_hist", "colour_moments", "luminance",
                                                 "spectrum", "gabor", "edges"}
    assert all(row["value"] is not None for row in rows)
