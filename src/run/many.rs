//! Many tenants in one command (`sync --all`, `plan --all`, `validate --all`): which
//! tenants take part, which of them a shard takes, and running them side by side.
//!
//! Why side by side: a night over many tenants is bounded by each tenant's rate limit,
//! not by the CPU, so tenants that wait on their own limiters in parallel finish in about
//! the time of the slowest ones instead of the sum. Each tenant still runs the whole
//! pipeline of its own ([`super::execute`]): its own lock, its own adaptive limiter, its
//! own job. A tenant that fails is one row of the result; it never stops the others.
//!
//! Why shards: when one machine is not enough, Kubernetes runs N pods of an Indexed Job,
//! each `sync --all --shard $JOB_COMPLETION_INDEX/N`. A shard is defined on the tenants
//! that name a sheet, sorted by name (byte order, as the config's table keeps them): shard
//! `I/N` takes the tenants whose position in that list, counted from 0, is `I` modulo
//! `N`. Every pod reads the same config, so the N shards cover every tenant exactly once
//! and sizes differ by at most one. Adding a tenant may move others to another shard,
//! which is harmless: each night's histories are merged (`jobs merge`) and the tenant
//! lock follows the tenant, not the pod.

use crate::apply::Stop;
use crate::config::{Config, TenantKeys};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// `--shard I/N`: the `I`th (from 0) of `N` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the tenant at `position` of the sorted list belongs to this shard.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let usage =
            || format!("{s:?} is not I/N (a shard index from 0 and a shard count, e.g. 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let index: usize = i.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!("{s:?}: the shard count must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "{s:?}: the shard index counts from 0, so it must be below {count}"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A tenant an `--all` run takes, with its sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub sheet: PathBuf,
}

/// The tenants of an `--all` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The tenants this run takes, sorted by name.
    pub tenants: Vec<Selected>,
    /// How many tenants name a sheet, over all shards.
    pub with_sheet: usize,
    /// Tenants without a `sheet` (never part of `--all`).
    pub without_sheet: Vec<String>,
    pub shard: Option<Shard>,
}

/// Why there is nothing to run.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "no tenant names a sheet, so --all has nothing to run; give a tenant `sheet = \"…\"` \
         in its [tenants.NAME] table (configured: {})",
        .0.join(", ")
    )]
    NoSheets(Vec<String>),
}

/// The tenants that name a sheet, sorted by name, and of those the ones `shard` takes
/// (see the module doc).
pub fn select(config: &Config, shard: Option<Shard>) -> Result<Selection, SelectError> {
    let mut with: Vec<Selected> = Vec::new();
    let mut without = Vec::new();
    // A BTreeMap: sorted by name already, the order every pod sees.
    for (name, t) in &config.tenants {
        match t.sheet() {
            Some(sheet) => with.push(Selected {
                name: name.clone(),
                sheet: sheet.to_path_buf(),
            }),
            None => without.push(name.clone()),
        }
    }
    if with.is_empty() {
        return Err(SelectError::NoSheets(
            config.tenants.keys().cloned().collect(),
        ));
    }
    let with_sheet = with.len();
    let tenants = with
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.takes(*i)))
        .map(|(_, t)| t)
        .collect();
    Ok(Selection {
        tenants,
        with_sheet,
        without_sheet: without,
        shard,
    })
}

/// What became of one tenant of a run over many.
#[derive(Debug)]
pub enum Ran<T> {
    /// It ran (successfully or not: `T` says).
    Done(T),
    /// A stop (SIGTERM, Ctrl-C) came before its turn: nothing was started for it.
    NotStarted,
    /// Its task ended without a result (a bug of teamsync's own); the others went on.
    Lost(String),
}

