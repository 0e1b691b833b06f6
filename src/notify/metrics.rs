//! The `metrics_file`: Prometheus text exposition of the last run of each tenant, for
//! node_exporter's textfile collector (or any scraper of `*.prom` files).
//!
//! Why a file and not an endpoint: teamsync runs for a minute a night; a textfile the
//! collector reads on every scrape outlives it, and alerting on "no success for 26 h"
//! (`time() - teamsync_last_success_timestamp_seconds > 93600`) needs nothing else.
//!
//! Every sample is labelled by tenant. One file may serve several tenants (one config,
//! many tenants): a run replaces its own tenant's samples and keeps the others'. The
//! last-success time comes from the job history, so a failed night keeps the last good
//! one. The file is replaced whole (written beside it, renamed), so the collector never
//! reads half of it.

use super::RunSummary;
use crate::history::{History, JobFilter, JobStatus};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The metric families, in the order written: (name, help).
const FAMILIES: [(&str, &str); 8] = [
    (
        "teamsync_last_run_items",
        "Items of the tenant's last sync/apply/resume job, by outcome.",
    ),
    (
        "teamsync_last_run_requests",
        "Requests the tenant's last run sent.",
    ),
    (
        "teamsync_last_run_throttled_responses",
        "Throttling answers (429, or 503 with Retry-After) the tenant gave its last run.",
    ),
    (
        "teamsync_last_run_duration_seconds",
        "How long the tenant's last run took.",
    ),
    (
        "teamsync_last_run_exit_code",
        "Exit code of the tenant's last run (0 done, 1 items failed, 2 invalid input, 3 aborted).",
    ),
    (
        "teamsync_last_run_success",
        "1 when the tenant's last run was done (exit code 0), else 0.",
    ),
    (
        "teamsync_last_run_timestamp_seconds",
        "When the tenant's last run finished, Unix time.",
    ),
    (
        "teamsync_last_success_timestamp_seconds",
        "When a run of the tenant last finished with every item as desired, Unix time.",
    ),
];

/// A label value as the text format escapes it (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

/// When the tenant's last successful job finished, from the history.
fn last_success(history: Option<&History>, tenant: &str) -> Option<f64> {
    let filter = JobFilter {
        tenant: Some(tenant.to_string()),
        status: Some(JobStatus::Success),
        since: None,
        until: None,
    };
    let (rows, _) = history?.list_jobs(&filter, 1, 1).ok()?;
    let j = rows.first()?;
    unix(j.finished_on.as_deref().unwrap_or(&j.updated_on))
}

/// This run's samples, family by family.
fn samples(s: &RunSummary, last_success: Option<f64>) -> BTreeMap<&'static str, Vec<String>> {
    let t = format!("tenant=\"{}\"", escape(&s.tenant));
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut put = |family: &'static str, labels: String, value: String| {
        m.entry(family)
            .or_default()
            .push(format!("{family}{{{labels}}} {value}"));
    };
    for (key, _, n) in s.counts.rows() {
        put(
            "teamsync_last_run_items",
            format!("{t},outcome=\"{key}\""),
            n.to_string(),
        );
    }
    put(
        "teamsync_last_run_requests",
        t.clone(),
        s.requests.to_string(),
    );
    put(
        "teamsync_last_run_throttled_responses",
        t.clone(),
        s.throttled.to_string(),
    );
    put(
        "teamsync_last_run_duration_seconds",
        t.clone(),
        format!("{}", s.duration_s),
    );
    put(
        "teamsync_last_run_exit_code",
        t.clone(),
        s.exit_code.to_string(),
    );
    put(
        "teamsync_last_run_success",
        t.clone(),
        u8::from(s.succeeded()).to_string(),
    );
    if let Some(ts) = unix(&s.finished_on) {
        put(
            "teamsync_last_run_timestamp_seconds",
            t.clone(),
            format!("{ts}"),
        );
    }
    let success = last_success.or_else(|| s.succeeded().then(|| unix(&s.finished_on)).flatten());
    if let Some(ts) = success {
        put(
            "teamsync_last_success_timestamp_seconds",
            t.clone(),
            format!("{ts}"),
        );
    }
    m
}

/// The samples of other tenants in an existing file (ours are replaced).
fn others(existing: &str, tenant: &str) -> BTreeMap<&'static str, Vec<String>> {
    let ours = format!("tenant=\"{}\"", escape(tenant));
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for line in existing.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.contains(&ours) {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if let Some((family, _)) = FAMILIES.iter().find(|(f, _)| *f == name) {
            m.entry(*family).or_default().push(line.to_string());
        }
    }
    m
}

