//! The per-tenant gate every request passes: an adaptive rate limiter that learns the
//! tenant's real limit from its answers, plus the tenant-wide pause a throttle's
//! Retry-After sets.
//!
//! Why a pause on top of pacing: a throttled tenant keeps counting requests sent while it
//! throttles (and throttles longer), so after a 429 nothing at all may go out until the
//! Retry-After has passed — not only the request that got it.
//!
//! Why adaptive: a tenant almost never allows exactly the configured rate. The configured
//! `rate_per_second` is only a ceiling; what the tenant allows is learned the way TCP and
//! the AWS SDKs' "adaptive" retry mode learn a path's capacity: grow until the tenant
//! says stop, cut, grow back. The shape is tuned to what a throttle costs here. Every
//! throttle event halts the whole tenant for a whole Retry-After (at least one second,
//! since servers send whole seconds), while running a few percent under the limit costs
//! only those few percent, so the number of throttle events dominates the wall time of a
//! throttled job. Hence:
//!
//! - **Slow start.** With nothing learned yet the rate starts at [`INITIAL_RATE`] (or the
//!   ceiling if lower) and doubles every [`DOUBLING`] until the first throttle. Starting
//!   at the ceiling (AWS's choice) makes the first throttle come after a few dozen
//!   milliseconds, when nothing can be measured, and several more throttles follow while
//!   the rate is cut from 200 down to the tenant's 30; ramping up takes about one second
//!   to reach 30 and leaves a second of sending to measure. A ceiling of 0 means no
//!   ceiling: then nothing is paced until the tenant first throttles.
//! - **One cut per throttle event.** A cut sets the learned limit `W` to [`GAMMA`] times
//!   the estimate of what the tenant allowed: the rate of non-throttled answers over the
//!   last second of sending (slow start) or two seconds (later), measured over sending
//!   time only, and never above the pace the throttled request was sent at. In slow start
//!   that measure is about half the rate at which the throttle came (TCP's "ssthresh =
//!   cwnd / 2" for the same reason: the ramp overshoots). Throttles of requests sent
//!   before the pause of the last cut ended belong to the same event (TCP reacts once per
//!   window) and only extend the pause, so the many 429s of requests already in flight do
//!   not collapse the rate.
//! - **A CUBIC curve with a long plateau.** After the pause the rate restarts at
//!   [`BETA`]·`W` (the pause itself has drained the tenant's debt, so no deeper cut is
//!   needed), climbs back to `W` along CUBIC's concave curve `W − c₁(K − t)³` in
//!   [`RECOVERY`], stays at `W` for [`HOLD`], then probes above it along CUBIC's convex
//!   curve `W + c₂(t − K − H)³`. Plain CUBIC (`W + C(t − K)³`, one constant) cannot both
//!   recover within seconds and stay flat for long: with AWS's C = 0.4 the rate leaves
//!   the ±5 % band around `W` after 1.6 s and a token bucket of five requests throttles
//!   again within five seconds, i.e. a 1 s pause every 5 s. Separate constants recover in
//!   2 s, probe every ~25 s, and probe gently ([`PROBE_C`]), so the next throttle comes
//!   just above the limit and measures it well. The plateau sits at `W` = 0.95 × the
//!   estimate, not at the estimate as CUBIC's `W_max` does: a plateau above the limit by
//!   any amount empties the tenant's bucket in seconds.
//! - **Random throttling is not a limit.** Retry-After is a promise: a tenant that
//!   rate-limits us admits the first request sent after the wait it asked for. When even
//!   that request is throttled, the throttles are not about our rate (a busy tenant, or
//!   a server throttling at random); cutting on them would drive the rate to the floor
//!   for nothing, as no single answer can tell such a 429 from a limit's. Then the cuts
//!   of the last [`NOISY_FOR`] are undone and for that long (renewed by every such
//!   throttle) the gate neither cuts nor probes: it honours every pause and holds the
//!   rate; probing afterwards starts gently from the plateau.
//! - **Near the limit.** A server that says how much of its limit is used
//!   (`x-ms-throttle-limit-percentage`, Microsoft Graph's, as a fraction or a percentage)
//!   at [`NEAR_LIMIT`] or more on every answer for [`NEAR_PERSIST`] gets a soft cut: `W`
//!   at [`GAMMA_SOFT`] of the estimate, no pause and no dip, so the plateau starts before
//!   the 429 (at most one per second). A burst that empties the tenant's bucket for a
//!   moment is no signal: reacting to it cut the rate to a third in the first second of
//!   a job (measured; BENCHMARKS.md).
//! - **Restart smoothly.** After a pause the schedule restarts from the pause's end at
//!   the current rate: the first request goes at the end, the next one interval later,
//!   with no burst of the requests that queued up meanwhile.
//! - **Floor.** The rate never goes below [`FLOOR`].
//!
//! Pacing is a GCRA virtual clock (each request takes the slot `max(now, TAT − τ)`, then
//! `TAT = max(TAT, now) + 1/rate`, with τ = (burst − 1)/rate), computed at the moment of
//! sending, so a rate change applies to the very next request. Waiters queue in FIFO
//! order. Reads and writes share one learned limit (the tenant's budget is one); an
//! optional separate ceiling for reads (`read_rate_per_second`) paces reads on their own
//! clock as well, so reads may have a higher or lower ceiling than writes.
//!
//! The constants were tuned against a token-bucket tenant (30 req/s, burst 5, whole-second
//! Retry-After) and checked against others (10/s burst 10, 100/s burst 20, 5/s burst 1,
//! one-second bursts, 30 % random 429s); BENCHMARKS.md has the measured figures.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Where slow start begins (req/s), unless the ceiling is lower.
pub const INITIAL_RATE: f64 = 16.0;
/// Slow start doubles the rate this often.
pub const DOUBLING: Duration = Duration::from_millis(500);
/// The plateau sits this far under the estimated limit.
pub const GAMMA: f64 = 0.95;
/// After a cut's pause the rate restarts at this share of the plateau.
pub const BETA: f64 = 0.8;
/// Time to climb from `BETA·W` back to `W`.
pub const RECOVERY: Duration = Duration::from_secs(2);
/// Time spent at the plateau before probing above it.
pub const HOLD: Duration = Duration::from_secs(20);
/// Steepness of the probe above the plateau (req/s per s³).
pub const PROBE_C: f64 = 0.05;
/// The rate never goes below this (req/s).
pub const FLOOR: f64 = 0.5;
/// How long throttles are taken for noise after the first request after a pause was
/// throttled too.
pub const NOISY_FOR: Duration = Duration::from_secs(60);
/// A server reporting this share of its limit used (or more) on every answer for
/// [`NEAR_PERSIST`] gets a soft cut: a burst that briefly empties the tenant's bucket
/// says nothing about the rate, a bucket that stays nearly empty does.
pub const NEAR_LIMIT: f64 = 0.8;
pub const NEAR_PERSIST: Duration = Duration::from_millis(500);
/// The plateau after a soft cut sits this far under the pace that was near the limit:
/// closer than after a 429, since the tenant said so before its bucket ran out.
pub const GAMMA_SOFT: f64 = 0.97;
/// Sending time over which the tenant's admitted rate is measured, in slow start.
const START_WINDOW: Duration = Duration::from_secs(1);
/// The same, once a limit has been learned.
const WINDOW: Duration = Duration::from_secs(2);
/// The admitted rate is counted over at least this much time.
const MIN_SPAN: Duration = Duration::from_millis(500);
/// Fewer non-throttled answers than this in the window measure nothing: the cut is then
/// AWS's plain 0.7 × the rate the throttled request was sent at.
const MIN_SAMPLES: usize = 3;
const FALLBACK_CUT: f64 = 0.7;
/// No rate above this is paced at all (and the cubic probe stops growing there).
const MAX_RATE: f64 = 1_000_000.0;
/// Answers kept for the estimate (their send times); more than the window ever holds at
/// any rate the pacing allows, bounded for an unpaced gate.
const SAMPLES_KEPT: usize = 8192;

