//! The limiter's maths on a made-up clock, then the gate's async behaviour in real time.

use super::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Admits at `t` or panics (the caller knows it may go).
fn admit(l: &mut Limiter, t: Instant) -> Permit {
    l.try_admit(t)
        .unwrap_or_else(|at| panic!("not admitted at {t:?}, wait until {at:?}"))
}

const SERVED: Answer = Answer::Served { limit_used: None };

fn throttled(secs: u64) -> Answer {
    Answer::Throttled {
        retry_after: Duration::from_secs(secs),
    }
}

/// Sends at `rate` req/s (or the limiter's pace, if slower) from `from` for `d`, every
/// request served at once; returns when the next request may go.
fn serve_at(l: &mut Limiter, from: Instant, rate: f64, d: Duration) -> Instant {
    let step = secs(1.0 / rate);
    let mut t = from;
    while t < from + d {
        t = l.next_slot(t);
        let p = admit(l, t);
        l.answered(t, p, SERVED);
        t += step;
    }
    l.next_slot(t)
}

#[test]
fn slow_start_doubles_every_half_second_up_to_the_ceiling() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 1, None);
    assert_eq!(l.rate(t0), Some(INITIAL_RATE));
    let p = admit(&mut l, t0);
    l.answered(t0, p, SERVED);
    let r = |l: &Limiter, x: u64| l.rate(t0 + ms(x)).unwrap();
    assert!((r(&l, 500) - 32.0).abs() < 1e-9);
    assert!((r(&l, 1000) - 64.0).abs() < 1e-9);
    assert!((r(&l, 1250) - 64.0 * 2f64.sqrt()).abs() < 1e-9);
    assert_eq!(r(&l, 5000), 200.0, "capped at the ceiling");
    // A ceiling under the initial rate is the rate from the start.
    let l = Limiter::new(10.0, 5, None);
    assert_eq!(l.rate(t0), Some(10.0));
    // No ceiling: unpaced until a throttle.
    assert_eq!(Limiter::new(0.0, 5, None).rate(t0), None);
}

#[test]
fn pacing_admits_at_most_burst_plus_rate_times_the_window() {
    let t0 = Instant::now();
    let mut l = Limiter::new(10.0, 5, None);
    let mut t = t0;
    let mut sent = Vec::new();
    while t < t0 + Duration::from_secs(3) {
        match l.try_admit(t) {
            Ok(_) => sent.push(t),
            Err(at) => t = at,
        }
    }
    // 5 at once, then one every 100 ms: 5 + 3 s × 10/s (the slot at 3 s excluded) − 1.
    assert_eq!(sent.len(), 34, "{sent:?}");
    for (i, w) in sent.windows(2).enumerate().skip(4) {
        assert_eq!(w[1] - w[0], ms(100), "gap after send {i}");
    }
}

#[test]
fn a_throttle_pauses_everyone_and_restarts_without_a_burst() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 5, None);
    // Slow start for a second at ~16–64/s, all served, then a throttle.
    let t = serve_at(&mut l, t0, 25.0, Duration::from_secs(1));
    let p = admit(&mut l, t);
    let v = l.answered(t + ms(25), p, throttled(1));
    assert_eq!(v, Verdict::Continue);
    let end = t + ms(25) + Duration::from_secs(1);
    assert_eq!(l.try_admit(t + ms(500)).unwrap_err(), end);
    assert_eq!(l.pause_remaining(t + ms(525)), Some(ms(500)));
    // At the end exactly one request goes, the next one interval later: no burst.
    let first = admit(&mut l, end);
    assert!(first.first_after_pause);
    let r = l.rate(end).unwrap();
    let next = l.next_slot(end);
    let gap = (next - end).as_secs_f64();
    assert!((gap - 1.0 / r).abs() < 1e-3, "gap {gap}, rate {r}");
    assert!(!admit(&mut l, next).first_after_pause);
}

