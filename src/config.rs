//! `config/teamsync.toml`: global settings and named tenants.
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), relative paths
//! resolve against the folder holding the file, and any top-level key can be overridden by
//! `TEAMSYNC_<KEY>` so a scheduler can point one binary at another database or tenant.
//! Secrets never live here: a tenant names the environment variable or command that
//! yields its token.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Which backend a tenant talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The embedded simulator, started in-process (the default tenant).
    #[default]
    Sim,
    Fusion,
    Liveplatform,
    Ump,
    Portsip,
}

impl BackendKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
            BackendKind::Fusion => "fusion",
            BackendKind::Liveplatform => "liveplatform",
            BackendKind::Ump => "ump",
            BackendKind::Portsip => "portsip",
        }
    }
}

/// One tenant's connection and pacing settings. Keys that only some backends use are
/// checked when the connector is built.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default)]
    pub backend: BackendKind,
    /// For `backend = "sim"`: which simulator (fusion, liveplatform, ump, portsip).
    #[serde(default)]
    pub sim_backend: Option<String>,
    /// For `backend = "sim"`: seed JSON and state database.
    pub seed: Option<PathBuf>,
    pub state: Option<PathBuf>,
    /// Simulator knobs for a `sim` tenant (tests and demos).
    #[serde(default)]
    pub sim_rate_limit: Option<u32>,
    #[serde(default)]
    pub sim_latency_ms: Option<u64>,
    #[serde(default)]
    pub sim_fault_rate: Option<f64>,

    pub base_url: Option<String>,
    pub draas_instance: Option<String>,
    pub tenant_uuid: Option<String>,
    pub subscription_id: Option<i64>,
    /// Live Platform customer GUID.
    pub customer_id: Option<String>,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// Command printing a fresh token on stdout (run again once on a 401).
    pub token_command: Option<String>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// UMP 365: the voice policies sheets may name in `vrp` (UMP cannot list them).
    #[serde(default)]
    pub voice_policies: Option<Vec<String>>,
    pub ca_file: Option<PathBuf>,

    /// Ceiling of the tenant's adaptive rate limiter (reads included), req/s; 0 = none.
    #[serde(default = "d_rate")]
    pub rate_per_second: f64,
    /// A ceiling for reads (GET) of their own, req/s, when the tenant allows reads a
    /// different rate than writes; unset = `rate_per_second`.
    #[serde(default)]
    pub read_rate_per_second: Option<f64>,
    /// How long the tenant may throttle without a break before a run stops (aborted,
    /// resumable), in minutes.
    #[serde(default = "d_max_throttle")]
    pub max_throttle_minutes: f64,
    #[serde(default = "d_burst")]
    pub burst: u32,
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    #[serde(default = "d_timeout")]
    pub request_timeout_s: u64,
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    #[serde(default = "d_window")]
    pub replication_window_s: u64,
    /// Job-wide retry budget (retries across all items).
    #[serde(default = "d_budget")]
    pub retry_budget: u64,
    /// Consecutive failed items that abort the job.
    #[serde(default = "d_consecutive")]
    pub max_consecutive_failures: u32,
}

fn d_rate() -> f64 {
    10.0
}
fn d_max_throttle() -> f64 {
    30.0
}
fn d_burst() -> u32 {
    5
}
fn d_concurrency() -> usize {
    8
}
fn d_timeout() -> u64 {
    30
}
fn d_attempts() -> u32 {
    6
}
fn d_window() -> u64 {
    300
}
fn d_budget() -> u64 {
    1000
}
fn d_consecutive() -> u32 {
    20
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
    notify: Option<crate::notify::NotifyConfig>,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    tenants: BTreeMap<String, TenantConfig>,
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
];