/// The whole file: every family with its HELP and TYPE once, other tenants' samples
/// first, then this run's.
pub fn render(existing: &str, s: &RunSummary, last_success: Option<f64>) -> String {
    let mut kept = others(existing, &s.tenant);
    let ours = samples(s, last_success);
    let mut out = String::new();
    for (family, help) in FAMILIES {
        let mut lines = kept.remove(family).unwrap_or_default();
        lines.extend(ours.get(family).cloned().unwrap_or_default());
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} gauge");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}

/// Writes the run's metrics into `path`, keeping other tenants' samples.
///
/// Read, merged by tenant and replaced under a lock: the tenants of a `--all` run finish
/// side by side in this process (a mutex), and another teamsync may share the file (a
/// `flock` on `PATH.lock` beside it). Without them two tenants finishing together would
/// each keep the file as it was before the other, and one tenant's series would vanish.
pub fn write(path: &Path, s: &RunSummary, history: Option<&History>) -> std::io::Result<()> {
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _here = IN_PROCESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock_path = {
        let mut p = path.as_os_str().to_owned();
        p.push(".lock");
        std::path::PathBuf::from(p)
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    lock.lock()?;
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let text = render(&existing, s, last_success(history, &s.tenant));
    crate::files::write_atomic(path, text.as_bytes(), 0o644)
    // The flock goes with `lock`, closed here.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::summary;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("valid text exposition")
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?}"));
        match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    #[test]
    fn the_file_parses_and_keeps_other_tenants() {
        let mut other = summary();
        other.tenant = "beta".into();
        other.requests = 7;
        let first = render("", &other, None);
        let mut s = summary();
        s.requests = 42;
        let text = render(&first, &s, Some(1_700_000_000.0));
        let scrape = parse(&text);
        assert_eq!(
            value(
                &scrape,
                "teamsync_last_run_items",
                &[("tenant", "acme"), ("outcome", "created")]
            ),
            2.0
        );
        assert_eq!(
            value(&scrape, "teamsync_last_run_requests", &[("tenant", "acme")]),
            42.0
        );
        assert_eq!(
            value(&scrape, "teamsync_last_run_requests", &[("tenant", "beta")]),
            7.0
        );
        assert_eq!(
            value(
                &scrape,
                "teamsync_last_success_timestamp_seconds",
                &[("tenant", "acme")]
            ),
            1_700_000_000.0
        );
        assert_eq!(
            value(
                &scrape,
                "teamsync_last_run_exit_code",
                &[("tenant", "acme")]
            ),
            1.0
        );
        // Each family once, its samples together: a second run of acme replaces its own.
        let again = render(&text, &s, Some(1_700_000_000.0));
        assert_eq!(
            again
                .matches("# TYPE teamsync_last_run_requests gauge")
                .count(),
            1
        );
        assert_eq!(
            again
                .matches("teamsync_last_run_requests{tenant=\"acme\"}")
                .count(),
            1
        );
        assert_eq!(again, text);
    }

    /// Tenants of one `--all` run finish together: every tenant's series survives, each
    /// once, and a later single-tenant run replaces only its own.
    #[test]
    fn tenants_finishing_together_keep_each_others_series() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("teamsync.prom");
        std::thread::scope(|scope| {
            for i in 0..16 {
                let path = &path;
                scope.spawn(move || {
                    let mut s = summary();
                    s.tenant = format!("t{i:02}");
                    s.requests = i;
                    write(path, &s, None).unwrap();
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let scrape = parse(&text);
        for i in 0..16 {
            let t = format!("t{i:02}");
            assert_eq!(
                value(&scrape, "teamsync_last_run_requests", &[("tenant", &t)]),
                f64::from(i)
            );
        }
        let mut later = summary();
        later.tenant = "t03".into();
        later.requests = 99;
        write(&path, &later, None).unwrap();
        let scrape = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(
            value(&scrape, "teamsync_last_run_requests", &[("tenant", "t03")]),
            99.0
        );
        assert_eq!(
            value(&scrape, "teamsync_last_run_requests", &[("tenant", "t15")]),
            15.0
        );
        assert_eq!(
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == "teamsync_last_run_requests")
                .count(),
            16
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = summary();
        s.tenant = "a\"b\\c\nd".into();
        let text = render("", &s, None);
        assert!(
            text.contains(r#"teamsync_last_run_requests{tenant="a\"b\\c\nd"} 42"#),
            "{text}"
        );
        // Its samples are its own when the file is rewritten.
        let again = render(&text, &s, None);
        assert_eq!(again, text);
    }
}