/// The tenant keys that shape a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// Ceiling for every request, req/s; 0 = none.
    pub rate: f64,
    /// Ceiling for reads (GET), req/s, when it differs from `rate`; 0 = none.
    pub read_rate: Option<f64>,
    /// Requests that may go back to back after an idle moment.
    pub burst: u32,
    /// How long the tenant may throttle without a break before requests give up
    /// ([`Verdict::GiveUp`]); None = forever.
    pub max_throttle: Option<Duration>,
}

impl GateConfig {
    /// From a `[tenants.X]` table; `rate` overrides `rate_per_second` (`--rate`).
    pub fn from_tenant(cfg: &crate::config::TenantConfig, rate: Option<f64>) -> GateConfig {
        let p = cfg.pacing();
        GateConfig {
            rate: rate.unwrap_or(p.rate_per_second),
            read_rate: p.read_rate_per_second,
            burst: p.burst,
            max_throttle: Some(secs(p.max_throttle_minutes * 60.0)),
        }
    }

    /// `rate` req/s for everything, `burst`, no read ceiling, no throttle bound.
    pub fn new(rate: f64, burst: u32) -> GateConfig {
        GateConfig {
            rate,
            read_rate: None,
            burst,
            max_throttle: None,
        }
    }
}

/// What kind of request asks to go: reads may have their own ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// A request's admission, handed back with its answer to [`Gate::answered`].
#[derive(Debug, Clone, Copy)]
#[must_use = "report the answer with Gate::answered"]
pub struct Permit {
    sent: Instant,
    /// The pace it was admitted at; None when unpaced.
    rate: Option<f64>,
    /// The first request admitted after a pause ended.
    first_after_pause: bool,
}

