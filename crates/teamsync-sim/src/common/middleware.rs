//! What stands between the socket and the handlers: latency, bearer-token auth, the tenant's
//! rate limit, random throttling, injected faults and the request log. All of it is
//! configured by `SimOptions` and happens in this order, so a throttled or rejected request
//! is never faulted and every request, whatever happened to it, is logged with its arrival
//! time. Retry-After is always whole seconds, as real servers send it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::conn::ConnMeta;
use super::reqlog::{Entry, RequestLog};
use super::SimOptions;

/// Why the edge answered instead of a handler. Each simulator renders it in its vendor's
/// error shape ([`Edge::refuse`]), so the machinery is shared and the bodies are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no credentials, or not a bearer token.
    Unauthenticated,
    /// 403: a bearer token that is not the expected one.
    Forbidden,
    /// 429 with `Retry-After: secs`.
    RateLimited { secs: u64 },
    /// 500 injected fault.
    Internal,
    /// 503 injected fault.
    Unavailable,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    /// A human reason, the same for every simulator (the vendors' documents give none).
    pub fn message(self) -> String {
        match self {
            Refusal::Unauthenticated => {
                "Authentication required: send Authorization: Bearer <token>".into()
            }
            Refusal::Forbidden => {
                "The API consumer doesn't have sufficient rights to perform this action".into()
            }
            Refusal::RateLimited { secs } => format!("Rate limit exceeded: retry after {secs} s"),
            Refusal::Internal => "Uncatched error on server side (injected)".into(),
            Refusal::Unavailable => "Service temporarily unavailable (injected)".into(),
        }
    }
    /// The `Retry-After` seconds to send, for a 429.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Refusal::RateLimited { secs } => Some(secs),
            _ => None,
        }
    }
}

/// The edge's own state, one per simulator: its options, rate limiter, fault dice and
/// request log.
pub struct EdgeState {
    pub opts: SimOptions,
    limiter: Option<Mutex<RateLimiter>>,
    dice: FaultDice,
    extra: ExtraDice,
    log: Mutex<RequestLog>,
}

impl EdgeState {
    pub fn new(opts: SimOptions) -> EdgeState {
        EdgeState {
            limiter: opts
                .rate_limit
                .map(|n| Mutex::new(RateLimiter::with_burst(n, opts.burst))),
            dice: FaultDice::new(&opts),
            extra: ExtraDice::new(&opts),
            opts,
            log: Mutex::new(RequestLog::default()),
        }
    }
    /// The request log (`/_sim/requests`).
    pub fn log(&self) -> std::sync::MutexGuard<'_, RequestLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a request that arrived inside another (a part of Microsoft Graph's JSON
    /// batch, which Graph throttles one by one): the rate limit and random throttling apply
    /// as to any request; faults do not (they belong to the outer connection).
    /// `Err(secs)`: answer it 429 with `Retry-After: secs`.
    pub fn admit_inner(&self) -> Result<(), u64> {
        if let Some(limiter) = &self.limiter {
            let verdict = match limiter.lock() {
                Ok(mut l) => l.check(Instant::now()),
                Err(p) => p.into_inner().check(Instant::now()),
            };
            verdict.map(|_| ())?;
        }
        if self.extra.draw().0 {
            return Err(1);
        }
        Ok(())
    }
}

/// What [`gate`] needs from a simulator's shared state.
pub trait Edge: Send + Sync + 'static {
    fn edge(&self) -> &EdgeState;
    /// The vendor's error answer for a refusal (with `Retry-After` for a 429, and
    /// `WWW-Authenticate` for a 401 where the vendor sends one).
    fn refuse(&self, r: Refusal) -> Response;
}

/// A token bucket of `rate` tokens per second holding at most `burst` (default: one
/// second's worth), that goes into debt: every request takes a token, refused ones too, so
/// a client that keeps sending while throttled pushes its own release further away.
/// `Retry-After` is the whole number of seconds until the next request would be admitted.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

