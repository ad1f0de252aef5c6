"""scripts/ort-profile-summary.py on a small ONNX Runtime profile written here: per-run kernel
time by execution provider, by operator and by node, and a clear error for a file that is not
a profile. Run by `unittest discover` (scripts/test.sh)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "ort-profile-summary.py"


def kernel(node: str, op: str, provider: str, dur: int) -> dict:
    return {
        "cat": "Node",
        "name": f"{node}_kernel_time",
        "dur": dur,
        "args": {"op_name": op, "provider": provider},
    }


class SummaryTest(unittest.TestCase):
    def run_script(self, events: object) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "profile.json"
            path.write_text(json.dumps(events) if not isinstance(events, str) else events)
            return subprocess.run(
                [sys.executable, str(SCRIPT), str(path), "--top", "2"],
                capture_output=True,
                text=True,
                check=False,
            )

    def test_times_are_per_run_and_grouped(self) -> None:
        events = []
        for run in range(2):
            events.append({"cat": "Session", "name": "model_run", "dur": 1000 + 1000 * run})
            events.append(kernel("/Mul", "Mul", "CUDAExecutionProvider", 300))
            events.append(kernel("/Mul_1", "Mul", "CUDAExecutionProvider", 100))
            events.append(kernel("/Shape", "Shape", "CPUExecutionProvider", 50))
            # the node's fence events are not kernel time
            events.append({"cat": "Node", "name": "/Mul_fence_before", "dur": 999})
        done = self.run_script(events)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = done.stdout
        self.assertIn("model_run: 2 runs, median 1.500 ms, mean 1.500 ms", out)
        self.assertRegex(out, r"CUDA\s+400\.0\n")
        self.assertRegex(out, r"CPU\s+50\.0\n")
        self.assertRegex(out, r"CUDA Mul\s+400\.0\n")
        self.assertRegex(out, r"CUDA Mul\s+300\.0  /Mul\n")
        # --top 2: the third node is left out
        self.assertNotIn("/Shape\n", out.split("nodes, top 2")[1])

    def test_a_file_that_is_not_json_is_an_error(self) -> None:
        done = self.run_script("{not json")
        self.assertEqual(done.returncode, 1)
        self.assertIn("profile.json", done.stderr)


if __name__ == "__main__":
    unittest.main()
