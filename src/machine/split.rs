//! Split nodes: a sticky A/B split, its compiled weights, and the pure function that picks a
//! call's variant — no RNG and no clock, so one caller gets one variant on every node, after a
//! restart and in a replay.
//!
//! The variant: the SHA-256 of the salt's bytes, one 0x00 byte and the key's bytes (the caller in
//! E.164, `+` first, or the session id); its first 8 bytes read big-endian, mod `BUCKETS` (10 000),
//! is the caller's bucket `b`. With the variants sorted by name and `total` the sum of their
//! weights, the variant is the first whose cumulative weight `c` has `b × total < c × BUCKETS`.
//! A caller listed in `force` gets that variant whatever the hash says.

use sha2::{Digest, Sha256};

/// Buckets a caller is hashed into: weights resolve to 0.01% of callers.
pub const BUCKETS: u64 = 10_000;
/// Most variants of one split: an experiment of more arms than this needs more callers than an
/// IVR sees, and each variant is a class the explorer runs the call from.
pub const VARIANTS_MAX: usize = 16;
/// Largest sum of a split's weights: as fine as the buckets go (weights of 1 in 10 000).
pub const WEIGHTS_TOTAL_MAX: u64 = BUCKETS;
/// Longest variant name: it is a metric label and an edge's label.
pub const VARIANT_CHARS_MAX: usize = 32;
/// Most forced callers of one split: a test panel, not a customer list.
pub const FORCE_MAX: usize = 256;
/// Longest salt: it only tells experiments apart.
pub const SALT_CHARS_MAX: usize = 64;

/// What keeps a split's variant for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyBy {
    /// The person on the phone (`caller`): one caller, one variant, on every call.
    Caller,
    /// The call's session id: one call, one variant.
    Session,
}

/// A compiled `split` node.
#[derive(Debug, Clone)]
pub struct Split {
    /// (variant, weight), sorted by variant name; the weights sum to 1..=`WEIGHTS_TOTAL_MAX`.
    pub variants: Vec<(String, u64)>,
    pub sticky_by: StickyBy,
    pub salt: String,
    /// (caller in E.164 with its `+`, index into `variants`), sorted by caller.
    pub force: Vec<(String, usize)>,
}

/// A caller as the hash and `force` read it: E.164 with its `+` (8x8 may leave the `+` out).
pub fn e164(caller: &str) -> String {
    let caller = caller.trim();
    if caller.starts_with('+') { caller.to_string() } else { format!("+{caller}") }
}

/// The bucket (0..`BUCKETS`) of `key` under `salt`.
pub fn bucket(salt: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

impl Split {
    /// The key the hash reads for a call: its caller in E.164, or its session id.
    pub fn key(&self, caller: &str, session: &str) -> String {
        match self.sticky_by {
            StickyBy::Caller => e164(caller),
            StickyBy::Session => session.to_string(),
        }
    }

    /// The index of the variant a call gets: forced for a listed caller, else by its bucket.
    pub fn pick(&self, caller: &str, session: &str) -> usize {
        let caller = e164(caller);
        if let Ok(at) = self.force.binary_search_by(|(c, _)| c.as_str().cmp(&caller)) {
            return self.force[at].1;
        }
        self.by_bucket(bucket(&self.salt, &self.key(&caller, session)))
    }

    /// The variant bucket `b` falls in. Weights are bounded by `WEIGHTS_TOTAL_MAX`, so no product
    /// overflows.
    pub fn by_bucket(&self, b: u64) -> usize {
        let total: u64 = self.variants.iter().map(|(_, w)| w).sum();
        let mut cumulative = 0u64;
        for (i, (_, w)) in self.variants.iter().enumerate() {
            cumulative = cumulative.saturating_add(*w);
            if b.saturating_mul(total) < cumulative.saturating_mul(BUCKETS) {
                return i;
            }
        }
        self.variants.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(weights: &[(&str, u64)]) -> Split {
        Split {
            variants: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
            sticky_by: StickyBy::Caller,
            salt: "s".into(),
            force: vec![("+6591234567".into(), 1)],
        }
    }

    #[test]
    fn the_bucket_is_the_documented_hash() {
        // `printf 's\0+6580000000' | sha256sum` begins 14f401b03f43f0f8, and
        // 0x14f401b03f43f0f8 mod 10 000 is 7864.
        assert_eq!(bucket("s", "+6580000000"), 7864);
    }

    #[test]
    fn cumulative_weights_cut_the_buckets() {
        let s = split(&[("a", 20), ("b", 80)]);
        assert_eq!(s.by_bucket(0), 0);
        assert_eq!(s.by_bucket(1999), 0);
        assert_eq!(s.by_bucket(2000), 1);
        assert_eq!(s.by_bucket(9999), 1);
        let odd = split(&[("a", 1), ("b", 2)]);
        // 3333 × 3 = 9999 < 10 000: a; 3334 × 3 = 10 002: b.
        assert_eq!((odd.by_bucket(3333), odd.by_bucket(3334)), (0, 1));
    }

    #[test]
    fn force_wins_with_or_without_the_plus() {
        let mut s = split(&[("a", 100), ("b", 0)]);
        s.variants[1].1 = 0;
        assert_eq!(s.pick("+6591234567", "x"), 1);
        assert_eq!(s.pick("6591234567", "x"), 1);
        assert_eq!(s.pick("+6591234568", "x"), 0);
    }
}