#[test]
fn a_cut_learns_from_what_the_tenant_admitted_then_recovers_holds_and_probes() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 1, None);
    // Served at 30/s for the last second before the throttle.
    let t = serve_at(&mut l, t0, 30.0, Duration::from_millis(1500));
    let p = admit(&mut l, t);
    l.answered(t, p, throttled(1));
    let w = l.learned().expect("learned");
    // 30 served in the last second (± one at the window's edges), times GAMMA.
    assert!((w - GAMMA * 30.0).abs() <= GAMMA * 1.0 + 1e-9, "W = {w}");
    let resume = t + Duration::from_secs(1);
    let at = |x: f64| l.rate(resume + secs(x)).unwrap();
    assert!((at(0.0) - BETA * w).abs() < 1e-9, "restarts at BETA·W");
    assert!(at(1.0) > at(0.5) && at(1.0) < w, "concave climb");
    assert!(
        (at(RECOVERY.as_secs_f64()) - w).abs() < 1e-9,
        "back at W after K"
    );
    let k = RECOVERY.as_secs_f64();
    let h = HOLD.as_secs_f64();
    assert!((at(k + h - 0.1) - w).abs() < 1e-9, "flat for the hold");
    let probe = at(k + h + 4.0);
    assert!(
        (probe - (w + PROBE_C * 64.0)).abs() < 1e-9,
        "cubic probe: {probe}"
    );
}

#[test]
fn throttles_of_requests_sent_before_the_pause_ended_are_one_event() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 5, None);
    let t = serve_at(&mut l, t0, 30.0, Duration::from_secs(2));
    // Sixteen requests in flight; all come back throttled.
    let mut sent_last = t;
    let in_flight: Vec<Permit> = (0..16)
        .map(|_| {
            sent_last = l.next_slot(sent_last);
            admit(&mut l, sent_last)
        })
        .collect();
    let answered_at = sent_last + ms(10);
    let first = l.answered(answered_at, in_flight[0], throttled(1));
    assert_eq!(first, Verdict::Continue);
    let w = l.learned().unwrap();
    for (i, p) in in_flight.iter().enumerate().skip(1) {
        l.answered(answered_at + ms(i as u64), *p, throttled(2));
    }
    assert_eq!(l.learned(), Some(w), "one cut for the whole event");
    assert_eq!(l.stats(t).throttles, in_flight.len() as u64);
    // The later Retry-After (2 s) extends the pause.
    let end = answered_at + ms(in_flight.len() as u64 - 1) + Duration::from_secs(2);
    assert_eq!(l.next_slot(answered_at), end);
}

#[test]
fn the_rate_never_drops_under_the_floor() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 1, None);
    let mut t = t0;
    for _ in 0..40 {
        // One served, then one throttled: the first request after each pause is not the
        // throttled one, so every event cuts.
        t = l.next_slot(t);
        let p = admit(&mut l, t);
        l.answered(t, p, SERVED);
        t = l.next_slot(t);
        let p = admit(&mut l, t);
        l.answered(t, p, throttled(1));
    }
    let w = l.learned().unwrap();
    assert!(w >= FLOOR, "{w}");
    assert!(l.rate(t).unwrap() >= FLOOR);
}

#[test]
fn continuous_throttling_past_the_bound_gives_up_and_any_served_answer_resets_it() {
    let t0 = Instant::now();
    let limit = Duration::from_secs(5);
    let mut l = Limiter::new(50.0, 1, Some(limit));
    let mut t = t0;
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let slot = l.next_slot(t);
        t = slot;
        let p = admit(&mut l, t);
        verdicts.push(l.answered(t, p, throttled(1)));
    }
    // Throttled at 0, 1, 2, 3, 4 s, each asking for 1 s more: 5 s at the fifth.
    assert!(verdicts[..4].iter().all(|v| *v == Verdict::Continue));
    assert_eq!(
        verdicts[4],
        Verdict::Continue,
        "exactly 5 s is not past 5 s"
    );
    t = l.next_slot(t);
    let p = admit(&mut l, t);
    assert_eq!(
        l.answered(t, p, throttled(1)),
        Verdict::GiveUp {
            throttled_for: Duration::from_secs(6),
            limit
        }
    );
    // A served answer ends the streak.
    t = l.next_slot(t);
    let p = admit(&mut l, t);
    l.answered(t, p, SERVED);
    t = l.next_slot(t);
    let p = admit(&mut l, t);
    assert_eq!(l.answered(t, p, throttled(1)), Verdict::Continue);
    // A Retry-After that alone reaches past the bound gives up at once.
    t = l.next_slot(t);
    let p = admit(&mut l, t);
    l.answered(t, p, SERVED);
    let p = admit(&mut l, t + Duration::from_secs(1));
    assert!(matches!(
        l.answered(t + Duration::from_secs(1), p, throttled(3600)),
        Verdict::GiveUp { .. }
    ));
}