/// How the tenant answered an admitted request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Anything but throttling (2xx, other 4xx, 5xx without Retry-After), with the share
    /// of its limit the server says is used, when it says so.
    Served { limit_used: Option<f64> },
    /// 429, or 503 with Retry-After: the tenant asks for this long of silence.
    Throttled { retry_after: Duration },
    /// No answer (connection error, timeout): says nothing about the limit.
    Lost,
}

/// What the caller should do after reporting an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// The tenant has throttled without a break for longer than the configured bound
    /// (counting the pause it just asked for): stop.
    GiveUp {
        throttled_for: Duration,
        limit: Duration,
    },
}

/// A snapshot of the gate for progress lines and the job summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateStats {
    /// Throttling answers (429, 503 with Retry-After) received so far.
    pub throttles: u64,
    /// The learned limit (the plateau), once the tenant has throttled.
    pub learned: Option<f64>,
    /// The pace right now; None when unpaced.
    pub current: Option<f64>,
}

/// The adaptive part: when the next request may go, and what the answers teach.
/// Pure (time is passed in), so its maths is tested with a made-up clock.
#[derive(Debug)]
pub(crate) struct Limiter {
    ceiling: Option<f64>,
    burst: f64,
    max_throttle: Option<Duration>,
    phase: Phase,
    /// GCRA theoretical arrival time, and the burst tolerance τ set with it (the
    /// earliest next slot is `tat − tau`).
    tat: Option<Instant>,
    tau: Duration,
    pause_until: Option<Instant>,
    /// First request ever admitted (slow start's clock).
    started: Option<Instant>,
    /// End of the pause of the last cut: throttles of requests sent before it belong to
    /// that cut's event, and the admitted rate is measured from it.
    resume: Option<Instant>,
    /// Whether the first request after the current pause has gone yet.
    sent_after_pause: bool,
    last_soft_cut: Option<Instant>,
    /// Since when every answer has said the tenant is near its limit.
    near_since: Option<Instant>,
    noisy_until: Option<Instant>,
    /// Plateaus before recent cuts: (when, plateau), to undo them when throttling turns
    /// out to be noise.
    cuts: VecDeque<(Instant, f64)>,
    /// Send times of requests the tenant served (not throttled), oldest first.
    served: VecDeque<Instant>,
    throttles: u64,
    throttled_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No ceiling and no throttle yet: nothing is paced.
    Free,
    /// Doubling from [`INITIAL_RATE`] since the first request.
    SlowStart,
    Learned(Curve),
}

