//! Registration of the execution provider a model asked for, with the CPU fallback policy.

use ort::session::builder::SessionBuilder;

use super::ExecutionProvider;
use crate::error::ModelError;

/// Registers `requested` on `builder`: the builder and the provider really used. A provider
/// that cannot be registered is an error, or the CPU (logged) with `fallback_to_cpu`.
pub(super) fn register_provider(
    builder: SessionBuilder,
    requested: ExecutionProvider,
    fallback_to_cpu: bool,
) -> Result<(SessionBuilder, ExecutionProvider), ModelError> {
    match requested {
        ExecutionProvider::Cpu => Ok((builder, ExecutionProvider::Cpu)),
        ExecutionProvider::Cuda {
            device_id,
            memory_limit_bytes,
        } => match register_cuda(builder, device_id, memory_limit_bytes) {
            (builder, None) => Ok((builder, requested)),
            (builder, Some(message)) if fallback_to_cpu => {
                tracing::warn!(
                    device_id,
                    %message,
                    "cuda execution provider unavailable; running on the cpu"
                );
                Ok((builder, ExecutionProvider::Cpu))
            }
            (_, Some(message)) => Err(ModelError::ExecutionProviderUnavailable {
                provider: "cuda",
                message,
            }),
        },
    }
}

/// Registers the CUDA execution provider; on failure the builder comes back unchanged with
/// the reason.
#[cfg(feature = "cuda")]
fn register_cuda(
    builder: SessionBuilder,
    device_id: i32,
    memory_limit_bytes: Option<u64>,
) -> (SessionBuilder, Option<String>) {
    // TF32 off: ONNX Runtime's CUDA EP turns it on by default, and its 10-bit mantissa moved
    // the committed models' outputs past their parity tolerance on an H200 (scores by 1e-3
    // relative, feature contributions by up to 0.06); these models are too small to gain from
    // it.
    let mut cuda = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .with_tf32(false);
    if let Some(limit) = memory_limit_bytes {
        // a limit beyond the address space is no limit
        cuda = cuda.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let cuda = cuda.build().error_on_failure();
    match builder.with_execution_providers([cuda]) {
        Ok(builder) => (builder, None),
        Err(error) => {
            let message = error.to_string();
            (error.recover(), Some(message))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    builder: SessionBuilder,
    _device_id: i32,
    _memory_limit_bytes: Option<u64>,
) -> (SessionBuilder, Option<String>) {
    (
        builder,
        Some(
            "this build of meshwatch-model has no `cuda` feature (build with --features cuda)"
                .to_owned(),
        ),
    )
}
