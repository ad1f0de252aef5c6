//! The commands of the `meshwatch` binary, as a library so that tests can call them.

pub mod bench;
pub mod dataset;
pub mod demo;
pub mod input;
pub mod loadgen;
pub mod migrate;
pub mod model;
pub mod offline;
pub mod output;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod snapshot;