/// Debt is capped at this many seconds' worth, so a runaway client is not locked out forever.
const MAX_DEBT_SECS: f64 = 30.0;

impl RateLimiter {
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter::with_burst(per_second, None)
    }

    /// A bucket of `burst` requests (at least one), refilled at `per_second`.
    pub fn with_burst(per_second: u32, burst: Option<u32>) -> RateLimiter {
        let rate = f64::from(per_second.max(1));
        let capacity = burst.map_or(rate, |b| f64::from(b.max(1)));
        RateLimiter {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Ok(share of the bucket in use after this request) when admitted; Err(seconds to
    /// wait) when throttled.
    pub fn check(&mut self, now: Instant) -> Result<f64, u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            return Ok(1.0 - self.tokens / self.capacity);
        }
        self.tokens = self.tokens.max(-MAX_DEBT_SECS * self.rate);
        // The next request is admitted once the bucket is back to one token.
        let wait = (1.0 - self.tokens) / self.rate;
        Err((wait - 1e-9).ceil().max(1.0) as u64)
    }
}

/// Microsoft Graph's header for the share of its limit a client has used.
pub const LIMIT_USED_HEADER: &str = "x-ms-throttle-limit-percentage";
/// Graph sends it from this share on.
const LIMIT_HEADER_FROM: f64 = 0.8;

/// Random throttling and the extra fault kinds (`throttle_share`, `error_rate`,
/// `drop_rate`), from a generator of their own, so turning them on does not change which
/// requests [`FaultDice`] faults for a given seed.
pub struct ExtraDice {
    rng: Mutex<StdRng>,
    throttle_share: f64,
    error_rate: f64,
    drop_rate: f64,
}

impl ExtraDice {
    pub fn new(opts: &SimOptions) -> ExtraDice {
        ExtraDice {
            rng: Mutex::new(StdRng::seed_from_u64(opts.seed_rng ^ 0x7417_7e5e)),
            throttle_share: opts.throttle_share.clamp(0.0, 1.0),
            error_rate: opts.error_rate.clamp(0.0, 1.0),
            drop_rate: opts.drop_rate.clamp(0.0, 1.0),
        }
    }

    fn draws(&self) -> (f64, f64, f64) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (rng.random(), rng.random(), rng.random())
    }

    /// Whether to answer 429 at random, then which extra fault (if any). Three numbers
    /// per request whatever the outcome.
    pub fn draw(&self) -> (bool, Option<Fault>) {
        if self.throttle_share <= 0.0 && self.error_rate <= 0.0 && self.drop_rate <= 0.0 {
            return (false, None);
        }
        let (a, b, c) = self.draws();
        if a < self.throttle_share {
            return (true, None);
        }
        let fault = if b < self.error_rate {
            Some(if c < 0.5 {
                Fault::Status500
            } else {
                Fault::Status503
            })
        } else if b < self.error_rate + self.drop_rate {
            Some(Fault::Drop)
        } else {
            None
        };
        (false, fault)
    }
}

/// The kinds of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status500,
    Status503,
    Drop,
    LostAnswer,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Status500 => "500",
            Fault::Status503 => "503",
            Fault::Drop => "drop",
            Fault::LostAnswer => "lost_answer",
        }
    }
}

/// Draws faults from a seeded generator: the same seed and the same sequence of requests
/// give the same faults. Exactly three numbers are drawn per request, whatever the outcome,
/// so one request's fate does not shift the next one's.
pub struct FaultDice {
    rng: Mutex<StdRng>,
    fault_rate: f64,
    lost_answer_rate: f64,
}

impl FaultDice {
    pub fn new(opts: &SimOptions) -> FaultDice {
        FaultDice {
            rng: Mutex::new(StdRng::seed_from_u64(opts.seed_rng)),
            fault_rate: opts.fault_rate.clamp(0.0, 1.0),
            lost_answer_rate: opts.lost_answer_rate.clamp(0.0, 1.0),
        }
    }

