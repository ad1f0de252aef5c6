//! The commands of the `meshwatch` binary, as a library so that tests can call them.

pub mod bench;
pub mod input;
pub mod snapshot;
