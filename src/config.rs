//! `config/teamsync.toml`: global settings and named tenants.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), relative paths
//! resolve against the folder holding the file, and any top-level key can be overridden by
//! `TEAMSYNC_<KEY>` so a scheduler can point one binary at another database or tenant.
//! Secrets never live here: a tenant names the environment variable or command that
//! yields its token.
//!
//! A tenant table is typed by its `backend` key ([`TenantConfig`], one struct per backend
//! in the backend's `config.rs`, declared with [`tenant_table!`]): a key its backend does
//! not take is an error naming the tenant, the key, the backends that do take it, and the
//! keys this one takes. A table without `backend` is an embedded simulator (`sim`), as it
//! always was.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::connector::registry::TenantConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: String, message: String },
    /// A tenant table holds keys its backend does not take (another backend's, or a typo).
    #[error("{}", unknown_keys_message(tenant, backend, keys, accepted))]
    UnknownKeys {
        tenant: String,
        backend: String,
        keys: Vec<String>,
        accepted: Vec<&'static str>,
    },
    /// A tenant table its backend refuses (a missing or mistyped key, a bad value).
    #[error("tenant {tenant:?} (backend = {backend:?}): {message}")]
    Tenant {
        tenant: String,
        backend: String,
        message: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

fn unknown_keys_message(tenant: &str, backend: &str, keys: &[String], accepted: &[&str]) -> String {
    let shown: Vec<String> = keys
        .iter()
        .map(|k| {
            let elsewhere = crate::connector::registry::tables_taking(k);
            match (elsewhere.is_empty(), backend) {
                (true, _) => format!("`{k}`"),
                // An embedded simulator's tenant is its seed, whatever the backend takes.
                (false, "sim") => format!(
                    "`{k}` (a key of {} tenants; an embedded simulator takes its tenant from its seed)",
                    elsewhere.join(" and ")
                ),
                _ => format!("`{k}` (a key of {} tenants)", elsewhere.join(" and ")),
            }
        })
        .collect();
    format!(
        "tenant {tenant:?} (backend = {backend:?}): unknown key{} {}; a {backend} tenant takes: {}",
        if keys.len() == 1 { "" } else { "s" },
        shown.join(", "),
        accepted.join(", ")
    )
}

/// The keys every tenant takes, whatever its backend: the pace of requests, retries and
/// when a job gives up. `--rate` and `--concurrency` override two of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// Ceiling of the tenant's adaptive rate limiter, reads included (requests per second;
    /// 0 = unlimited). The limiter learns the tenant's real limit below it.
    pub rate_per_second: f64,
    /// A ceiling for reads (GET) of their own, when the tenant allows reads a different
    /// rate than writes; unset = `rate_per_second`.
    pub read_rate_per_second: Option<f64>,
    /// How long the tenant may throttle without a break before a run stops (aborted,
    /// resumable), in minutes.
    pub max_throttle_minutes: f64,
    pub burst: u32,
    /// Users worked on at once.
    pub concurrency: usize,
    pub request_timeout_s: u64,
    pub max_attempts: u32,
    /// How long a just-created user may stay invisible before it is an error.
    pub replication_window_s: u64,
    /// Job-wide retry budget (retries across all items).
    pub retry_budget: u64,
    /// Consecutive failed items that abort the job.
    pub max_consecutive_failures: u32,
    /// How `plan` and `sync` get users' details when `--refresh` does not say
    /// (`crate::refresh`).
    pub refresh: crate::refresh::RefreshMode,
    /// The share of the tenant whose details an incremental refresh reads again every
    /// night, in (0, 1]: every user is read within `1 / refresh_share` nights.
    pub refresh_share: f64,
}