/// Runs `work` for every tenant, at most `parallel` at once, and returns each tenant's
/// result in the order given. Once `stop` is triggered no further tenant starts (those
/// under way stop on their own, each watching the same stop); the ones left are
/// [`Ran::NotStarted`].
pub async fn run_each<T, F, Fut>(
    tenants: &[Selected],
    parallel: usize,
    stop: &Stop,
    work: F,
) -> Vec<(Selected, Ran<T>)>
where
    T: Send + 'static,
    F: Fn(Selected) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, t) in tenants.iter().enumerate() {
        let permits = permits.clone();
        let stop = stop.clone();
        let fut = work(t.clone());
        tasks.spawn(async move {
            // The semaphore is never closed, so this only waits.
            let _permit = permits.acquire_owned().await;
            if stop.is_stopped() {
                return (i, None);
            }
            (i, Some(fut.await))
        });
    }
    let mut results: Vec<Option<Ran<T>>> = tenants.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Some(r))) => results[i] = Some(Ran::Done(r)),
            Ok((i, None)) => results[i] = Some(Ran::NotStarted),
            // Which tenant it was is lost with the task; filled in below.
            Err(e) => tracing::error!("a tenant's run ended without a result: {e}"),
        }
    }
    tenants
        .iter()
        .cloned()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or_else(|| {
                Ran::Lost(format!(
                    "the run of tenant {} ended without a result (see the log)",
                    t.name
                ))
            });
            (t, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(names: &[(&str, bool)]) -> Config {
        let mut text = String::new();
        for (n, sheet) in names {
            text.push_str(&format!("[tenants.{n}]\n"));
            if *sheet {
                text.push_str(&format!("sheet = \"{n}.csv\"\n"));
            }
        }
        Config::from_str(
            &text,
            Path::new("/cfg"),
            Some(Path::new("/cfg/t.toml")),
            &[],
        )
        .unwrap()
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.tenants.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn shards_parse_as_index_over_count() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["5/5", "1/0", "x/2", "1", "-1/2", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("5/5".parse::<Shard>().unwrap_err().contains("below 5"));
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }

    /// Sorted by name, position modulo N: every tenant with a sheet in exactly one shard,
    /// shard sizes within one of each other, tenants without a sheet in none.
    #[test]
    fn shards_cover_every_tenant_with_a_sheet_exactly_once() {
        let c = config(&[
            ("zeta", true),
            ("acme", true),
            ("beta", false),
            ("contoso", true),
            ("delta", true),
            ("echo", true),
        ]);
        let all = select(&c, None).unwrap();
        assert_eq!(names(&all), ["acme", "contoso", "delta", "echo", "zeta"]);
        assert_eq!(all.with_sheet, 5);
        assert_eq!(all.without_sheet, ["beta"]);
        assert_eq!(all.tenants[0].sheet, Path::new("/cfg/acme.csv"));
        let shard = |i, n| select(&c, Some(Shard { index: i, count: n })).unwrap();
        assert_eq!(names(&shard(0, 2)), ["acme", "delta", "zeta"]);
        assert_eq!(names(&shard(1, 2)), ["contoso", "echo"]);
        for n in 1..=7 {
            let mut seen: Vec<String> = Vec::new();
            let mut sizes = Vec::new();
            for i in 0..n {
                let s = shard(i, n);
                sizes.push(s.tenants.len());
                seen.extend(s.tenants.into_iter().map(|t| t.name));
            }
            seen.sort();
            assert_eq!(seen, names(&all), "{n} shards");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} shards: {sizes:?}");
        }
        // More shards than tenants: the extra ones are empty, not an error.
        assert!(shard(6, 7).tenants.is_empty());
        // The same config gives the same shards (every pod computes its own).
        assert_eq!(shard(1, 3), shard(1, 3));
    }

    #[test]
    fn no_tenant_with_a_sheet_is_an_error_naming_the_key() {
        let c = config(&[("acme", false)]);
        let e = select(&c, None).unwrap_err().to_string();
        assert!(e.contains("sheet = ") && e.contains("acme"), "{e}");
    }

    #[tokio::test]
    async fn each_tenant_runs_once_a_bounded_number_at_a_time_and_a_stop_starts_no_more() {
        let tenants: Vec<Selected> = (0..9)
            .map(|i| Selected {
                name: format!("t{i}"),
                sheet: PathBuf::from("s.csv"),
            })
            .collect();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Stop::new();
        let out = run_each(&tenants, 3, &stop, |t| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                running.fetch_sub(1, SeqCst);
                t.name.len()
            }
        })
        .await;
        assert_eq!(out.len(), 9);
        assert!(out.iter().all(|(_, r)| matches!(r, Ran::Done(2))));
        assert_eq!(out[4].0.name, "t4", "results in the order given");
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);

        // A stop during the first tenant: the others never start.
        let stop = Stop::new();
        let s2 = stop.clone();
        let out = run_each(&tenants, 1, &stop, move |t| {
            let s2 = s2.clone();
            async move {
                s2.trigger("stopped by SIGTERM");
                t.name
            }
        })
        .await;
        let done = out
            .iter()
            .filter(|(_, r)| matches!(r, Ran::Done(_)))
            .count();
        let not_started = out
            .iter()
            .filter(|(_, r)| matches!(r, Ran::NotStarted))
            .count();
        assert_eq!((done, not_started), (1, 8));
    }
}