impl Config {
    /// Loads `path`, or the default location: `./config/teamsync.toml` if present, else
    /// built-in defaults with the embedded demo tenant.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        match path {
            Some(p) => Config::from_file(p, &env),
            None => {
                let p = Path::new("config/teamsync.toml");
                if p.exists() {
                    Config::from_file(p, &env)
                } else {
                    Config::from_str("", Path::new("."), None, &env)
                }
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
        let shown = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(defaults)".into());
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
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut tenants = raw.tenants;
        if tenants.is_empty() && path.is_none() {
            tenants.insert("demo".into(), TenantConfig::embedded_demo(base));
        }
        for t in tenants.values_mut() {
            t.seed = t.seed.take().map(resolve);
            t.state = t.state.take().map(resolve);
            t.ca_file = t.ca_file.take().map(resolve);
        }
        let default_tenant = raw.default_tenant.or_else(|| {
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
        for (name, t) in &tenants {
            t.check(name)?;
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
            limits: raw.limits,
            tenants,
        })
    }

    /// The tenant named, or the default one.
    pub fn tenant(&self, name: Option<&str>) -> Result<(String, &TenantConfig), ConfigError> {
        let name = match name.or(self.default_tenant.as_deref()) {
            Some(n) => n,
            None => {
                return Err(ConfigError::Invalid(
                    "no tenant given (--tenant) and no default_tenant in the config".into(),
                ))
            }
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

impl TenantConfig {
    fn embedded_demo(base: &Path) -> TenantConfig {
        let mut t: TenantConfig = toml::from_str("backend = \"sim\"").expect("static toml");
        t.seed = Some(base.join("samples/tenant.json"));
        t.state = Some(base.join(".teamsync/demo-tenant.db"));
        t
    }

    fn check(&self, name: &str) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("tenant {name:?}: {m}")));
        if !(self.rate_per_second >= 0.0 && self.rate_per_second.is_finite()) {
            return bad("rate_per_second must be >= 0".into());
        }
        if let Some(r) = self.read_rate_per_second {
            if !(r >= 0.0 && r.is_finite()) {
                return bad("read_rate_per_second must be >= 0".into());
            }
        }
        if !(self.max_throttle_minutes > 0.0 && self.max_throttle_minutes.is_finite()) {
            return bad("max_throttle_minutes must be more than 0".into());
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1".into());
        }
        if let Some(f) = self.sim_fault_rate {
            if !(0.0..=1.0).contains(&f) {
                return bad("sim_fault_rate must be between 0 and 1".into());
            }
        }
        match self.backend {
            BackendKind::Sim => {
                if self.seed.is_none() && self.state.is_none() {
                    return bad("a sim tenant needs `seed` or `state`".into());
                }
            }
            _ => {
                let Some(url) = &self.base_url else {
                    return bad("base_url is required".into());
                };
                check_url(url, self.allow_insecure_http).or_else(bad)?;
            }
        }
        Ok(())
    }

    /// The bearer token, from `token_command` if set, else `token_env`. Never logged.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(cmd) = &self.token_command {
            return run_token_command(cmd).map(Some);
        }
        if let Some(var) = &self.token_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
                _ => Err(ConfigError::Invalid(format!(
                    "environment variable {var} (token_env) is not set"
                ))),
            };
        }
        Ok(None)
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
        assert_eq!(
            c.tenants["demo"].seed.as_deref(),
            Some(Path::new("/etc/ts/../samples/t.json"))
        );
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
            "[tenants.a]\nbackend = \"fusion\"\nbase_url = \"https://f.example\"\ntoken_command = \"get-token\"\n",
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
        assert_eq!(t.read_rate_per_second, None);
        assert_eq!(t.max_throttle_minutes, 30.0);
        let c = Config::from_str(
            "[tenants.a]\nseed = \"s.json\"\nread_rate_per_second = 50\nmax_throttle_minutes = 0.5\n",
            Path::new("."),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(c.tenants["a"].read_rate_per_second, Some(50.0));
        assert_eq!(c.tenants["a"].max_throttle_minutes, 0.5);
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
    fn plain_http_only_to_loopback() {
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://localhost:1", false).is_ok());
        assert!(check_url("http://fusion.example.net", false).is_err());
        assert!(check_url("http://fusion.example.net", true).is_ok());
        assert!(check_url("https://fusion.example.net", false).is_ok());
    }
}
