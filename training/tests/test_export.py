"""Both models export to ONNX (opset 17, the contract's names and dynamic axes); checker passes.

This guards the exportability of the ops used, and that message passing sums with ScatterND
(whole rows) rather than the element-wise ScatterElements, 10-17x slower in ONNX Runtime
(docs/benchmarks.md).
"""

from __future__ import annotations

import io

import onnx  # Debian's python3-onnx, installed by scripts/install-training.sh
import pytest
import torch
from conftest import FE, F

from meshwatch_training.models import Detector, Forecaster

AXES = {
    "node_features": {0: "T", 1: "N"},
    "node_mask": {0: "T", 1: "N"},
    "edge_index": {1: "E"},
    "edge_weight": {0: "T", 1: "E"},
    "edge_features": {0: "T", 1: "E"},
    "window_start": {0: "T"},
}


@pytest.mark.parametrize("kind", ["detector", "forecaster"])
def test_exports_with_contract_names(kind: str) -> None:
    t, n, e = 3, 4, 5
    args = [
        torch.randn(t, n, F),
        torch.ones(t, n),
        torch.randint(0, n, (2, e)),
        torch.ones(t, e),
        torch.randn(t, e, FE),
    ]
    if kind == "detector":
        model, outputs = Detector(F, FE, dim=16), ["anomaly_score", "feature_contribution"]
    else:
        model, outputs = Forecaster(F, FE, dim=16), ["forecast", "forecast_interval"]
        args.append(1_700_000_000 + 60 * torch.arange(t))
    inputs = list(AXES)[: len(args)]
    buf = io.BytesIO()
    torch.onnx.export(
        model.eval(),
        tuple(args),
        buf,
        opset_version=17,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={k: AXES[k] for k in inputs},
    )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == inputs
    assert [o.name for o in proto.graph.output] == outputs
    ops = [node.op_type for node in proto.graph.node]
    assert "ScatterND" in ops
    assert "ScatterElements" not in ops
    edge_index = next(i for i in proto.graph.input if i.name == "edge_index")
    assert edge_index.type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_masked_lower_median_matches_numpy_and_runs_in_onnxruntime() -> None:
    """The forecaster's robust normalisation: the lower median of the present steps (absent
    steps ignored, a node with none gives 0), the same in PyTorch and in ONNX Runtime for a T,
    N and E other than the ones exported with."""
    import numpy as np
    import onnxruntime as ort

    from meshwatch_training.models.forecaster import masked_lower_median

    g = torch.Generator().manual_seed(5)
    x = torch.randn(7, 6, 3, generator=g)
    m = (torch.rand(7, 6, 1, generator=g) > 0.4).float()
    m[:, 0] = 0.0  # a node never present
    got = masked_lower_median(x, m)
    for n in range(6):
        rows = m[:, n, 0] > 0
        for f in range(3):
            vals = np.sort(x[rows, n, f].numpy())
            want = 0.0 if vals.size == 0 else vals[(vals.size - 1) // 2]
            assert float(got[n, f]) == pytest.approx(float(want)), (n, f)

    model = Forecaster(F, FE, dim=16, robust_norm=True).eval()

    def inputs(t: int, n: int, e: int) -> tuple[torch.Tensor, ...]:
        return (
            torch.randn(t, n, F),
            (torch.rand(t, n) > 0.3).float(),
            torch.randint(0, n, (2, e)),
            torch.ones(t, e),
            torch.randn(t, e, FE),
            1_700_000_000 + 60 * torch.arange(t),
        )

    args = inputs(5, 4, 6)
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        args,
        buf,
        opset_version=17,
        input_names=list(AXES),
        output_names=["forecast", "forecast_interval"],
        dynamic_axes=AXES,
    )
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    args2 = inputs(9, 7, 11)  # another T, N and E
    with torch.no_grad():
        want = model(*args2)
    got = sess.run(None, {k: v.numpy() for k, v in zip(AXES, args2, strict=True)})
    for w, o in zip(want, got, strict=True):
        np.testing.assert_allclose(o, w.numpy(), atol=1e-4, rtol=1e-3)
