//! The transforms from raw statistics to feature values.

/// How a raw statistic becomes a feature value. Every transform maps a non-finite input to 0,
/// so no feature is ever NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// `ln(1 + max(x, 0))`: rates, latencies, bytes — heavy-tailed, non-negative.
    Log1p,
    /// `sign(x) · ln(1 + |x|)`: the gap, negative when the server span outlasts the client's.
    SignedLog1p,
    /// `x` clipped to `[0, 1]`.
    Ratio,
    /// 1 when the statistic is present (a finite value was received), else 0.
    Presence,
    /// 1 for the item's category, else 0.
    OneHot,
}

impl Transform {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Log1p => "log1p",
            Self::SignedLog1p => "signed_log1p",
            Self::Ratio => "ratio",
            Self::Presence => "presence",
            Self::OneHot => "one_hot",
        }
    }

    /// The formula, for the documentation.
    pub const fn formula(self) -> &'static str {
        match self {
            Self::Log1p => "ln(1 + max(x, 0))",
            Self::SignedLog1p => "sign(x) · ln(1 + abs(x))",
            Self::Ratio => "min(max(x, 0), 1)",
            Self::Presence => "1 if the value is present, else 0",
            Self::OneHot => "1 for the item's category, else 0",
        }
    }

    /// The feature value of raw statistic `x` (computed in f64, rounded once to f32).
    pub fn apply(self, x: f64) -> f32 {
        if !x.is_finite() {
            return 0.0;
        }
        let y = match self {
            Self::Log1p => x.max(0.0).ln_1p(),
            Self::SignedLog1p => x.signum() * x.abs().ln_1p(),
            Self::Ratio => x.clamp(0.0, 1.0),
            Self::Presence | Self::OneHot => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        };
        // ln(1 + f64::MAX) is about 710: every value fits an f32.
        y as f32
    }
}
