"""Static checks of deploy/docker/Dockerfile and .dockerignore (no Docker engine runs here):
pinned bases, non-root users, the health-check decision, COPY sources that exist and are in
the build context, versions that agree with rust-toolchain.toml and scripts/install-ort.sh,
and the binaries the chart runs."""

from __future__ import annotations

import re
import tomllib

import pytest

from conftest import COMPONENTS, REPO

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and (line.lstrip().startswith("#") or not line.strip()):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


TEXT = DOCKERFILE.read_text()
INSTR = instructions(TEXT)
ARGS = {}
for word, rest in INSTR:
    if word == "ARG" and "=" in rest:
        k, v = rest.split("=", 1)
        ARGS.setdefault(k, v.strip('"'))


def stages() -> dict[str, list[tuple[str, str]]]:
    out, name = {}, None
    for word, rest in INSTR:
        if word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            name = m[2] or f"stage{len(out)}"
            out[name] = [(word, rest)]
        elif name:
            out[name].append((word, rest))
    return out


STAGES = stages()


def expand(s: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: ARGS.get(m[1] or m[2], m[0]), s)


def test_bases_are_pinned():
    for name, body in STAGES.items():
        image = expand(re.match(r"(?:--platform=\S+\s+)?(\S+)", body[0][1])[1])
        if image in STAGES:
            continue
        assert "$" not in image, f"stage {name}: base {image} comes from an ARG without a default"
        assert "@sha256:" in image or re.search(r":[^/]*\d", image), f"stage {name}: {image} is not pinned"
        assert not image.endswith(":latest"), f"stage {name}: {image}"


def test_runtime_targets_run_as_non_root():
    for target in ("runtime", "runtime-cuda"):
        users = [rest for word, rest in STAGES[target] if word == "USER"]
        assert users, f"{target}: no USER"
        uid = users[-1].split(":")[0]
        assert uid not in ("0", "root") and uid.isdigit() and int(uid) >= 1000, f"{target}: USER {users[-1]}"
        # the chart's pod security context runs as the same id
        assert uid == "65532"


def test_healthcheck_or_documented_why_not():
    if any(word == "HEALTHCHECK" for word, _ in INSTR):
        return
    assert re.search(r"^# HEALTHCHECK: none, on purpose\.", TEXT, re.M), "no HEALTHCHECK and no reason given"


def dockerignore_regexes() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**", i):
                rx += ".*"
                i += 2
                if pat.startswith("/", i):
                    rx += "/?"
                    i += 1
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        rules.append((negate, re.compile(rf"^{rx}(/.*)?$")))
    return rules


def in_context(path: str) -> bool:
    excluded = False
    for negate, rx in dockerignore_regexes():
        if rx.match(path):
            excluded = not negate
    return not excluded


def test_copy_sources_exist_and_are_in_the_context():
    copies = [rest for word, rest in INSTR if word == "COPY" and "--from=" not in rest]
    assert copies
    for rest in copies:
        parts = [p for p in rest.split() if not p.startswith("--")]
        for src in parts[:-1]:
            path = REPO / src
            assert path.exists(), f"COPY {src}: not in the repository"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            rel = [str(p.relative_to(REPO)) for p in files]
            assert any(in_context(r) for r in rel), f"COPY {src}: excluded by .dockerignore"
            if src.startswith("models/"):
                assert in_context(f"{src}/manifest.json") and in_context(f"{src}/model.onnx")


def test_dockerignore_keeps_the_context_small():
    assert not in_context("target/release/meshwatch")
    assert not in_context("shared/graph/fuzz/target/x")
    assert not in_context(".git/config")
    assert not in_context("training/pyproject.toml")
    assert in_context("shared/graph/src/lib.rs") and in_context("Cargo.lock")


def test_versions_agree_with_the_repository():
    toolchain = tomllib.loads((REPO / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    assert ARGS["RUST_VERSION"] == toolchain
    assert f":{toolchain}-" in ARGS["RUST_IMAGE"]
    ort = re.search(r'^ORT_VERSION="([^"]+)"', (REPO / "scripts" / "install-ort.sh").read_text(), re.M)[1]
    assert ARGS["ORT_VERSION"] == ort
    assert "cuda:13." in ARGS["CUDA_IMAGE"] and "cudnn" in ARGS["CUDA_IMAGE"]


def bin_names() -> set[str]:
    names = set()
    for manifest in (REPO / "services").glob("*/Cargo.toml"):
        for b in tomllib.loads(manifest.read_text()).get("bin", []):
            names.add(b["name"])
    return names


def test_images_carry_the_binaries_the_chart_runs():
    built = set(re.findall(r"\bmeshwatch(?:-[a-z]+)?\b", " ".join(rest for w, rest in STAGES["build"] if w == "RUN")))
    wanted = {"meshwatch"} | {f"meshwatch-{c}" for c in COMPONENTS}
    assert wanted <= bin_names(), f"binaries the chart runs but no crate builds: {wanted - bin_names()}"
    assert wanted <= built
    runs = [rest for w, rest in STAGES["build"] if w == "RUN" and "cargo build" in rest]
    assert any(
        "--release" in r and "--locked" in r and "meshwatch-detector/cuda" in r and "meshwatch-forecaster/cuda" in r
        for r in runs
    ), "no CUDA build of the inference services"


@pytest.mark.parametrize("target", ["runtime", "runtime-cuda"])
def test_runtime_environment(target):
    env = " ".join(rest for w, rest in STAGES[target] if w == "ENV")
    assert "ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.${ORT_VERSION}" in env
    # a MESHWATCH_<SECTION>__<KEY> variable would be read as configuration by every service
    assert not re.search(r"MESHWATCH_\w*__", env)
    copies = " ".join(rest for w, rest in STAGES[target] if w == "COPY")
    assert "/opt/meshwatch/models/detector" in copies and "/opt/meshwatch/models/forecaster" in copies
    if target == "runtime-cuda":
        assert "onnxruntime-gpu" in copies