    pub fn draw(&self, is_write: bool) -> Option<Fault> {
        if self.fault_rate <= 0.0 && self.lost_answer_rate <= 0.0 {
            return None;
        }
        let (a, b, c) = {
            let mut rng = match self.rng.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            (
                rng.random::<f64>(),
                rng.random::<f64>(),
                rng.random::<f64>(),
            )
        };
        if a < self.fault_rate {
            return Some(if b < 1.0 / 3.0 {
                Fault::Status500
            } else if b < 2.0 / 3.0 {
                Fault::Status503
            } else {
                Fault::Drop
            });
        }
        if is_write && c < self.lost_answer_rate {
            return Some(Fault::LostAnswer);
        }
        None
    }
}

/// 401 without credentials (or not a bearer token), 403 with a wrong token.
pub fn check_auth(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let unauth = || Refusal::Unauthenticated;
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauth)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(unauth)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauth());
    }
    let token = token.trim().as_bytes();
    let want = expected.as_bytes();
    let same = token.len() == want.len()
        && token
            .iter()
            .zip(want.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

fn cut(conn: Option<&ConnMeta>) -> Response {
    match conn {
        Some(c) => {
            c.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        // Served without our listener: a body that fails makes hyper abort the connection
        // (the status line may already be out; the best this setup allows).
        None => {
            let stream = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection cut by the simulator",
                ))
            });
            Response::new(Body::from_stream(stream))
        }
    }
}

/// The one middleware of a simulator's API surface.
pub async fn gate<S: Edge>(State(sh): State<Arc<S>>, req: Request, next: Next) -> Response {
    let arrived = chrono::Utc::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnMeta>>()
        .map(|c| c.0.clone());
    let latency = sh.edge().opts.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (mut resp, fault, used) = admit_and_run(&*sh, &method, conn.as_ref(), req, next).await;
    if sh.edge().opts.limit_header {
        if let Some(u) = used.filter(|u| *u >= LIMIT_HEADER_FROM) {
            if let Ok(v) = header::HeaderValue::from_str(&format!("{u:.2}")) {
                resp.headers_mut().insert(LIMIT_USED_HEADER, v);
            }
        }
    }
    let status = match fault {
        Some(Fault::Drop | Fault::LostAnswer) => None,
        _ => Some(resp.status().as_u16()),
    };
    let entry = Entry {
        method: method.to_string(),
        path,
        query,
        time: arrived.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status,
        fault: fault.is_some(),
        fault_kind: fault.map(|f| f.name().to_string()),
        retry_after: resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    };
    sh.edge().log().push(entry);
    resp
}