#[test]
fn a_throttled_first_request_after_a_pause_means_noise_cuts_are_undone() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 1, None);
    let t = serve_at(&mut l, t0, 30.0, Duration::from_secs(2));
    let p = admit(&mut l, t);
    l.answered(t, p, throttled(1));
    let w1 = l.learned().unwrap();
    // After the pause: a few served, then another throttle: a second cut.
    let end = l.next_slot(t);
    let t = serve_at(&mut l, end, 10.0, Duration::from_millis(400));
    let slot = l.next_slot(t);
    let p = admit(&mut l, slot);
    l.answered(slot, p, throttled(1));
    let w2 = l.learned().unwrap();
    assert!(w2 < w1, "{w2} < {w1}");
    // The very first request after that pause is throttled as well: not our rate.
    let end = l.next_slot(slot);
    let p = admit(&mut l, end);
    assert!(p.first_after_pause);
    l.answered(end, p, throttled(1));
    let undone = l.learned().unwrap();
    assert!(
        undone >= w1,
        "the last minute's cuts are undone: {undone} < {w1}"
    );
    // For NOISY_FOR, throttles neither cut nor let the rate probe above the plateau.
    let end2 = l.next_slot(end);
    let p = admit(&mut l, end2);
    l.answered(end2, p, SERVED);
    let at = l.next_slot(end2);
    let p = admit(&mut l, at);
    l.answered(end2 + Duration::from_secs(1), p, throttled(1));
    assert_eq!(l.learned(), Some(undone));
    assert_eq!(
        l.rate(end + Duration::from_secs(50)),
        Some(undone),
        "no probing"
    );
    // Once the noisy spell is over, the probe starts gently from the plateau.
    let calm = l.noisy_until.unwrap();
    let r = l.rate(calm + Duration::from_secs(1)).unwrap();
    assert!(r > undone && r < undone + 0.1, "{r} vs {undone}");
    assert!(l.rate(calm + Duration::from_secs(30)).unwrap() > undone + 1.0);
}

#[test]
fn a_server_near_its_limit_gets_a_soft_cut_without_a_pause() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 1, None);
    let t = serve_at(&mut l, t0, 30.0, Duration::from_secs(1));
    let near = |u: f64| Answer::Served {
        limit_used: Some(u),
    };
    let p = admit(&mut l, t);
    l.answered(t, p, near(0.5));
    assert_eq!(l.learned(), None, "50 % used is no signal");
    // A moment near the limit (a burst), then not: no signal either.
    let mut t = t;
    for u in [0.85, 0.9, 0.6] {
        t = l.next_slot(t + ms(33));
        let p = admit(&mut l, t);
        l.answered(t + ms(30), p, near(u));
    }
    assert_eq!(l.learned(), None, "a burst is no signal");
    // Near the limit on every answer for half a second: a soft cut.
    let from = t;
    while l.learned().is_none() {
        // Still at 30/s, as the tenant admits.
        t = l.next_slot(t + ms(33));
        let p = admit(&mut l, t);
        l.answered(t + ms(30), p, near(0.9));
        assert!(t < from + Duration::from_secs(2), "no soft cut");
    }
    assert!(t + ms(30) >= from + NEAR_PERSIST);
    let w = l.learned().unwrap();
    let pace = l.rate(t).unwrap();
    assert!(w <= 30.0 * GAMMA_SOFT + 1.0, "{w}");
    assert_eq!(l.pause_remaining(t + ms(30)), None, "no pause");
    assert!((pace - w).abs() < 1e-9, "no dip either: {pace} vs {w}");
    // More reports within the second do not cut again.
    let at = l.next_slot(t);
    let p = admit(&mut l, at);
    l.answered(at + ms(30), p, near(1.2));
    assert_eq!(l.learned(), Some(w));
}