/// The CUBIC-shaped curve after a cut (see the module doc), in seconds from `epoch`.
#[derive(Debug, Clone, Copy)]
struct Curve {
    w: f64,
    epoch: Instant,
    /// Recovery time; 0 after a soft cut.
    k: f64,
    c1: f64,
}

impl Curve {
    fn new(w: f64, epoch: Instant, k: Duration) -> Curve {
        let k = k.as_secs_f64();
        let c1 = if k > 0.0 {
            w * (1.0 - BETA) / k.powi(3)
        } else {
            0.0
        };
        Curve { w, epoch, k, c1 }
    }

    /// The rate at `now`; probing above the plateau starts no earlier than `probe_from`
    /// (the end of a noisy spell: the probe then starts gently, not where its clock
    /// would be had it run all along).
    fn at(&self, now: Instant, probe_from: Option<Instant>) -> f64 {
        let x = now.saturating_duration_since(self.epoch).as_secs_f64();
        if x < self.k {
            return self.w - self.c1 * (self.k - x).powi(3);
        }
        let hold_end = self.epoch + secs(self.k + HOLD.as_secs_f64());
        let start = probe_from.map_or(hold_end, |p| p.max(hold_end));
        match now.checked_duration_since(start) {
            Some(p) if !p.is_zero() => self.w + PROBE_C * p.as_secs_f64().powi(3),
            _ => self.w,
        }
    }
}

fn positive(r: f64) -> Option<f64> {
    (r.is_finite() && r > 0.0).then_some(r)
}

impl Limiter {
    pub(crate) fn new(ceiling: f64, burst: u32, max_throttle: Option<Duration>) -> Limiter {
        let ceiling = positive(ceiling);
        Limiter {
            ceiling,
            burst: f64::from(burst.max(1)),
            max_throttle,
            phase: if ceiling.is_some() {
                Phase::SlowStart
            } else {
                Phase::Free
            },
            tat: None,
            tau: Duration::ZERO,
            pause_until: None,
            started: None,
            resume: None,
            sent_after_pause: true,
            last_soft_cut: None,
            near_since: None,
            noisy_until: None,
            cuts: VecDeque::new(),
            served: VecDeque::new(),
            throttles: 0,
            throttled_since: None,
        }
    }

    fn noisy(&self, now: Instant) -> bool {
        self.noisy_until.is_some_and(|u| now < u)
    }

    /// The pace at `now`; None = unpaced.
    pub(crate) fn rate(&self, now: Instant) -> Option<f64> {
        let raw = match self.phase {
            Phase::Free => return None,
            Phase::SlowStart => {
                let x = self
                    .started
                    .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
                INITIAL_RATE * (x / DOUBLING.as_secs_f64()).min(64.0).exp2()
            }
            Phase::Learned(c) => c.at(now, self.noisy_until),
        };
        let r = raw.clamp(FLOOR, MAX_RATE);
        Some(self.ceiling.map_or(r, |c| r.min(c)))
    }

    /// The learned limit, once the tenant has throttled (or said it is near its limit).
    pub(crate) fn learned(&self) -> Option<f64> {
        match self.phase {
            Phase::Learned(c) => Some(self.ceiling.map_or(c.w, |m| c.w.min(m))),
            _ => None,
        }
    }

    pub(crate) fn stats(&self, now: Instant) -> GateStats {
        GateStats {
            throttles: self.throttles,
            learned: self.learned(),
            current: self.rate(now).filter(|r| *r < MAX_RATE),
        }
    }

