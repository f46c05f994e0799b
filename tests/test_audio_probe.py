"""`fusebench perf audio`'s parts: finding the spoken-digit clips among a package's files, and the probe's
folds holding out whole digits (the figures themselves are printed by the command, not asserted)."""

from __future__ import annotations

import numpy as np

from benchmark.perf.audio_probe import probe, spoken_digits


def test_spoken_digits_are_the_math_stamps_named_digit_voice():
    files = {"symbols/math/3_fr.ogg": b"a", "symbols/math/0_desc_de.ogg": b"b", "symbols/math/plus.ogg": b"c",
             "animals/cat/3_fr.ogg": b"d", "symbols/math/12_fr.ogg": b"e", "symbols/math/7_pt_BR.ogg": b"f"}
    clips, digits, voices = spoken_digits(files)
    assert clips == [b"b", b"a", b"f"]
    assert digits.tolist() == [0, 3, 7] and voices.tolist() == ["de", "fr", "pt_BR"]


def test_probe_separates_voices_and_holds_out_digits():
    rng = np.random.default_rng(0)
    voices = np.repeat([f"v{k}" for k in range(4)], 10)  # (40,): 4 voices x 10 digits
    digits = np.tile(np.arange(10), 4)
    centres = rng.normal(size=(4, 8)) * 3.0
    informative = centres[np.repeat(np.arange(4), 10)] + rng.normal(size=(40, 8)) * 0.3  # voice decides
    noise = rng.normal(size=(40, 8))
    scores = probe({"voice": informative, "noise": noise}, voices, digits)
    assert scores["voice"][0] > 0.9 and scores["noise"][0] < 0.6