/// The answer, the fault injected (if any), and the share of the rate limit's bucket in
/// use once this request was admitted (None without a limit, or when refused).
async fn admit_and_run<S: Edge>(
    sh: &S,
    method: &Method,
    conn: Option<&ConnMeta>,
    req: Request,
    next: Next,
) -> (Response, Option<Fault>, Option<f64>) {
    let edge = sh.edge();
    if let Err(r) = check_auth(edge.opts.token.as_deref(), req.headers()) {
        return (sh.refuse(r), None, None);
    }
    let mut used = None;
    if let Some(limiter) = &edge.limiter {
        let verdict = match limiter.lock() {
            Ok(mut l) => l.check(Instant::now()),
            Err(p) => p.into_inner().check(Instant::now()),
        };
        match verdict {
            Ok(u) => used = Some(u),
            Err(secs) => return (sh.refuse(Refusal::RateLimited { secs }), None, None),
        }
    }
    let (throttle, extra) = edge.extra.draw();
    if throttle {
        return (sh.refuse(Refusal::RateLimited { secs: 1 }), None, None);
    }
    let is_write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let fault = edge.dice.draw(is_write).or(extra);
    let resp = match fault {
        Some(Fault::Status500) => sh.refuse(Refusal::Internal),
        Some(Fault::Status503) => sh.refuse(Refusal::Unavailable),
        Some(Fault::Drop) => cut(conn),
        Some(Fault::LostAnswer) => {
            let _applied = next.run(req).await;
            cut(conn)
        }
        None => next.run(req).await,
    };
    (resp, fault, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_admits_a_burst_then_throttles_and_counts_refusals() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(5);
        for _ in 0..5 {
            assert!(l.check(t0).is_ok());
        }
        assert_eq!(l.check(t0), Err(1));
        // Keep hammering: the wait grows.
        let mut last = 1;
        for _ in 0..20 {
            last = l.check(t0).unwrap_err();
        }
        assert!(last >= 4, "wait should grow, got {last}");
        // After waiting what it said, the next request passes.
        assert!(l.check(t0 + Duration::from_secs(last)).is_ok());
    }

    #[test]
    fn a_burst_smaller_than_a_seconds_worth() {
        let t0 = Instant::now();
        let mut l = RateLimiter::with_burst(30, Some(5));
        let used: Vec<u32> = (0..5)
            .map(|_| (l.check(t0).unwrap() * 100.0).round() as u32)
            .collect();
        assert_eq!(used, vec![20, 40, 60, 80, 100]);
        assert_eq!(l.check(t0), Err(1));
        // 30/s refills one token in 33 ms, after the debt of the refused one.
        assert!(l.check(t0 + Duration::from_millis(70)).is_ok());
        assert!(l.check(t0 + Duration::from_millis(71)).is_err());
    }

    #[test]
    fn extra_dice_throttle_and_fault_at_their_shares_without_moving_the_fault_dice() {
        let opts = SimOptions {
            throttle_share: 0.3,
            error_rate: 0.1,
            drop_rate: 0.01,
            seed_rng: 9,
            ..SimOptions::default()
        };
        let d = ExtraDice::new(&opts);
        let draws: Vec<(bool, Option<Fault>)> = (0..20_000).map(|_| d.draw()).collect();
        let n = draws.len() as f64;
        let throttled = draws.iter().filter(|x| x.0).count() as f64 / n;
        let errors = draws
            .iter()
            .filter(|x| matches!(x.1, Some(Fault::Status500 | Fault::Status503)))
            .count() as f64
            / n;
        let drops = draws.iter().filter(|x| x.1 == Some(Fault::Drop)).count() as f64 / n;
        assert!((throttled - 0.3).abs() < 0.02, "{throttled}");
        // Faults are drawn among the requests not throttled.
        assert!((errors - 0.07).abs() < 0.01, "{errors}");
        assert!((drops - 0.007).abs() < 0.003, "{drops}");
        // The plain fault dice give the same sequence with or without the extra knobs.
        let plain = SimOptions {
            fault_rate: 0.2,
            seed_rng: 9,
            ..SimOptions::default()
        };
        let both = SimOptions {
            fault_rate: 0.2,
            ..opts
        };
        let (a, b) = (FaultDice::new(&plain), FaultDice::new(&both));
        for _ in 0..100 {
            assert_eq!(a.draw(true), b.draw(true));
        }
    }

    #[test]
    fn dice_are_reproducible() {
        let opts = SimOptions {
            fault_rate: 0.3,
            seed_rng: 42,
            ..SimOptions::default()
        };
        let a = FaultDice::new(&opts);
        let b = FaultDice::new(&opts);
        let sa: Vec<_> = (0..100).map(|_| a.draw(true)).collect();
        let sb: Vec<_> = (0..100).map(|_| b.draw(true)).collect();
        assert_eq!(sa, sb);
        assert!(sa.iter().any(Option::is_some));
        assert!(sa.iter().any(Option::is_none));
    }

    #[test]
    fn auth_distinguishes_missing_from_wrong() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_auth(Some("s3cret"), &h).unwrap_err(),
            Refusal::Unauthenticated
        );
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(
            check_auth(Some("s3cret"), &h).unwrap_err(),
            Refusal::Forbidden
        );
        h.insert(header::AUTHORIZATION, "bearer s3cret".parse().unwrap());
        assert!(check_auth(Some("s3cret"), &h).is_ok());
        assert!(check_auth(None, &HeaderMap::new()).is_ok());
    }
}