/// The tenant of the issue, as the simulators model it: a token bucket of `rate` per
/// second holding `burst`, that goes into debt (refused requests count too) and answers
/// 429 with Retry-After in whole seconds until one token is back.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Share of admitted requests answered 429 (Retry-After 1) anyway, and the dice.
    noise: f64,
    dice: rand::rngs::StdRng,
}

impl Bucket {
    fn new(rate: f64, burst: f64, t0: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: t0,
            noise: 0.0,
            dice: rand::SeedableRng::seed_from_u64(14),
        }
    }
    fn check(&mut self, now: Instant) -> Result<(), u64> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            return if rand::Rng::random::<f64>(&mut self.dice) < self.noise {
                Err(1)
            } else {
                Ok(())
            };
        }
        Err((((1.0 - self.tokens) / self.rate) - 1e-9).ceil().max(1.0) as u64)
    }
}

/// Drives `workers` clients through the limiter against the bucket for `requests`
/// successful requests, 25 ms from send to decision; returns (wall, 429s, cuts' W).
fn run_against(
    l: &mut Limiter,
    server: &mut Bucket,
    t0: Instant,
    workers: usize,
    requests: usize,
) -> (Duration, usize, Vec<f64>) {
    let latency = ms(25);
    let mut now = t0;
    let mut answers: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut permits = std::collections::HashMap::new();
    let (mut ok, mut throttled_n, mut seq) = (0usize, 0usize, 0u64);
    let mut learned = Vec::new();
    while ok < requests {
        let next_answer = answers.peek().map(|Reverse((t, _))| *t);
        if answers.len() < workers {
            match l.try_admit(now) {
                Ok(p) => {
                    let decided = now + latency;
                    let verdict = server.check(decided);
                    seq += 1;
                    permits.insert(seq, (p, verdict));
                    answers.push(Reverse((decided, seq)));
                    continue;
                }
                Err(at) => {
                    now = next_answer.map_or(at, |a| a.min(at));
                }
            }
        } else {
            now = next_answer.expect("answers in flight");
        }
        while let Some(Reverse((t, id))) = answers.peek().copied() {
            if t > now {
                break;
            }
            answers.pop();
            let (p, verdict) = permits.remove(&id).expect("permit");
            match verdict {
                Ok(()) => {
                    ok += 1;
                    l.answered(t, p, SERVED);
                }
                Err(secs) => {
                    throttled_n += 1;
                    let before = l.learned();
                    l.answered(t, p, throttled(secs));
                    if l.learned() != before {
                        learned.extend(l.learned());
                    }
                }
            }
        }
    }
    (now - t0, throttled_n, learned)
}

#[test]
fn against_a_30_per_second_bucket_it_settles_just_under_the_limit() {
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 5, None);
    let mut server = Bucket::new(30.0, 5.0, t0);
    let (wall, throttled_n, learned) = run_against(&mut l, &mut server, t0, 16, 4000);
    let ideal = 4000.0 / 30.0;
    let ratio = wall.as_secs_f64() / ideal;
    assert!(
        ratio < 1.1,
        "{wall:?} for 4000 requests ({ratio:.3}× ideal)"
    );
    assert!(throttled_n * 100 < 4000, "{throttled_n} throttled");
    let settled = *learned.last().unwrap();
    assert!(
        (26.0..30.0).contains(&settled),
        "settled at {settled} ({learned:?})"
    );
    // One throttle event per probe, not a storm: about one every 25 s.
    assert!(learned.len() <= 8, "{learned:?}");
}

