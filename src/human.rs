//! Numbers as a person writes them: "1 request", "3 requests", "27 req/s", "2 min 5 s",
//! and the estimate shown before `apply`.
//!
//! Why a module: summaries, prompts, quiet outcome lines and notifications all say counts,
//! rates and durations, and "1 requests" or "27.2691/s" in any of them reads like a program
//! wrote it. One place gets it right for all.

use std::time::Duration;

/// `n` with a comma every three digits, as the plan header writes a tenant's size:
/// "2,880 of 3,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun, singular or plural: `count(1, "user")` is "1 user".
pub fn count(n: impl TryInto<u64>, noun: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", plural(n, noun))
}

/// The noun for `n` of it. Nouns ending in s, x, ch or sh take -es; "y" after a consonant
/// becomes -ies; the rest take -s. Enough for the words teamsync counts.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    let consonant_y = noun.ends_with('y')
        && !noun
            .chars()
            .rev()
            .nth(1)
            .is_some_and(|c| "aeiou".contains(c));
    if consonant_y {
        format!("{}ies", &noun[..noun.len() - 1])
    } else if ["s", "x", "ch", "sh"].iter().any(|e| noun.ends_with(e)) {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

/// A rate with two significant digits at most: 27.2691 → "27 req/s", 2.54 → "2.5 req/s",
/// 0.25 → "0.25 req/s"; 0 or less is "unlimited".
pub fn rate(per_second: f64, unit: &str) -> String {
    if per_second <= 0.0 || !per_second.is_finite() {
        return "unlimited".into();
    }
    let shown = if per_second >= 10.0 {
        format!("{per_second:.0}")
    } else if per_second >= 1.0 {
        trim_zeros(format!("{per_second:.1}"))
    } else {
        trim_zeros(format!("{per_second:.2}"))
    };
    format!("{shown} {unit}/s")
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration rounded the way people say it: "0.4 s", "12 s", "3 min 5 s", "2 h 10 min".
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        let s = trim_zeros(format!("{secs:.1}"));
        return format!("{s} s");
    }
    let secs = secs.round() as u64;
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ if secs % 3600 < 60 => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// What the estimate before `apply` knows about a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Requests of each user that changes, in the order they must go (a user's own
    /// requests are sent one after the other).
    pub user_requests: Vec<usize>,
    /// Requests outside the users: the status check before the job.
    pub extra_requests: usize,
    /// The tenant's rate limit, requests per second (0: none).
    pub rate: f64,
    /// Requests the limiter lets through at once after a pause.
    pub burst: u32,
    /// Users worked on at once.
    pub concurrency: usize,
    /// Round trip of one request, as measured against this tenant.
    pub latency: Duration,
}

impl Workload {
    pub fn requests(&self) -> usize {
        self.extra_requests + self.user_requests.iter().sum::<usize>()
    }

    /// How long the job should take: the slowest of three bounds.
    /// - The rate limit: every request but the burst waits its turn, `(n - burst) / rate`.
    /// - The concurrency: `concurrency` users in flight, each sending its requests one
    ///   after the other, get through `concurrency / latency` requests a second.
    /// - The longest user: its requests cannot overlap, `steps × latency`.
    ///
    /// Requests before the users start (the status check) add their latency. Retries and
    /// throttling are not foreseen: the estimate is a floor for a healthy tenant.
    pub fn estimate(&self) -> Duration {
        let n = self.user_requests.iter().sum::<usize>() as f64;
        let lat = self.latency.as_secs_f64();
        let by_rate = if self.rate > 0.0 {
            (n - f64::from(self.burst)).max(0.0) / self.rate
        } else {
            0.0
        };
        let by_concurrency = n * lat / self.concurrency.max(1) as f64;
        let longest = self.user_requests.iter().copied().max().unwrap_or(0) as f64 * lat;
        let first = self.extra_requests as f64 * lat;
        Duration::from_secs_f64(first + by_rate.max(by_concurrency).max(longest))
    }

    /// "about 12 s (40 requests at up to 10 req/s, 8 users at once, 120 ms a request)".
    pub fn describe(&self) -> String {
        let pace = if self.rate > 0.0 {
            format!("at up to {}", rate(self.rate, "req"))
        } else {
            "with no rate limit".to_string()
        };
        format!(
            "about {} ({} {pace}, {} at once, {} ms a request)",
            duration(self.estimate()),
            count(self.requests(), "request"),
            count(self.concurrency.max(1), "user"),
            self.latency.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3000), "3,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1u64, "request"), "1 request");
        assert_eq!(count(0u64, "request"), "0 requests");
        assert_eq!(count(2u64, "retry"), "2 retries");
        assert_eq!(count(2u64, "day"), "2 days");
        assert_eq!(count(3u64, "status"), "3 statuses");
        assert_eq!(count(1u64, "retry"), "1 retry");
        assert_eq!(count(4u64, "plan error"), "4 plan errors");
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(rate(27.2691, "req"), "27 req/s");
        assert_eq!(rate(2.54, "req"), "2.5 req/s");
        assert_eq!(rate(2.0, "req"), "2 req/s");
        assert_eq!(rate(0.25, "user"), "0.25 user/s");
        assert_eq!(rate(0.0, "req"), "unlimited");
        assert_eq!(duration(Duration::from_millis(400)), "0.4 s");
        assert_eq!(duration(Duration::from_secs(3)), "3 s");
        assert_eq!(duration(Duration::from_secs(12)), "12 s");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(duration(Duration::from_secs(120)), "2 min");
        assert_eq!(duration(Duration::from_secs(7800)), "2 h 10 min");
        assert_eq!(duration(Duration::from_secs(7200)), "2 h");
    }

    fn load(users: usize, steps: usize) -> Workload {
        Workload {
            user_requests: vec![steps; users],
            extra_requests: 1,
            rate: 10.0,
            burst: 5,
            concurrency: 8,
            latency: Duration::from_millis(100),
        }
    }

    #[test]
    fn the_estimate_takes_the_slowest_bound() {
        // The rate bounds a big job: 200 requests at 10/s, 5 of them in the burst.
        let w = load(100, 2);
        assert!((w.estimate().as_secs_f64() - (0.1 + 19.5)).abs() < 0.01);
        // Slow answers bound a job the rate would let through quickly: 40 requests of
        // 2 s with 4 users at once take 20 s, not 4 s.
        let w = Workload {
            latency: Duration::from_secs(2),
            concurrency: 4,
            ..load(20, 2)
        };
        assert!((w.estimate().as_secs_f64() - (2.0 + 20.0)).abs() < 0.01);
        // One user with many steps: they cannot overlap.
        let w = Workload {
            rate: 0.0,
            ..load(1, 6)
        };
        assert!((w.estimate().as_secs_f64() - 0.7).abs() < 0.01);
        assert_eq!(
            w.describe(),
            "about 0.7 s (7 requests with no rate limit, 8 users at once, 100 ms a request)"
        );
    }
}