/// The keys of a backend reached over the network: where, with which credentials and how
/// strictly. An embedded simulator takes none of them (it listens on loopback with a token
/// of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// Scheme, host and optional path prefix; each connector adds its vendor's API path.
    pub base_url: String,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// Command printing a fresh token on stdout (run again once on a 401).
    pub token_command: Option<String>,
    /// PEM bundle of a private CA.
    pub ca_file: Option<PathBuf>,
    /// Allows plain http to a non-loopback host (with a warning).
    pub allow_insecure_http: bool,
}

/// What every tenant table offers, whatever its backend: written by [`tenant_table!`].
pub trait TenantKeys {
    /// Every key the table takes, for messages (`backend` aside).
    fn keys(&self) -> &'static [&'static str];
    fn pacing(&self) -> Pacing;
    /// The connection keys; `None` for an embedded simulator.
    fn remote(&self) -> Option<Remote>;
    /// Makes relative paths (seed, state, CA file, sheet) relative to the config file's
    /// folder.
    fn resolve_paths(&mut self, base: &Path);
    /// The sheet this tenant is synced from by `--all` (`sheet = "…"`), resolved against
    /// the config file's folder; `None`: the tenant takes part in single runs only.
    fn sheet(&self) -> Option<&Path>;
}

/// Defaults of the shared keys (named by [`tenant_table!`]'s serde attributes).
pub mod defaults {
    pub fn rate() -> f64 {
        10.0
    }
    pub fn burst() -> u32 {
        5
    }
    pub fn concurrency() -> usize {
        8
    }
    pub fn timeout() -> u64 {
        30
    }
    pub fn attempts() -> u32 {
        6
    }
    pub fn window() -> u64 {
        300
    }
    pub fn budget() -> u64 {
        1000
    }
    pub fn consecutive() -> u32 {
        20
    }
    pub fn max_throttle() -> f64 {
        30.0
    }
    pub fn refresh_share() -> f64 {
        crate::refresh::DEFAULT_SHARE
    }
}

