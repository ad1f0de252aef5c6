"""``reexport``: a committed artifact exported again with its own weights computes the same
function (checked inside against the old file on every parity case); wrong weights are refused."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from meshwatch_training.reexport import ReexportError, reexport

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("kind", ["detector", "forecaster"])
def test_reexport_keeps_the_function_and_the_record(kind: str, tmp_path: pathlib.Path) -> None:
    artifact = MODELS / kind
    out = tmp_path / kind
    report = reexport(artifact, out, artifact / "weights.npz")
    old = json.loads((artifact / "manifest.json").read_text())
    new = json.loads((out / "manifest.json").read_text())
    assert report["cases_checked"] == len(old["parity"]["cases"])
    assert new["reexported_from"]["sha256"] == old["sha256"]
    for key in ("training", "metrics", "config", "node_features", "steps", "window_ms"):
        assert new[key] == old[key], key
    assert (out / "weights.npz").is_file()
    assert (out / "MODEL_CARD.md").read_text().count("Re-exported") == 1


def test_other_weights_are_refused(tmp_path: pathlib.Path) -> None:
    artifact = MODELS / "detector"
    with np.load(artifact / "weights.npz") as stored:
        state = {k: stored[k] for k in stored.files}
    name = next(k for k, v in state.items() if v.dtype == np.float32 and v.ndim == 2)
    state[name] = state[name] + 0.5
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **state)
    with pytest.raises(ReexportError, match="do not reproduce"):
        reexport(artifact, tmp_path / "out", wrong)
    assert not (tmp_path / "out").exists()
