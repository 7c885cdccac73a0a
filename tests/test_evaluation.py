"""The seeded dev mix behind every denoiser number: reproducible, at the SNR and level it claims."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from streamae.evaluation import SNRS_DB, format_interval, make_test_mix, paired_interval, si_sdr

from conftest import noise, speechlike


def _corpus(root):
    (root / "speech").mkdir()
    (root / "noise").mkdir()
    for i in range(6):
        sf.write(root / "speech" / f"s{i}.flac", speechlike(1.0 + 0.1 * i, seed=i), 16000)
    for name, seed in (("hum", 20), ("hiss", 21)):
        sf.write(root / "noise" / f"{name}.flac", noise(0.7, seed=seed), 16000)  # shorter than speech: tiled


def test_the_dev_mix_is_seeded_and_at_the_snr_and_level_it_claims(tmp_path):
    _corpus(tmp_path)
    mixes = make_test_mix(tmp_path / "speech", tmp_path / "noise")
    again = make_test_mix(tmp_path / "speech", tmp_path / "noise")
    assert [m.snr_db for m in mixes] == [SNRS_DB[i % len(SNRS_DB)] for i in range(6)]
    for m, n in zip(mixes, again):
        np.testing.assert_array_equal(m.noisy, n.noisy)
        assert m.noise in ("hum", "hiss") and m.noise == n.noise
        residual = m.noisy.astype(np.float64) - m.clean
        snr = 10 * np.log10(np.sum(m.clean.astype(np.float64) ** 2) / np.sum(residual ** 2))
        assert abs(snr - m.snr_db) < 0.01
        level = 20 * np.log10(np.sqrt(np.mean(m.noisy.astype(np.float64) ** 2)))
        assert -35.01 < level < -14.99
    other = make_test_mix(tmp_path / "speech", tmp_path / "noise", seed=7)
    assert any(not np.array_equal(a.noisy, b.noisy) for a, b in zip(mixes, other))


def test_si_sdr_ignores_scale_and_counts_what_is_left():
    x = speechlike(1.0).astype(np.float64)
    e = noise(1.0).astype(np.float64)
    x, e = x - x.mean(), e - e.mean()  # SI-SDR removes the mean first
    e -= np.dot(e, x) / np.dot(x, x) * x  # orthogonal to the reference: its power is all error
    expected = 10 * np.log10(np.dot(x, x) / np.dot(e, e))
    assert abs(si_sdr(3.0 * (x + e), x) - expected) < 1e-6
    assert si_sdr(0.5 * x, x) > 100


def test_the_paired_interval_separates_a_real_gain_from_noise():
    """compare_denoisers.py's test: a consistent small gain is marked, zero-mean scatter is not."""
    rng = np.random.default_rng(0)
    scatter = rng.normal(0.0, 0.1, 50)
    mean, low, high = paired_interval(scatter + 0.05, resamples=2000)
    assert low < mean < high and low > 0 and format_interval(mean, low, high).endswith("*")
    mean, low, high = paired_interval(scatter - scatter.mean(), resamples=2000)
    assert low < 0 < high and not format_interval(mean, low, high).endswith("*")
    assert abs(mean) < 1e-12