/// Declares one backend's `[tenants.X]` table: the keys of its own, then the keys every
/// tenant shares ([`Pacing`]) and, for `remote` tables, the connection keys ([`Remote`]).
///
/// The shared keys are repeated into each struct by this macro rather than kept in a
/// `#[serde(flatten)]`ed field, because serde does not support `flatten` together with
/// `deny_unknown_fields`: a flattened table passes unknown keys by (or refuses them
/// without saying which keys are taken). Repeated, every table is one flat struct that
/// refuses what it does not declare, and knows its key list ([`TenantKeys::keys`]) for the
/// message that names them.
#[macro_export]
macro_rules! tenant_table {
    // A backend reached over the network: its own keys, the connection keys, the shared ones.
    (remote $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::tenant_table! { @table remote paths[ca_file]
            $(#[$meta])* pub struct $name {
                $($body)*
                /// Scheme, host and optional path prefix; the connector adds the API path.
                pub base_url: String,
                /// Environment variable holding the bearer token.
                #[serde(default)]
                pub token_env: Option<String>,
                /// Command printing a fresh token (run again once on a 401).
                #[serde(default)]
                pub token_command: Option<String>,
                /// PEM bundle of a private CA.
                #[serde(default)]
                pub ca_file: Option<std::path::PathBuf>,
                /// Allows plain http to a non-loopback host (with a warning).
                #[serde(default)]
                pub allow_insecure_http: bool,
            }
        }
    };
    // A tenant served in-process: its own keys (`paths`: the ones holding file paths) and
    // the shared ones.
    (local paths[$($path:ident),*] $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::tenant_table! { @table local paths[$($path),*]
            $(#[$meta])* pub struct $name { $($body)* }
        }
    };
    (@remote remote $self:ident) => {
        Some($crate::config::Remote {
            base_url: $self.base_url.clone(),
            token_env: $self.token_env.clone(),
            token_command: $self.token_command.clone(),
            ca_file: $self.ca_file.clone(),
            allow_insecure_http: $self.allow_insecure_http,
        })
    };
    (@remote local $self:ident) => {
        None
    };
    (@table $kind:ident paths[$($path:ident),*] $(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// The tenant's sheet, for `--all` runs (relative to the config file).
            #[serde(default)]
            pub sheet: Option<std::path::PathBuf>,
            #[serde(default = "crate::config::defaults::rate")]
            pub rate_per_second: f64,
            /// A ceiling of reads' own (GET), req/s; unset = `rate_per_second`.
            #[serde(default)]
            pub read_rate_per_second: Option<f64>,
            /// How long the tenant may throttle without a break before a run stops.
            #[serde(default = "crate::config::defaults::max_throttle")]
            pub max_throttle_minutes: f64,
            #[serde(default = "crate::config::defaults::burst")]
            pub burst: u32,
            #[serde(default = "crate::config::defaults::concurrency")]
            pub concurrency: usize,
            #[serde(default = "crate::config::defaults::timeout")]
            pub request_timeout_s: u64,
            #[serde(default = "crate::config::defaults::attempts")]
            pub max_attempts: u32,
            #[serde(default = "crate::config::defaults::window")]
            pub replication_window_s: u64,
            #[serde(default = "crate::config::defaults::budget")]
            pub retry_budget: u64,
            #[serde(default = "crate::config::defaults::consecutive")]
            pub max_consecutive_failures: u32,
            /// `full` or `incremental` (`crate::refresh`); `--refresh` overrides it.
            #[serde(default)]
            pub refresh: $crate::refresh::RefreshMode,
            /// Share of the tenant an incremental refresh reads again every night.
            #[serde(default = "crate::config::defaults::refresh_share")]
            pub refresh_share: f64,
        }
        impl $crate::config::TenantKeys for $name {
            fn keys(&self) -> &'static [&'static str] {
                Self::KEYS
            }
            fn pacing(&self) -> $crate::config::Pacing {
                $crate::config::Pacing {
                    rate_per_second: self.rate_per_second,
                    read_rate_per_second: self.read_rate_per_second,
                    max_throttle_minutes: self.max_throttle_minutes,
                    burst: self.burst,
                    concurrency: self.concurrency,
                    request_timeout_s: self.request_timeout_s,
                    max_attempts: self.max_attempts,
                    replication_window_s: self.replication_window_s,
                    retry_budget: self.retry_budget,
                    max_consecutive_failures: self.max_consecutive_failures,
                    refresh: self.refresh,
                    refresh_share: self.refresh_share,
                }
            }
            fn remote(&self) -> Option<$crate::config::Remote> {
                $crate::tenant_table!(@remote $kind self)
            }
            fn resolve_paths(&mut self, base: &std::path::Path) {
                let _ = base;
                $( self.$path = self.$path.take().map(|p| $crate::config::resolve(base, p)); )*
                self.sheet = self.sheet.take().map(|p| $crate::config::resolve(base, p));
            }
            fn sheet(&self) -> Option<&std::path::Path> {
                self.sheet.as_deref()
            }
        }
        impl $name {
            /// Every key the table takes (`backend` aside), in declaration order.
            pub const KEYS: &'static [&'static str] = &[
                $(stringify!($field),)*
                "sheet", "rate_per_second", "read_rate_per_second", "max_throttle_minutes",
                "burst", "concurrency", "request_timeout_s",
                "max_attempts", "replication_window_s", "retry_budget",
                "max_consecutive_failures", "refresh", "refresh_share",
            ];
        }
    };
}

