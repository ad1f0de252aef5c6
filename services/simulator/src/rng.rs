//! The simulator's own pseudo-random numbers: xoshiro256** (Blackman and Vigna, 2018) seeded
//! through SplitMix64 (Steele, Lea and Flood, 2014). No global generator, no `rand`: the same
//! seed gives the same stream on every run, which is what makes the output reproducible.

/// SplitMix64 step: used to expand a seed into xoshiro's state and to derive stream seeds.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256**: fast, 256 bits of state, passes BigCrush.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        if s == [0; 4] {
            // The all-zero state is the one fixed point; SplitMix64 never yields it in
            // practice, but the invariant is cheap to keep.
            s[0] = 1;
        }
        Self { s }
    }

    /// An independent generator for a named sub-stream (`stream` distinguishes them), so that
    /// adding draws to one part of the simulation does not shift the numbers of another.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        Self::new(splitmix64(&mut sm))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`: safe under `ln`.
    fn f64_open(&mut self) -> f64 {
        1.0 - self.f64()
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n == 0` gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index in `0..n` (`n == 0` gives 0).
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// Uniform integer in `lo..=hi` (`hi < lo` gives `lo`).
    pub fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.f64() < p)
    }

    /// Standard normal (Box–Muller, one value per call: simple and stateless).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64_open();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and shape `sigma` (of the underlying normal).
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.f64_open().ln()
    }

    /// Poisson-distributed count with the given mean: Knuth's product method for small means,
    /// a rounded normal approximation (continuity-corrected, clamped at 0) above 30.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            let x = mean + mean.sqrt() * self.normal() + 0.5;
            return if x <= 0.0 { 0 } else { x.floor() as u64 };
        }
        let limit = (-mean).exp();
        let mut k = 0u64;
        let mut p = self.f64_open();
        while p > limit {
            k += 1;
            p *= self.f64_open();
        }
        k
    }

    /// A non-zero 8-byte id.
    pub fn id8(&mut self) -> [u8; 8] {
        (self.next_u64() | 1).to_be_bytes()
    }

    /// A non-zero 16-byte id.
    pub fn id16(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&(self.next_u64() | 1).to_be_bytes());
        id
    }

    /// Discrete power law on `1..=max`: `P(k) ∝ k^-alpha` (inverse transform on the table).
    pub fn power_law(&mut self, alpha: f64, max: u32) -> u32 {
        let max = max.max(1);
        let total: f64 = (1..=max).map(|k| f64::from(k).powf(-alpha)).sum();
        let mut x = self.f64() * total;
        for k in 1..=max {
            x -= f64::from(k).powf(-alpha);
            if x < 0.0 {
                return k;
            }
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::derive(7, 1);
        let mut d = Rng::derive(7, 2);
        assert_ne!(c.next_u64(), d.next_u64());
    }

    #[test]
    fn distributions_have_their_moments() {
        let mut r = Rng::new(42);
        let n = 200_000;
        let mean_u: f64 = (0..n).map(|_| r.f64()).sum::<f64>() / f64::from(n);
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let mean_n: f64 = (0..n).map(|_| r.normal()).sum::<f64>() / f64::from(n);
        assert!(mean_n.abs() < 0.01, "{mean_n}");
        for mean in [0.3, 4.0, 25.0, 500.0] {
            let m: f64 = (0..n).map(|_| r.poisson(mean) as f64).sum::<f64>() / f64::from(n);
            assert!((m - mean).abs() < 0.02 * mean + 0.01, "{mean}: {m}");
        }
        let mut lat: Vec<f64> = (0..n).map(|_| r.lognormal(10.0, 0.5)).collect();
        lat.sort_by(f64::total_cmp);
        let median = lat[lat.len() / 2];
        assert!((median - 10.0).abs() < 0.2, "{median}");
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            let k = r.power_law(2.0, 5);
            assert!((1..=5).contains(&k));
            assert!((3..=6).contains(&r.range_u32(3, 6)));
        }
        assert_eq!(r.below(0), 0);
    }
}
