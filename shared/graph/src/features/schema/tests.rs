//! Unit tests of the schema: names, one-hot order, presence flags, transforms by hand.

use std::collections::BTreeSet;

use super::*;

#[test]
fn names_are_unique_and_lower_snake_case() {
    for names in [&NODE_FEATURE_NAMES[..], &EDGE_FEATURE_NAMES, &TARGET_NAMES] {
        let set: BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len(), "{names:?}");
        for n in names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
    }
}

#[test]
fn texts_fit_in_markdown_tables() {
    let texts = NODE_FEATURES
        .iter()
        .map(|f| f.meaning)
        .chain(EDGE_FEATURES.iter().map(|f| f.meaning))
        .chain(TARGETS.iter().flat_map(|t| [t.meaning, t.unit]));
    for text in texts {
        assert!(!text.contains('|') && !text.contains('\n'), "{text}");
    }
}

#[test]
fn kind_one_hots_follow_node_kinds() {
    for (i, kind) in NODE_KINDS.iter().enumerate() {
        assert_eq!(
            NODE_FEATURES[i].name,
            format!("kind_{}", node_kind_name(*kind))
        );
        assert_eq!(node_kind_index(*kind), i);
        let node = Node::new("x".into(), *kind);
        let hot: Vec<f32> = NODE_FEATURES[..NODE_KINDS.len()]
            .iter()
            .map(|f| f.value(&node, 60.0))
            .collect();
        let mut want = vec![0.0; NODE_KINDS.len()];
        want[i] = 1.0;
        assert_eq!(hot, want);
    }
    for (i, ct) in CONNECTION_TYPES.iter().enumerate() {
        let edge = Edge::new("a".into(), "b".into(), *ct);
        let hot: Vec<f32> = EDGE_FEATURES[7..]
            .iter()
            .map(|f| f.value(&edge, 60.0))
            .collect();
        let mut want = vec![0.0; CONNECTION_TYPES.len()];
        want[i] = 1.0;
        assert_eq!(hot, want, "{ct:?}");
    }
}

#[test]
fn every_presence_flag_follows_a_value() {
    for (i, f) in NODE_FEATURES.iter().enumerate() {
        if let Some(base) = f.name.strip_suffix("_present") {
            if base == "in_gap" {
                continue;
            }
            assert_eq!(f.transform, Transform::Presence);
            assert_eq!(NODE_FEATURES[i - 1].name, base, "flag after its value");
        }
    }
}

#[test]
fn transforms_by_hand() {
    assert_eq!(Transform::Log1p.apply(0.0), 0.0);
    assert_eq!(Transform::Log1p.apply(-5.0), 0.0);
    assert!((Transform::Log1p.apply(std::f64::consts::E - 1.0) - 1.0).abs() < 1e-7);
    assert!((Transform::SignedLog1p.apply(-(std::f64::consts::E - 1.0)) + 1.0).abs() < 1e-7);
    assert_eq!(Transform::Ratio.apply(1.5), 1.0);
    assert_eq!(Transform::Ratio.apply(-0.5), 0.0);
    assert_eq!(Transform::Ratio.apply(0.25), 0.25);
    for t in [
        Transform::Log1p,
        Transform::SignedLog1p,
        Transform::Ratio,
        Transform::Presence,
        Transform::OneHot,
    ] {
        assert_eq!(t.apply(f64::NAN), 0.0);
        assert_eq!(t.apply(f64::INFINITY), 0.0);
        assert!(t.apply(f64::MAX).is_finite());
        assert!(t.apply(f64::MIN).is_finite());
    }
}

#[test]
fn markdown_lists_every_feature_in_order() {
    let md = schema_markdown();
    let mut at = 0;
    for name in NODE_FEATURE_NAMES
        .iter()
        .chain(&EDGE_FEATURE_NAMES)
        .chain(&TARGET_NAMES)
    {
        let needle = format!("| `{name}` |");
        let pos = md[at..].find(&needle).map(|p| p + at);
        assert!(pos.is_some(), "{name} missing or out of order");
        at = pos.unwrap_or(at);
    }
}