    pub(crate) fn pause_remaining(&self, now: Instant) -> Option<Duration> {
        self.pause_until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// The earliest time at or after `now` a request may go.
    pub(crate) fn next_slot(&self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(p) = self.pause_until {
            at = at.max(p);
        }
        if let (Some(_), Some(tat)) = (self.rate(at).filter(|r| *r < MAX_RATE), self.tat) {
            at = at.max(tat.checked_sub(self.tau).unwrap_or(tat));
        }
        at
    }

    /// Admits a request at `now`, or says when to ask again.
    pub(crate) fn try_admit(&mut self, now: Instant) -> Result<Permit, Instant> {
        let slot = self.next_slot(now);
        if slot > now {
            return Err(slot);
        }
        let rate = self.rate(now).filter(|r| *r < MAX_RATE);
        self.started.get_or_insert(now);
        self.tat = rate.map(|r| self.tat.map_or(now, |t| t.max(now)) + secs(1.0 / r));
        self.tau = rate.map_or(Duration::ZERO, |r| secs((self.burst - 1.0) / r));
        let first_after_pause = !self.sent_after_pause;
        self.sent_after_pause = true;
        Ok(Permit {
            sent: now,
            rate,
            first_after_pause,
        })
    }

    /// Learns from the answer to a request admitted with `p`.
    pub(crate) fn answered(&mut self, now: Instant, p: Permit, a: Answer) -> Verdict {
        match a {
            Answer::Lost => Verdict::Continue,
            Answer::Served { limit_used } => {
                self.throttled_since = None;
                if self.served.len() >= SAMPLES_KEPT {
                    self.served.pop_front();
                }
                // Answers come back out of order; the samples stay sorted by send time.
                let at = self.served.partition_point(|t| *t <= p.sent);
                self.served.insert(at, p.sent);
                match limit_used.filter(|u| *u >= NEAR_LIMIT) {
                    Some(u) => {
                        let since = *self.near_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= NEAR_PERSIST {
                            self.near_limit(now, p, u);
                        }
                    }
                    None => self.near_since = None,
                }
                Verdict::Continue
            }
            Answer::Throttled { retry_after } => {
                self.throttles += 1;
                let since = *self.throttled_since.get_or_insert(now);
                if p.first_after_pause {
                    if self.noisy(now) {
                        self.noisy_until = Some(now + NOISY_FOR);
                    } else {
                        self.turn_noisy(now);
                    }
                }
                self.extend_pause(now + retry_after);
                let new_event = self.resume.is_none_or(|r| p.sent >= r);
                if new_event && !self.noisy(now) {
                    self.cut(now, p);
                }
                self.restart_after_pause();
                match self.max_throttle {
                    Some(limit) => {
                        let until = self.pause_until.unwrap_or(now).max(now);
                        let throttled_for = until.saturating_duration_since(since);
                        if throttled_for > limit {
                            Verdict::GiveUp {
                                throttled_for,
                                limit,
                            }
                        } else {
                            Verdict::Continue
                        }
                    }
                    None => Verdict::Continue,
                }
            }
        }
    }

    /// A pause asked for by someone else than an admitted request's answer.
    pub(crate) fn pause(&mut self, until: Instant) {
        self.extend_pause(until);
        self.restart_after_pause();
    }

    fn extend_pause(&mut self, until: Instant) {
        if self.pause_until.is_none_or(|cur| cur < until) {
            self.pause_until = Some(until);
            self.sent_after_pause = false;
        }
    }

    /// The schedule restarts at the pause's end with no burst credit: the first request
    /// goes at the end, the next one interval later.
    fn restart_after_pause(&mut self) {
        let Some(end) = self.pause_until else { return };
        if let Some(r) = self.rate(end).filter(|r| *r < MAX_RATE) {
            self.tau = secs((self.burst - 1.0) / r);
            self.tat = Some(end + self.tau);
        }
    }

    /// What the tenant admitted lately, per second of sending since the last cut's pause.
    fn admitted_rate(&self, now: Instant) -> Option<f64> {
        let window = match self.phase {
            Phase::Learned(_) => WINDOW,
            _ => START_WINDOW,
        };
        let mut from = now.checked_sub(window).unwrap_or(now);
        if let Some(r) = self.resume.or(self.started) {
            from = from.max(r);
        }
        let n = self.served.len() - self.served.partition_point(|t| *t < from);
        // Less than MIN_SPAN of sending measures a burst, not a rate.
        let span = now
            .saturating_duration_since(from)
            .as_secs_f64()
            .max(MIN_SPAN.as_secs_f64());
        (n >= MIN_SAMPLES).then(|| n as f64 / span)
    }

    fn estimate(&self, now: Instant, p: Permit) -> f64 {
        match (self.admitted_rate(now), p.rate) {
            (Some(m), Some(r)) => m.min(r),
            (Some(m), None) => m,
            (None, Some(r)) => FALLBACK_CUT * r,
            // Unpaced and nothing measured: whatever was sent since the start, per second.
            (None, None) => {
                let since = self.started.unwrap_or(now);
                let span = now.saturating_duration_since(since).as_secs_f64().max(1.0);
                (self.served.len() as f64 / span).max(FLOOR)
            }
        }
    }

    fn plateau(&self) -> Option<f64> {
        match self.phase {
            Phase::Learned(c) => Some(c.w),
            _ => None,
        }
    }

    fn cut(&mut self, now: Instant, p: Permit) {
        let est = self.estimate(now, p);
        // What a cut that turns out to be noise is undone to: the plateau it lowered, or
        // (the first cut) what the tenant was admitting then.
        let before = self.plateau().unwrap_or(est);
        let mut w = (GAMMA * est).max(FLOOR);
        if let Some(c) = self.ceiling {
            w = w.min(c);
        }
        let epoch = self.pause_until.unwrap_or(now).max(now);
        tracing::info!(
            "the tenant throttles: pausing {:.1}s, then {:.1} req/s (learned limit, from {:.1} req/s admitted)",
            epoch.saturating_duration_since(now).as_secs_f64(),
            w,
            est
        );
        self.phase = Phase::Learned(Curve::new(w, epoch, RECOVERY));
        self.resume = Some(epoch);
        self.cuts.push_back((now, before));
        while self.cuts.front().is_some_and(|(t, _)| *t + NOISY_FOR < now) {
            self.cuts.pop_front();
        }
    }

    /// The first request after a pause was throttled too: undo the recent cuts and stop
    /// cutting for a while (see the module doc).
    fn turn_noisy(&mut self, now: Instant) {
        tracing::info!(
            "the tenant throttled the first request after its pause: taking its throttling for noise for {}s (pauses honoured, rate held)",
            NOISY_FOR.as_secs()
        );
        self.noisy_until = Some(now + NOISY_FOR);
        let best = self
            .cuts
            .iter()
            .filter(|(t, _)| *t + NOISY_FOR >= now)
            .map(|(_, w)| *w)
            .fold(None, |acc: Option<f64>, w| {
                Some(acc.map_or(w, |a| a.max(w)))
            });
        if let (Some(best), Phase::Learned(c)) = (best, self.phase) {
            if best > c.w {
                self.phase = Phase::Learned(Curve::new(best, c.epoch, Duration::ZERO));
            }
        }
        self.cuts.clear();
    }

    fn near_limit(&mut self, now: Instant, p: Permit, used: f64) {
        let recent = self
            .last_soft_cut
            .is_some_and(|t| p.sent < t + Duration::from_secs(1));
        if recent || self.noisy(now) {
            return;
        }
        let at = p.rate.or(self.rate(now));
        let est = match (self.admitted_rate(now), at) {
            (Some(m), Some(r)) => m.min(r),
            (Some(m), None) => m,
            (None, Some(r)) => r,
            (None, None) => return,
        };
        let mut w = (GAMMA_SOFT * est).max(FLOOR);
        if let Some(c) = self.ceiling {
            w = w.min(c);
        }
        tracing::debug!(
            "the tenant reports {:.0} % of its limit used; holding at {w:.1} req/s",
            used * 100.0
        );
        self.phase = Phase::Learned(Curve::new(w, now, Duration::ZERO));
        self.last_soft_cut = Some(now);
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

/// A fixed ceiling for one kind of request (reads' own `read_rate_per_second`).
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    burst: u32,
    tat: Mutex<Option<Instant>>,
    turn: tokio::sync::Mutex<()>,
}

impl Pacer {
    fn new(rate: f64, burst: u32) -> Pacer {
        Pacer {
            interval: secs(1.0 / rate),
            burst: burst.max(1),
            tat: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    async fn wait(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let at = {
                let mut tat = self
                    .tat
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let tau = self.interval * (self.burst - 1);
                match *tat {
                    Some(t) if t.checked_sub(tau).unwrap_or(t) > now => {
                        t.checked_sub(tau).unwrap_or(t)
                    }
                    cur => {
                        *tat = Some(cur.map_or(now, |t| t.max(now)) + self.interval);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(at).await;
        }
    }
}

/// One per tenant; every request of every connector to that tenant passes it.
#[derive(Debug)]
pub struct Gate {
    limiter: Mutex<Limiter>,
    /// FIFO order among waiters: one at a time computes its slot and sleeps until it.
    turn: tokio::sync::Mutex<()>,
    reads: Option<Pacer>,
    writes: Option<Pacer>,
}

impl Gate {
    /// `rate_per_second` ceiling (0 = none) and `burst`; no read ceiling, no throttle
    /// bound.
    pub fn new(rate_per_second: f64, burst: u32) -> Gate {
        Gate::with_config(&GateConfig::new(rate_per_second, burst))
    }

    pub fn with_config(cfg: &GateConfig) -> Gate {
        let rate = positive(cfg.rate);
        let read = match cfg.read_rate {
            Some(r) => positive(r),
            None => rate,
        };
        // One learned limit under the higher ceiling; the kind with the lower ceiling
        // also keeps its own clock.
        let overall = match (rate, read) {
            (Some(w), Some(r)) => Some(w.max(r)),
            _ => None,
        };
        let own = |kind_rate: Option<f64>| match (kind_rate, overall) {
            (Some(k), Some(o)) if k < o => Some(Pacer::new(k, cfg.burst)),
            (Some(k), None) => Some(Pacer::new(k, cfg.burst)),
            _ => None,
        };
        Gate {
            limiter: Mutex::new(Limiter::new(
                overall.unwrap_or(0.0),
                cfg.burst,
                cfg.max_throttle,
            )),
            turn: tokio::sync::Mutex::new(()),
            reads: own(read),
            writes: own(rate),
        }
    }

    /// No ceiling: nothing is paced until the tenant throttles.
    pub fn unlimited() -> Gate {
        Gate::new(0.0, 1)
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a request of this kind may be sent: past any tenant-wide pause, at the
    /// learned pace (and the kind's own ceiling). Waiters go in FIFO order.
    pub async fn admit(&self, kind: Kind) -> Permit {
        let own = match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        };
        if let Some(p) = own {
            p.wait().await;
        }
        let _turn = self.turn.lock().await;
        loop {
            let at = match self.limiter().try_admit(Instant::now()) {
                Ok(p) => return p,
                Err(at) => at,
            };
            tokio::time::sleep_until(at).await;
        }
    }

    /// Reports the answer to an admitted request; see [`Verdict`].
    pub fn answered(&self, p: Permit, a: Answer) -> Verdict {
        self.limiter().answered(Instant::now(), p, a)
    }

    /// Pauses every request through this gate for `d` (extends, never shortens).
    pub fn pause(&self, d: Duration) {
        self.limiter().pause(Instant::now() + d);
    }

    pub fn pause_remaining(&self) -> Option<Duration> {
        self.limiter().pause_remaining(Instant::now())
    }

    pub fn stats(&self) -> GateStats {
        self.limiter().stats(Instant::now())
    }
}

#[cfg(test)]
mod tests;