/// `p` against `base` unless absolute.
pub fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Caps that keep hostile sheets from exhausting memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "d_max_file")]
    pub max_file_mb: u64,
    #[serde(default = "d_max_rows")]
    pub max_rows: u64,
    #[serde(default = "d_max_cols")]
    pub max_columns: u64,
    #[serde(default = "d_max_cell")]
    pub max_cell_chars: usize,
}
fn d_max_file() -> u64 {
    200
}
fn d_max_rows() -> u64 {
    1_000_000
}
fn d_max_cols() -> u64 {
    200
}
fn d_max_cell() -> usize {
    32_767
}
impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_file_mb: d_max_file(),
            max_rows: d_max_rows(),
            max_columns: d_max_cols(),
            max_cell_chars: d_max_cell(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    db: Option<PathBuf>,
    templates: Option<PathBuf>,
    default_tenant: Option<String>,
    lock_dir: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    parallel_tenants: Option<usize>,
    notify: Option<crate::notify::NotifyConfig>,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    tenants: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (for messages).
    pub path: Option<PathBuf>,
    pub db: PathBuf,
    pub templates: PathBuf,
    pub default_tenant: Option<String>,
    /// Folder of the tenant lock files; `None`: `history::lock::default_lock_dir()`.
    pub lock_dir: Option<PathBuf>,
    /// Prometheus textfile written after each run (`crate::notify::metrics`).
    pub metrics_file: Option<PathBuf>,
    /// Webhook told after each run (`crate::notify::webhook`).
    pub notify: Option<crate::notify::NotifyConfig>,
    /// How many tenants an `--all` run works on at once (`--parallel-tenants` overrides).
    /// Each tenant's rate limit, not the CPU, bounds a night, so tenants side by side is
    /// where the time is won; a few at once keeps one pod's memory and sockets modest.
    pub parallel_tenants: usize,
    pub limits: LimitsConfig,
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// Top-level keys that `TEAMSYNC_<KEY>` may override.
const OVERRIDABLE: &[&str] = &[
    "db",
    "templates",
    "default_tenant",
    "lock_dir",
    "metrics_file",
    "parallel_tenants",
];

/// Tenants an `--all` run works on at once when neither the config nor
/// `--parallel-tenants` says.
pub const DEFAULT_PARALLEL_TENANTS: usize = 4;

impl Config {
    /// Loads `path`, or the default location: `./config/teamsync.toml` if present, else
    /// built-in defaults with the embedded demo tenant.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        if let Some(p) = path {
            Config::from_file(p, &env)
        } else {
            let p = Path::new("config/teamsync.toml");
            if p.exists() {
                Config::from_file(p, &env)
            } else {
                Config::from_str("", Path::new("."), None, &env)
            }
        }
    }

    pub fn from_file(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        refuse_writable_by_others(path, &text)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::from_str(&text, base, Some(path), env)
    }

    /// Parses config text; relative paths resolve against `base`.
    pub fn from_str(
        text: &str,
        base: &Path,
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let shown = path.map_or_else(|| "(defaults)".into(), |p| p.display().to_string());
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        for (k, v) in env {
            let Some(key) = k.strip_prefix("TEAMSYNC_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "db" => raw.db = Some(PathBuf::from(v)),
                "templates" => raw.templates = Some(PathBuf::from(v)),
                "default_tenant" => raw.default_tenant = Some(v.clone()),
                "lock_dir" => raw.lock_dir = Some(PathBuf::from(v)),
                "metrics_file" => raw.metrics_file = Some(PathBuf::from(v)),
                "parallel_tenants" => {
                    raw.parallel_tenants = Some(v.trim().parse().map_err(|_| {
                        ConfigError::Invalid(format!(
                            "environment variable {k}: {v:?} is not a number of tenants"
                        ))
                    })?);
                }
                // Variables the CLI itself reads (TEAMSYNC_CONFIG, TEAMSYNC_LOG, TEAMSYNC_SIM_TOKEN)
                // are not keys.
                "config" | "log" | "sim_token" => {}
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "environment variable {k}: unknown key {other:?} (overridable: {})",
                        OVERRIDABLE.join(", ")
                    )))
                }
            }
        }
        let resolve = |p: PathBuf| resolve(base, p);
        let mut tenants = BTreeMap::new();
        for (name, table) in raw.tenants {
            let t = TenantConfig::from_table(&name, table, base)?;
            tenants.insert(name, t);
        }
        let mut implicit_default = None;
        if tenants.is_empty() && path.is_none() {
            tenants = TenantConfig::embedded_demos(base);
            implicit_default = Some("demo".to_string());
        }
        let default_tenant = raw.default_tenant.or(implicit_default).or_else(|| {
            (tenants.len() == 1)
                .then(|| tenants.keys().next().cloned())
                .flatten()
        });
        if let Some(d) = &default_tenant {
            if !tenants.contains_key(d) {
                return Err(ConfigError::Invalid(format!(
                    "{shown}: default_tenant {d:?} is not among the tenants ({})",
                    tenants.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if raw.parallel_tenants == Some(0) {
            return Err(ConfigError::Invalid(format!(
                "{shown}: parallel_tenants must be at least 1"
            )));
        }
        if let Some(n) = &raw.notify {
            n.check()
                .map_err(|m| ConfigError::Invalid(format!("{shown}: {m}")))?;
        }
        Ok(Config {
            path: path.map(Path::to_path_buf),
            db: resolve(
                raw.db
                    .unwrap_or_else(|| PathBuf::from(".teamsync/history.db")),
            ),
            templates: resolve(raw.templates.unwrap_or_else(|| PathBuf::from("templates"))),
            default_tenant,
            lock_dir: raw.lock_dir.map(resolve),
            metrics_file: raw.metrics_file.map(resolve),
            notify: raw.notify,
            parallel_tenants: raw.parallel_tenants.unwrap_or(DEFAULT_PARALLEL_TENANTS),
            limits: raw.limits,
            tenants,
        })
    }

    /// The tenant named, or the default one.
    pub fn tenant(&self, name: Option<&str>) -> Result<(String, &TenantConfig), ConfigError> {
        let Some(name) = name.or(self.default_tenant.as_deref()) else {
            return Err(ConfigError::Invalid(
                "no tenant given (--tenant) and no default_tenant in the config".into(),
            ));
        };
        self.tenants
            .get(name)
            .map(|t| (name.to_string(), t))
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "unknown tenant {name:?} (configured: {})",
                    self.tenants.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }
}

/// Refuses a config file that any user of the machine may change, or that sits in a
/// folder any user may replace it in (writable by all and not sticky, unlike `/tmp`):
/// whoever can change it can point teamsync at another tenant or history, and with
/// `token_command` run a command of theirs as the user who runs teamsync.
fn refuse_writable_by_others(path: &Path, text: &str) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let runs_commands = if text.contains("token_command") {
            ", and its token_command would run whatever they put there"
        } else {
            ""
        };
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
        if mode(path).is_ok_and(|m| m & 0o002 != 0) {
            return Err(ConfigError::Invalid(format!(
                "{} is writable by every user of this machine, so anyone could change the tenants and history it names{runs_commands}; \
                 refusing to use it (chmod o-w {})",
                path.display(),
                path.display()
            )));
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if mode(dir).is_ok_and(|m| m & 0o002 != 0 && m & 0o1000 == 0) {
            return Err(ConfigError::Invalid(format!(
                "{} is in {}, a folder every user of this machine may write to, so anyone could replace it{runs_commands}; \
                 refusing to use it (move it, or chmod o-w {})",
                path.display(),
                dir.display(),
                dir.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, text);
    Ok(())
}

/// Refuses plain http to anything but loopback unless explicitly allowed.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("base_url {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_insecure_http {
                if !loopback {
                    tracing::warn!("plain http to {url} (allow_insecure_http = true)");
                }
                Ok(())
            } else {
                Err(format!(
                    "base_url {url:?} is plain http to a non-loopback host; use https or set allow_insecure_http = true"
                ))
            }
        }
        s => Err(format!("base_url {url:?}: unsupported scheme {s:?}")),
    }
}

/// Runs a credential helper; its stdout (trimmed) is the token. stderr is not echoed
/// (it may contain secrets); only the exit status is reported.
pub fn run_token_command(cmd: &str) -> Result<String, ConfigError> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ConfigError::Invalid(format!("token_command could not start: {e}")))?;
    if !out.status.success() {
        return Err(ConfigError::Invalid(format!(
            "token_command failed ({})",
            out.status
        )));
    }
    let tok = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if tok.is_empty() {
        return Err(ConfigError::Invalid(
            "token_command printed no token".into(),
        ));
    }
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::from_str("dbb = \"x\"", Path::new("."), None, &[]).unwrap_err();
        assert!(e.to_string().contains("dbb"), "{e}");
        let e = Config::from_str(
            "[tenants.a]\nbackend=\"sim\"\nseed=\"s.json\"\nrate=3\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("rate"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder_and_env_overrides() {
        let c = Config::from_str(
            "db = \"../h.db\"\n[tenants.demo]\nseed = \"../samples/t.json\"\n",
            Path::new("/etc/ts"),
            Some(Path::new("/etc/ts/teamsync.toml")),
            &[("TEAMSYNC_TEMPLATES".into(), "/tmp/tpl".into())],
        )
        .unwrap();
        assert_eq!(c.db, PathBuf::from("/etc/ts/../h.db"));
        assert_eq!(c.templates, PathBuf::from("/tmp/tpl"));
        assert_eq!(c.default_tenant.as_deref(), Some("demo"));
        let TenantConfig::Sim(sim) = &c.tenants["demo"] else {
            panic!("{:?}", c.tenants["demo"])
        };
        assert_eq!(
            sim.seed.as_deref(),
            Some(Path::new("/etc/ts/../samples/t.json"))
        );
        assert_eq!(sim.sim_backend.name, "fusion");
        let c = Config::from_str(
            "[tenants.pbx]\nbackend = \"portsip\"\nbase_url = \"https://pbx.example.net\"\nca_file = \"ca.pem\"\n",
            Path::new("/etc/ts"),
            Some(Path::new("/etc/ts/teamsync.toml")),
            &[],
        )
        .unwrap();
        let remote = c.tenants["pbx"].remote().unwrap();
        assert_eq!(remote.ca_file, Some(PathBuf::from("/etc/ts/ca.pem")));
    }

    /// Without a file: the embedded demo tenants, one per backend, `demo` the default.
    #[test]
    fn no_file_means_the_embedded_demos() {
        let c = Config::from_str("", Path::new("/w"), None, &[]).unwrap();
        assert_eq!(c.default_tenant.as_deref(), Some("demo"));
        assert_eq!(
            c.tenants.keys().collect::<Vec<_>>(),
            ["demo", "demo-graph", "demo-lp", "demo-portsip", "demo-ump"]
        );
    }

    /// Every backend's table takes `sheet`, resolved like `seed`; `parallel_tenants`
    /// defaults, is read from the file and the environment, and cannot be 0.
    #[test]
    fn tenants_name_their_sheets_and_runs_take_several_at_once() {
        let c = Config::from_str(
            "parallel_tenants = 6\n\
             [tenants.a]\nsheet = \"sheets/a.csv\"\n\
             [tenants.b]\nbackend = \"ump\"\nbase_url = \"https://u.example\"\nsheet = \"/srv/b.xlsx\"\n\
             [tenants.c]\n",
            Path::new("/etc/ts"),
            Some(Path::new("/etc/ts/teamsync.toml")),
            &[],
        )
        .unwrap();
        assert_eq!(c.parallel_tenants, 6);
        assert_eq!(
            c.tenants["a"].sheet(),
            Some(Path::new("/etc/ts/sheets/a.csv"))
        );
        assert_eq!(c.tenants["b"].sheet(), Some(Path::new("/srv/b.xlsx")));
        assert_eq!(c.tenants["c"].sheet(), None);
        for b in crate::connector::registry::BACKENDS {
            assert!(b.keys.contains(&"sheet"), "{b:?}");
        }
        let c = Config::from_str("", Path::new("."), None, &[]).unwrap();
        assert_eq!(c.parallel_tenants, DEFAULT_PARALLEL_TENANTS);
        let env = [("TEAMSYNC_PARALLEL_TENANTS".to_string(), "12".to_string())];
        let c = Config::from_str("", Path::new("."), None, &env).unwrap();
        assert_eq!(c.parallel_tenants, 12);
        let e = Config::from_str("parallel_tenants = 0", Path::new("."), None, &[]).unwrap_err();
        assert!(e.to_string().contains("parallel_tenants"), "{e}");
    }

    #[test]
    fn unknown_env_override_is_an_error() {
        let e = Config::from_str(
            "",
            Path::new("."),
            None,
            &[("TEAMSYNC_DBB".into(), "x".into())],
        )
        .unwrap_err();
        assert!(e.to_string().contains("TEAMSYNC_DBB"));
    }

    #[cfg(unix)]
    #[test]
    fn a_config_others_may_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("teamsync.toml");
        std::fs::write(
            &p,
            "[tenants.a]\nbackend = \"fusion\"\nbase_url = \"https://f.example\"\ntoken_command = \"get-token\"\n\
             draas_instance = \"p\"\ntenant_uuid = \"t\"\nsubscription_id = 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Config::from_file(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("writable by every user"), "{e}");
        assert!(e.contains("token_command"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        // A folder anyone may write to (not sticky) lets anyone replace the file.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Config::from_file(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("a folder every user"), "{e}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        Config::from_file(&p, &[]).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn throttling_keys_default_and_are_checked() {
        let c = Config::from_str(
            "[tenants.a]\nseed = \"s.json\"\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap();
        let t = &c.tenants["a"];
        assert_eq!(t.pacing().read_rate_per_second, None);
        assert_eq!(t.pacing().max_throttle_minutes, 30.0);
        let c = Config::from_str(
            "[tenants.a]\nseed = \"s.json\"\nread_rate_per_second = 50\nmax_throttle_minutes = 0.5\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(c.tenants["a"].pacing().read_rate_per_second, Some(50.0));
        assert_eq!(c.tenants["a"].pacing().max_throttle_minutes, 0.5);
        for bad in ["read_rate_per_second = -1", "max_throttle_minutes = 0"] {
            let e = Config::from_str(
                &format!("[tenants.a]\nseed = \"s.json\"\n{bad}\n"),
                Path::new("."),
                None,
                &[],
            )
            .unwrap_err();
            assert!(
                e.to_string().contains(bad.split(' ').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn refresh_keys_default_to_full_and_are_checked() {
        use crate::refresh::RefreshMode;
        let c = Config::from_str(
            "[tenants.a]\nseed = \"s.json\"\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap();
        let p = c.tenants["a"].pacing();
        assert_eq!(p.refresh, RefreshMode::Full);
        assert!((p.refresh_share - 1.0 / 7.0).abs() < 1e-12);
        let c = Config::from_str(
            "[tenants.a]\nseed = \"s.json\"\nrefresh = \"incremental\"\nrefresh_share = 0.25\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap();
        let p = c.tenants["a"].pacing();
        assert_eq!(
            (p.refresh, p.refresh_share),
            (RefreshMode::Incremental, 0.25)
        );
        for bad in [
            "refresh_share = 0",
            "refresh_share = 1.5",
            "refresh = \"sometimes\"",
        ] {
            let e = Config::from_str(
                &format!("[tenants.a]\nseed = \"s.json\"\n{bad}\n"),
                Path::new("."),
                None,
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("refresh"), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://localhost:1", false).is_ok());
        assert!(check_url("http://fusion.example.net", false).is_err());
        assert!(check_url("http://fusion.example.net", true).is_ok());
        assert!(check_url("https://fusion.example.net", false).is_ok());
    }
}
