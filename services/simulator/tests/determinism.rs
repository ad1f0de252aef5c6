//! Same seed, same output: byte-identical files; another seed, other output.

use std::path::Path;
use std::time::Duration;

use meshwatch_simulator::driver::run_to_files;
use meshwatch_simulator::output::FileFormat;
use meshwatch_simulator::{SimulationSettings, faults::FaultSpec};

const START_MS: i64 = 1_736_150_400_000;

fn settings(seed: u64) -> SimulationSettings {
    let mut s = SimulationSettings {
        topology: "socialnetwork".parse().expect("topology"),
        seed,
        rate: 40.0,
        ..SimulationSettings::default()
    };
    s.faults
        .push(FaultSpec::parse("crash:service=text-service,start=1m,duration=1m").expect("spec"));
    s.random_faults.count = 1;
    s.random_faults.duration = Duration::from_secs(30);
    s
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("file"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_gives_byte_identical_files() {
    for format in [FileFormat::OtlpJson, FileFormat::OtlpProto] {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        let c = tempfile::tempdir().expect("tmp");
        let d = Duration::from_secs(180);
        let ra = run_to_files(&settings(5), START_MS, d, a.path(), format).expect("runs");
        let rb = run_to_files(&settings(5), START_MS, d, b.path(), format).expect("runs");
        run_to_files(&settings(6), START_MS, d, c.path(), format).expect("runs");
        assert_eq!(
            (ra.stats, &ra.labels, ra.trace_requests),
            (rb.stats, &rb.labels, rb.trace_requests)
        );
        assert!(ra.stats.spans > 10_000);
        assert_eq!(ra.labels.len(), 2, "the fixed fault and one random fault");
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        assert_eq!(fa.len(), 3);
        for ((name, x), (_, y)) in fa.iter().zip(&fb) {
            assert!(!x.is_empty(), "{name}");
            assert!(x == y, "{name} differs between two runs with the same seed");
        }
        let traces = |f: &[(String, Vec<u8>)]| {
            f.iter()
                .find(|(n, _)| n.starts_with("traces"))
                .map(|(_, b)| b.clone())
        };
        assert_ne!(traces(&fa), traces(&fc), "another seed, other traces");
    }
}
