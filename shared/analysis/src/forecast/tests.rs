use super::*;
use crate::id::stable_id;

fn point(h: u32, value: f64) -> ForecastPoint {
    ForecastPoint {
        horizon: h,
        target_window_start_ms: 1_000 + i64::from(h) * 10_000,
        value,
        lower: value * 0.8,
        upper: value * 1.2,
    }
}

fn series(service: &str, metric: &str, values: &[f64]) -> MetricForecast {
    MetricForecast {
        service: service.to_owned(),
        metric: metric.to_owned(),
        points: values
            .iter()
            .zip(1u32..)
            .map(|(&v, h)| point(h, v))
            .collect(),
    }
}

fn forecast(series: Vec<MetricForecast>) -> ForecastInput {
    ForecastInput {
        graph: "shop".to_owned(),
        issued_window_start_ms: 1_000,
        window_ms: 10_000,
        series,
    }
}

fn slo() -> SloConfig {
    SloConfig {
        limits: [
            ("latency_p99_ms".to_owned(), 500.0),
            ("error_ratio".to_owned(), 0.05),
        ]
        .into_iter()
        .collect(),
        overrides: [(
            "batch".to_owned(),
            [("latency_p99_ms".to_owned(), 2_000.0)]
                .into_iter()
                .collect(),
        )]
        .into_iter()
        .collect(),
        basis: ForecastBasis::Value,
    }
}

#[test]
fn first_crossing_within_the_horizon_is_predicted() {
    let input = forecast(vec![series(
        "cart",
        "latency_p99_ms",
        &[300.0, 450.0, 520.0, 700.0, 480.0],
    )]);
    let out = predicted_incidents(&input, &slo()).expect("valid");
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!(p.horizon, 3);
    assert_eq!(p.crossing_window_start_ms, 31_000);
    assert_eq!(p.value, 520.0);
    assert_eq!(p.limit, 500.0);
    assert_eq!(p.peak, 700.0);
    assert_eq!(p.issued_ms, 1_000);
    assert_eq!(p.version, 1_000);
    assert_eq!(
        p.id,
        stable_id(&["predicted", "shop", "cart", "latency_p99_ms", "31000"])
    );
}

#[test]
fn no_crossing_no_slo_or_non_finite_gives_nothing() {
    let input = forecast(vec![
        series("cart", "latency_p99_ms", &[300.0, 499.0]),
        series("cart", "request_rate", &[1e9]),
        series("cart", "error_ratio", &[f64::NAN, f64::INFINITY]),
    ]);
    assert!(
        predicted_incidents(&input, &slo())
            .expect("valid")
            .is_empty()
    );
}

#[test]
fn per_service_override_replaces_the_metric_limit() {
    let input = forecast(vec![
        series("batch", "latency_p99_ms", &[1_500.0]),
        series("batch", "error_ratio", &[0.1]),
    ]);
    let out = predicted_incidents(&input, &slo()).expect("valid");
    let metrics: Vec<&str> = out.iter().map(|p| p.metric.as_str()).collect();
    assert_eq!(metrics, ["error_ratio"]);
}

#[test]
fn basis_selects_the_compared_bound() {
    // value 550 → lower 440 (below 500), upper 660.
    let input = forecast(vec![series("cart", "latency_p99_ms", &[450.0, 550.0])]);
    let with = |basis| SloConfig { basis, ..slo() };
    let value = predicted_incidents(&input, &with(ForecastBasis::Value)).expect("valid");
    assert_eq!(value[0].horizon, 2);
    assert!(
        predicted_incidents(&input, &with(ForecastBasis::Lower))
            .expect("valid")
            .is_empty()
    );
    let upper = predicted_incidents(&input, &with(ForecastBasis::Upper)).expect("valid");
    assert_eq!(upper[0].horizon, 1, "450·1.2 = 540 > 500");
    assert_eq!(upper[0].basis, ForecastBasis::Upper);
}

#[test]
fn ids_are_stable_across_issues_and_points_order_does_not_matter() {
    let mut a = forecast(vec![series("cart", "error_ratio", &[0.01, 0.02, 0.09])]);
    let mut b = a.clone();
    b.issued_window_start_ms = 11_000;
    b.series[0].points.reverse();
    let pa = predicted_incidents(&a, &slo()).expect("valid");
    let pb = predicted_incidents(&b, &slo()).expect("valid");
    assert_eq!(pa[0].id, pb[0].id);
    assert!(pb[0].version > pa[0].version);
    // The crossing moves: a new id.
    a.series[0].points[1].value = 0.06;
    let moved = predicted_incidents(&a, &slo()).expect("valid");
    assert_ne!(moved[0].id, pa[0].id);
}

#[test]
fn non_finite_limits_are_rejected() {
    let mut config = slo();
    config.limits.insert("x".to_owned(), f64::NAN);
    config
        .overrides
        .entry("batch".to_owned())
        .or_default()
        .insert("y".to_owned(), f64::INFINITY);
    let Err(AnalysisError::InvalidConfig { problems }) = config.validate() else {
        panic!("accepted");
    };
    assert_eq!(problems.len(), 2);
}

#[test]
fn slo_config_parses_from_json_with_defaults() {
    let config: SloConfig =
        serde_json::from_str(r#"{"limits": {"latency_p99_ms": 500.0}, "basis": "lower"}"#)
            .expect("parse");
    assert_eq!(config.basis, ForecastBasis::Lower);
    assert_eq!(config.limit("any", "latency_p99_ms"), Some(500.0));
    assert!(serde_json::from_str::<SloConfig>(r#"{"limit": {}}"#).is_err());
}