#[test]
fn against_other_buckets_it_converges_without_a_storm() {
    for (rate, burst, requests) in [(10.0, 10.0, 1500), (100.0, 20.0, 6000), (5.0, 1.0, 600)] {
        let t0 = Instant::now();
        let mut l = Limiter::new(200.0, 5, None);
        let mut server = Bucket::new(rate, burst, t0);
        let (wall, throttled_n, learned) = run_against(&mut l, &mut server, t0, 16, requests);
        let ratio = wall.as_secs_f64() / (requests as f64 / rate);
        assert!(
            ratio < 1.5,
            "{rate}/s burst {burst}: {ratio:.3}× ideal, {learned:?}"
        );
        assert!(
            throttled_n * 20 < requests,
            "{rate}/s burst {burst}: {throttled_n} throttled"
        );
        // A bucket of a second's worth lets a probe run well past the limit before
        // the first 429, so the plateau walks down over a few events (a sawtooth):
        // within half the limit either way, never a collapse.
        let settled = *learned.last().unwrap();
        assert!(
            settled > rate * 0.5 && settled < rate * 1.5,
            "{rate}/s: settled at {settled}: {learned:?}"
        );
    }
}

#[test]
fn random_throttling_neither_collapses_the_rate_nor_overruns_the_limit() {
    // 30 % of the requests the bucket admits are throttled anyway: every one costs a
    // pause, whatever the rate, so cutting on them would only drive the rate down.
    let t0 = Instant::now();
    let mut l = Limiter::new(200.0, 5, None);
    let mut server = Bucket::new(30.0, 5.0, t0);
    server.noise = 0.3;
    let (wall, throttled_n, learned) = run_against(&mut l, &mut server, t0, 16, 1000);
    let w = l.learned().expect("learned");
    assert!((5.0..=30.0).contains(&w), "settled at {w}: {learned:?}");
    // About one pause per 2.3 served requests is the best anyone can do here.
    let floor = 1000.0 / (0.7 / 0.3);
    assert!(
        wall.as_secs_f64() < floor * 1.5,
        "{wall:?} for 1000 requests, {throttled_n} throttled"
    );
}

// ---------------------------------------------------------------- the async gate

#[tokio::test]
async fn a_pause_holds_every_caller() {
    let g = Gate::unlimited();
    g.pause(ms(120));
    let t0 = std::time::Instant::now();
    let p = g.admit(Kind::Write).await;
    assert!(t0.elapsed() >= ms(110));
    assert_eq!(g.answered(p, SERVED), Verdict::Continue);
}

#[tokio::test]
async fn the_gate_paces_at_its_ceiling() {
    // A ceiling under INITIAL_RATE: no slow start. 5 at once, then 25 at 50/s.
    let g = Gate::new(10.0, 5);
    let t0 = std::time::Instant::now();
    for _ in 0..8 {
        let p = g.admit(Kind::Write).await;
        g.answered(p, SERVED);
    }
    let e = t0.elapsed();
    assert!(e >= ms(290) && e < ms(600), "{e:?}");
}

#[tokio::test]
async fn reads_keep_their_own_ceiling_under_the_shared_one() {
    let g = Gate::with_config(&GateConfig {
        rate: 10.0,
        read_rate: Some(4.0),
        burst: 1,
        max_throttle: None,
    });
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        let p = g.admit(Kind::Read).await;
        g.answered(p, SERVED);
    }
    // Reads at 4/s: 0, 250, 500 ms.
    assert!(t0.elapsed() >= ms(480), "{:?}", t0.elapsed());
    let t1 = std::time::Instant::now();
    let p = g.admit(Kind::Write).await;
    g.answered(p, SERVED);
    assert!(
        t1.elapsed() < ms(150),
        "a write is not held by the reads' ceiling"
    );
}

#[tokio::test]
async fn a_throttle_answer_pauses_the_gate_and_is_counted() {
    let g = Gate::new(50.0, 1);
    let p = g.admit(Kind::Write).await;
    assert_eq!(
        g.answered(p, throttled(1)),
        Verdict::Continue,
        "no bound configured"
    );
    let left = g.pause_remaining().expect("paused");
    assert!(left > ms(900), "{left:?}");
    let s = g.stats();
    assert_eq!(s.throttles, 1);
    assert!(s.learned.is_some());
}
