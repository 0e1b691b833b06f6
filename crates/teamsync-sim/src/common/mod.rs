//! What every simulator shares, whatever its vendor: the edge in front of the handlers
//! (latency, auth, rate limit, faults, request log), connections a fault can cut, the
//! `/_sim/*` test surface, the SQLite state file, the error answer, the options a
//! simulator is started with and the seed reader. Vendor shapes stay in each simulator's
//! own folder.

pub mod admin;
pub mod conn;
pub mod error;
pub mod middleware;
pub mod reqlog;
pub mod store;

use std::path::Path;

use store::StoreError;

/// How the simulator behaves beyond the document. The default is a well-behaved server.
#[derive(Clone, Default)]
pub struct SimOptions {
    /// Bearer token required on every API request; None disables auth.
    pub token: Option<String>,
    /// Requests per second allowed for the tenant (0 counts as 1); None disables the limit.
    pub rate_limit: Option<u32>,
    /// Requests the tenant's bucket holds (what may arrive back to back after a quiet
    /// moment); None: one second's worth of `rate_limit`.
    pub burst: Option<u32>,
    /// Share of the requests the limit admits that are answered 429 anyway, at random
    /// (`Retry-After: 1`): a busy tenant whose throttling has nothing to do with our rate.
    pub throttle_share: f64,
    /// Send Microsoft Graph's `x-ms-throttle-limit-percentage` (the share of the limit's
    /// bucket in use, as a fraction) on answers once 80 % of it is used.
    pub limit_header: bool,
    /// Added to every answer.
    pub latency_ms: u64,
    /// Probability of a 500, 503 or dropped connection (one third each) instead of
    /// handling a request.
    pub fault_rate: f64,
    /// Probability of a 500 or 503 (half each, no Retry-After), on top of `fault_rate`.
    pub error_rate: f64,
    /// Probability of a dropped connection, on top of `fault_rate`.
    pub drop_rate: f64,
    /// Probability that a write is applied but its answer lost (connection dropped).
    pub lost_answer_rate: f64,
    /// A created user is invisible (404) for this long.
    pub replication_delay_ms: u64,
    /// Seed of the fault generator: same seed, same requests → same faults.
    pub seed_rng: u64,
}

/// Hand-written so the token never reaches a log line.
impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("rate_limit", &self.rate_limit)
            .field("burst", &self.burst)
            .field("throttle_share", &self.throttle_share)
            .field("limit_header", &self.limit_header)
            .field("latency_ms", &self.latency_ms)
            .field("fault_rate", &self.fault_rate)
            .field("error_rate", &self.error_rate)
            .field("drop_rate", &self.drop_rate)
            .field("lost_answer_rate", &self.lost_answer_rate)
            .field("replication_delay_ms", &self.replication_delay_ms)
            .field("seed_rng", &self.seed_rng)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("seed file {path}: {reason}")]
    Seed { path: String, reason: String },
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A simulator's sample tenant, built into the binary: what it serves when a new state
/// gets no seed file, so `teamsync sim --backend X` and an embedded tenant without `seed`
/// work from any folder.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The file it was built from, relative to the repository (named in messages).
    pub name: &'static str,
    pub json: &'static str,
}

/// Reads a seed file (JSON in the vendor's own shapes), or the simulator's `sample` when no
/// file is given, and builds a tenant from it.
pub fn read_seed<D: serde::de::DeserializeOwned, T>(
    seed: Option<&Path>,
    sample: Sample,
    build: impl FnOnce(D) -> Result<T, String>,
) -> Result<T, SimError> {
    let (name, text) = match seed {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| SimError::Seed {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            (p.display().to_string(), text)
        }
        None => (
            format!("{} (built in)", sample.name),
            sample.json.to_string(),
        ),
    };
    let err = |reason: String| SimError::Seed {
        path: name.clone(),
        reason,
    };
    let doc: D = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    build(doc).map_err(err)
}

/// `+` then 7 to 15 digits, not starting with 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// ISO 3166-1 alpha-2, uppercase, officially assigned (so `UK` is refused).
pub fn is_country(s: &str) -> bool {
    s.len() == 2
        && s.bytes().all(|b| b.is_ascii_uppercase())
        && s != "UK"
        && celes::Country::from_alpha2(s).is_ok()
}
