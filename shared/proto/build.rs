//! Compiles every `.proto` file under the workspace's `proto/` directory with `tonic-prost-build`,
//! using the `protoc` shipped by `protoc-bin-vendored` (no system protoc needed).
//!
//! Messages get `prost::Name` implementations (full type names), and every service gets both a
//! client and a server. A file descriptor set is written next to the generated code for gRPC
//! reflection.

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let proto_root = proto_root
        .canonicalize()
        .map_err(|e| format!("proto directory {} not found: {e}", proto_root.display()))?;
    // A directory in rerun-if-changed is scanned recursively: new, removed or edited files
    // re-run this script.
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut protos = Vec::new();
    collect_protos(&proto_root, &mut protos)?;
    protos.sort();
    if protos.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.enable_type_names();

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out_dir.join("meshwatch_descriptor.bin"))
        .compile_with_config(config, &protos, &[proto_root])?;
    Ok(())
}

/// Appends every `*.proto` file below `dir` (recursively) to `out`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
