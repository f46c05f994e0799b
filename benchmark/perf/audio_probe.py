"""`fusebench perf audio`: how much each audio encoder's pooled features hold, on real speech from the
package registries. The clips are the spoken digits of Debian ``tuxpaint-stamps-default``
(``symbols/math/<digit>_<language>.ogg``: digits 0-9 said by volunteers in about 20 languages), read
straight from the .deb the ``tuxpaint_stamps`` built-in fetches (pinned version and sha256).

Task: which voice speaks (one voice per language), with folds that hold out whole digits, so a
probe cannot lean on the words. Each encoder's pooled vectors (raw: ``standardize: false``, z-scored
inside each training fold) go to a scikit-learn logistic regression; the reference is the same
regression on MFCC means and standard deviations over frames. These are figures printed by a
command, not a test."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import numpy as np

DIGIT_CLIP = re.compile(r"^(?P<digit>[0-9])_(?:desc_)?(?P<voice>[A-Za-z_@]+)\.ogg$")
MIN_CLIPS_PER_VOICE = 9  # a voice heard in fewer digit clips is left out (too few to split)


def spoken_digits(files: dict[str, bytes]) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """(clips, digits (N,), voices (N,)) of the digit recordings among the package's stamp files
    (relative path -> bytes), in path order."""
    clips, digits, voices = [], [], []
    for path in sorted(files):
        parts = PurePosixPath(path).parts
        match = DIGIT_CLIP.match(parts[-1])
        if match and "math" in parts:
            clips.append(files[path])
            digits.append(int(match["digit"]))
            voices.append(match["voice"])
    return clips, np.array(digits), np.array(voices)


def digit_clips_from_package(downloads) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The digit clips of the pinned ``tuxpaint-stamps-default`` .deb (downloaded into ``downloads``
    once, like the built-in dataset)."""
    from benchmark.data import tuxpaint
    from benchmark.data.fetch import debian_download

    deb = debian_download(tuxpaint.PACKAGE, tuxpaint.VERSION, tuxpaint.POOL_PATH, tuxpaint.SHA256, downloads)
    return spoken_digits(_all_oggs(deb))


def _all_oggs(deb) -> dict[str, bytes]:
    """Every .ogg of the package (the built-in dataset keeps one spoken language only)."""
    from benchmark.data import tuxpaint

    return tuxpaint.read_deb(deb, keep=lambda relative: relative.endswith(".ogg"))


def probe(features: dict[str, np.ndarray], voices: np.ndarray, digits: np.ndarray, folds: int = 5
          ) -> dict[str, tuple[float, float]]:
    """title -> (mean, sd) of the voice-identification accuracy over ``folds`` folds that hold out
    whole digits (GroupKFold by digit); features z-scored inside each training fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep = np.isin(voices, [v for v in set(voices) if (voices == v).sum() >= MIN_CLIPS_PER_VOICE])
    out = {}
    for title, x in features.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        scores = cross_val_score(model, x[keep], voices[keep], cv=GroupKFold(folds), groups=digits[keep])
        out[title] = (float(scores.mean()), float(scores.std()))
    return out


def main(encoders: list[str]) -> int:
    from benchmark.features.catalog import get_encoder
    from benchmark.paths import state_dir

    clips, digits, voices = digit_clips_from_package(state_dir() / "downloads")
    kept = sum((voices == v).sum() >= MIN_CLIPS_PER_VOICE for v in set(voices))
    print(f"{len(clips)} spoken-digit clips, {len(set(voices))} voices ({kept} with >= {MIN_CLIPS_PER_VOICE} clips "
          f"kept); task: which voice speaks, folds holding out whole digits")
    features = {}
    mfcc = get_encoder("mfcc", standardize=False).encode(clips).pooled.numpy()  # (N, 3 * 20): mean, sd, |delta|
    features["MFCC mean + sd (reference, logistic regression)"] = mfcc[:, :40]
    for name in encoders:
        features[f"`{name}` pooled"] = get_encoder(name, standardize=False).encode(clips).pooled.numpy()
    majority = max((voices == v).sum() for v in set(voices)) / len(voices)
    print(f"| features | accuracy (mean ± sd over folds) |\n|---|---|\n| majority voice | {majority:.3f} |")
    for title, (mean, sd) in probe(features, voices, digits).items():
        print(f"| {title} | {mean:.3f} ± {sd:.3f} |")
    return 0
