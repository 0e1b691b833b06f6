//! The backends teamsync knows, in one place: the typed `[tenants.X]` table of each
//! ([`TenantConfig`]) and what each can do ([`Backend`]: its profile, and its simulator as
//! an embedded tenant or `teamsync sim`).
//!
//! Everything else asks here: the config loader types a tenant table by its `backend` key,
//! `connect` opens any table the same way ([`TenantTable::connect`]), the tenant lock takes
//! its identity ([`TenantTable::identity`]), and `teamsync backends` and `teamsync sim` list
//! [`BACKENDS`].
//!
//! Adding a backend: its folder under `src/connector/` with the layout every backend has
//! (`mod.rs`: readings of the vendor document, `PROFILE`, `BACKEND` and the connector;
//! `config.rs`: its table and how it connects; `wire.rs`, `mapping.rs`, `steps.rs`;
//! `sim.rs`: its simulator from `teamsync-sim`), one `pub mod` line in `connector/mod.rs`,
//! and five lines here (a [`TenantConfig`] variant, an arm in each of `table`, `table_mut`
//! and `typed`, an entry of [`BACKENDS`]).

use super::embedded::SimConfig;
use super::http::HttpSettings;
use super::{fusion, graph, liveplatform, portsip, ump, Connector, ConnectorError, Gate};
use crate::config::{check_url, ConfigError, Pacing, Remote, TenantKeys};
use crate::model::Profile;
use async_trait::async_trait;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::common::conn::Background;
use teamsync_sim::common::Sample;
use teamsync_sim::{SimError, SimOptions};

/// A `[tenants.NAME]` table, typed by its `backend` key. Each variant's struct takes its
/// backend's keys and the shared ones ([`tenant_table!`](crate::tenant_table)) and refuses
/// any other.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum TenantConfig {
    /// An embedded simulator of any backend (`sim_backend`), started in-process.
    Sim(SimConfig),
    Fusion(fusion::FusionConfig),
    Liveplatform(liveplatform::LivePlatformConfig),
    Ump(ump::UmpConfig),
    Portsip(portsip::PortsipConfig),
    Graph(graph::GraphConfig),
}

/// The backends, in `teamsync backends` order.
pub static BACKENDS: &[&Backend] = &[
    &fusion::BACKEND,
    &liveplatform::BACKEND,
    &ump::BACKEND,
    &portsip::BACKEND,
    &graph::BACKEND,
];

impl TenantConfig {
    /// The table, whatever its backend.
    pub fn table(&self) -> &dyn TenantTable {
        match self {
            TenantConfig::Sim(t) => t,
            TenantConfig::Fusion(t) => t,
            TenantConfig::Liveplatform(t) => t,
            TenantConfig::Ump(t) => t,
            TenantConfig::Portsip(t) => t,
            TenantConfig::Graph(t) => t,
        }
    }

    fn table_mut(&mut self) -> &mut dyn TenantTable {
        match self {
            TenantConfig::Sim(t) => t,
            TenantConfig::Fusion(t) => t,
            TenantConfig::Liveplatform(t) => t,
            TenantConfig::Ump(t) => t,
            TenantConfig::Portsip(t) => t,
            TenantConfig::Graph(t) => t,
        }
    }

    /// The keys a table of `backend` takes, `None` for a backend teamsync does not know.
    fn keys_of(backend: &str) -> Option<&'static [&'static str]> {
        if backend == SIM {
            return Some(SimConfig::KEYS);
        }
        self::backend(backend).map(|b| b.keys)
    }

    /// Types one `[tenants.NAME]` table: its `backend` (absent: `sim`) picks the struct,
    /// a key that struct does not declare is [`ConfigError::UnknownKeys`], relative paths
    /// resolve against `base` (the config file's folder), and values are checked.
    pub fn from_table(
        name: &str,
        mut table: toml::Table,
        base: &Path,
    ) -> Result<TenantConfig, ConfigError> {
        let backend = match table.get("backend") {
            None => SIM.to_string(),
            Some(toml::Value::String(b)) => b.clone(),
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "tenant {name:?}: backend must be a string, not {other}"
                )))
            }
        };
        let Some(accepted) = TenantConfig::keys_of(&backend) else {
            return Err(ConfigError::Invalid(format!(
                "tenant {name:?}: unknown backend {backend:?} (known: {SIM}, {})",
                names().join(", ")
            )));
        };
        let mut unknown: Vec<String> = table
            .keys()
            .filter(|k| *k != "backend" && !accepted.contains(&k.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(ConfigError::UnknownKeys {
                tenant: name.to_string(),
                backend,
                keys: unknown,
                accepted: accepted.to_vec(),
            });
        }
        table.remove("backend");
        let invalid = |message: String| ConfigError::Tenant {
            tenant: name.to_string(),
            backend: backend.clone(),
            message,
        };
        let mut cfg = TenantConfig::typed(&backend, table).map_err(invalid)?;
        cfg.table_mut().resolve_paths(base);
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    /// The table as its backend's struct. (The enum's serde tag would do the same, but
    /// serde buffers a tagged enum's content and its errors then lose the key they are
    /// about: "invalid type: string, expected i64" would not say which key.)
    fn typed(backend: &str, table: toml::Table) -> Result<TenantConfig, String> {
        fn de<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, String> {
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().trim().to_string();
                match key.as_str() {
                    "." | "" => message,
                    key => format!("{key}: {message}"),
                }
            })
        }
        match backend {
            SIM => de(table).map(TenantConfig::Sim),
            "fusion" => de(table).map(TenantConfig::Fusion),
            "liveplatform" => de(table).map(TenantConfig::Liveplatform),
            "ump" => de(table).map(TenantConfig::Ump),
            "portsip" => de(table).map(TenantConfig::Portsip),
            "graph" => de(table).map(TenantConfig::Graph),
            other => Err(format!("unknown backend {other:?}")),
        }
    }

    /// The checks every table gets, then its own.
    fn check(&self) -> Result<(), String> {
        let p = self.pacing();
        if !(p.rate_per_second >= 0.0 && p.rate_per_second.is_finite()) {
            return Err("rate_per_second must be >= 0".into());
        }
        if let Some(r) = p.read_rate_per_second {
            if !(r >= 0.0 && r.is_finite()) {
                return Err("read_rate_per_second must be >= 0".into());
            }
        }
        if !(p.max_throttle_minutes > 0.0 && p.max_throttle_minutes.is_finite()) {
            return Err("max_throttle_minutes must be more than 0".into());
        }
        if p.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if p.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if !(p.refresh_share > 0.0 && p.refresh_share <= 1.0) {
            return Err(
                "refresh_share must be more than 0 and at most 1 (one seventh: every user read within 7 nights)"
                    .into(),
            );
        }
        self.table().check()
    }

    pub fn pacing(&self) -> Pacing {
        self.table().pacing()
    }

    /// The backend the tenant is (for a `sim` tenant, the one it simulates).
    pub fn backend(&self) -> &'static Backend {
        self.table().backend()
    }

    /// What makes two tables the same tenant, for the tenant lock.
    pub fn identity(&self) -> String {
        self.table().identity()
    }

    /// Connects (an embedded simulator is started; nothing is sent yet).
    pub async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        self.table().connect(gate).await
    }

    /// The embedded demo tenants of a config without a file: one per backend, served from
    /// the samples built into the simulators, state under `base/.teamsync/`.
    pub fn embedded_demos(base: &Path) -> std::collections::BTreeMap<String, TenantConfig> {
        let demo = |name: &str, backend: &'static Backend| {
            let table: toml::Table = [
                ("backend".to_string(), toml::Value::from(SIM)),
                ("sim_backend".to_string(), toml::Value::from(backend.name)),
                (
                    "state".to_string(),
                    // `demo-tenant.db`: the demo's state file from before there were others.
                    toml::Value::from(match name {
                        "demo" => ".teamsync/demo-tenant.db".to_string(),
                        _ => format!(".teamsync/{name}.db"),
                    }),
                ),
            ]
            .into_iter()
            .collect();
            TenantConfig::from_table(name, table, base).map(|t| (name.to_string(), t))
        };
        [
            ("demo", &fusion::BACKEND),
            ("demo-lp", &liveplatform::BACKEND),
            ("demo-ump", &ump::BACKEND),
            ("demo-portsip", &portsip::BACKEND),
            ("demo-graph", &graph::BACKEND),
        ]
        .into_iter()
        .filter_map(|(name, b)| demo(name, b).ok())
        .collect()
    }
}

impl TenantKeys for TenantConfig {
    fn keys(&self) -> &'static [&'static str] {
        self.table().keys()
    }
    fn pacing(&self) -> Pacing {
        self.table().pacing()
    }
    fn remote(&self) -> Option<Remote> {
        self.table().remote()
    }
    fn resolve_paths(&mut self, base: &Path) {
        self.table_mut().resolve_paths(base);
    }
    fn sheet(&self) -> Option<&Path> {
        self.table().sheet()
    }
}

/// The `backend` of an embedded simulator's table.
pub const SIM: &str = "sim";

/// What a tenant table of one backend does beyond holding keys.
#[async_trait]
pub trait TenantTable: TenantKeys + Send + Sync {
    /// The backend the tenant is (for a `sim` tenant, the one it simulates).
    fn backend(&self) -> &'static Backend;
    /// What makes two tables the same tenant, for the tenant lock: the backend, its
    /// address (normalised with [`url_identity`]) and the tenant path.
    fn identity(&self) -> String;
    /// Values its keys' types do not rule out; by default a remote backend's URL must be
    /// https, or plain http to loopback or with `allow_insecure_http`.
    fn check(&self) -> Result<(), String> {
        match self.remote() {
            Some(r) => check_url(&r.base_url, r.allow_insecure_http),
            None => Ok(()),
        }
    }
    /// The tenant's connector (an embedded simulator is started first). Sends nothing:
    /// connectors connect lazily.
    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError>;
}

/// An opened tenant: its connector, and the embedded simulator it talks to (kept alive as
/// long as this is).
pub struct Connected {
    pub connector: Arc<dyn Connector>,
    pub sim: Option<Background>,
}

impl Connected {
    /// A tenant reached over the network.
    pub fn remote(connector: impl Connector + 'static) -> Connected {
        Connected {
            connector: Arc::new(connector),
            sim: None,
        }
    }
}

/// Why a tenant could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("embedded {backend} simulator: {source}")]
    Sim {
        backend: &'static str,
        #[source]
        source: SimError,
    },
    #[error("seed file {path} does not exist (a relative `seed` resolves against the config file's folder)")]
    SeedMissing { path: String },
    #[error("cannot create {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One backend: its name (the `backend` and `sim_backend` value), what it can do, and its
/// simulator.
pub struct Backend {
    pub name: &'static str,
    /// One line for `teamsync backends`.
    pub note: &'static str,
    pub profile: Profile,
    /// The keys of its `[tenants.X]` table (`backend` aside).
    pub keys: &'static [&'static str],
    /// The tenant its simulator serves when a new state gets no seed file.
    pub sample: Sample,
    /// Whether its simulator asks for a bearer token: an embedded tenant then gets a random
    /// one. (UMP documents no authentication, so its embedded tenant asks none.)
    pub sim_token: bool,
    /// Opens its simulator on a state file (`None`: in memory), seeded from the seed file
    /// (`None`: [`Backend::sample`]) when the state is new.
    pub open_sim: OpenSim,
}

/// A backend's simulator opener: (state file, seed file, options).
pub type OpenSim = fn(Option<&Path>, Option<&Path>, SimOptions) -> Result<SimServer, SimError>;

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Builds the connector to a simulator once it listens, from its base URL, the HTTP
/// settings (token, timeout, retries) and the tenant's gate.
pub type SimConnect = Box<
    dyn FnOnce(String, HttpSettings, Arc<Gate>) -> Result<Arc<dyn Connector>, ConnectorError>
        + Send,
>;

/// A backend's simulator, opened and ready to listen.
pub struct SimServer {
    pub router: axum::Router,
    /// Where its API lives below the server root, as `teamsync sim` shows it.
    pub api_path: String,
    pub connect: SimConnect,
}

/// The backend called `name`.
pub fn backend(name: &str) -> Option<&'static Backend> {
    BACKENDS.iter().copied().find(|b| b.name == name)
}

/// The backends' names, in registry order.
pub fn names() -> Vec<&'static str> {
    BACKENDS.iter().map(|b| b.name).collect()
}

/// The kinds of tenant table that take `key` (`sim` and backend names), for a message
/// about a key given to the wrong one.
pub fn tables_taking(key: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    if SimConfig::KEYS.contains(&key) {
        out.push(SIM);
    }
    out.extend(
        BACKENDS
            .iter()
            .filter(|b| b.keys.contains(&key))
            .map(|b| b.name),
    );
    out
}

/// `sim_backend = "ump"` as the backend it names.
pub fn deserialize_backend<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<&'static Backend, D::Error> {
    let name = String::deserialize(d)?;
    backend(&name).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "sim_backend {name:?} is not a backend (available: {})",
            names().join(", ")
        ))
    })
}

/// A base URL as a tenant identity: scheme and host case and a trailing slash do not make
/// another tenant.
pub fn url_identity(raw: &str) -> String {
    let raw = raw.trim();
    match url::Url::parse(raw) {
        Ok(u) => u.as_str().trim_end_matches('/').to_string(),
        Err(_) => raw.trim_end_matches('/').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn every_backend_is_registered_once_with_its_own_name() {
        let mut names = names();
        assert_eq!(names.len(), BACKENDS.len());
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BACKENDS.len());
        for b in BACKENDS {
            assert_eq!(b.profile.backend, b.name, "{b:?}");
            assert!(b.keys.contains(&"base_url"), "{b:?}");
            assert!(b.keys.contains(&"rate_per_second"), "{b:?}");
        }
        assert!(!names.contains(&SIM));
    }

    /// A key of another backend names this tenant, the key, who takes it and what this
    /// backend takes.
    #[test]
    fn another_backends_key_is_refused_with_the_keys_this_one_takes() {
        let e = TenantConfig::from_table(
            "acme",
            table(
                "backend = \"fusion\"\nbase_url = \"https://f.example.net\"\ndraas_instance = \"p\"\n\
                 tenant_uuid = \"t\"\nsubscription_id = 1\ncustomer_id = \"c\"\nsim_latency_ms = 5\n\
                 voice_policies = []\n",
            ),
            Path::new("."),
        )
        .unwrap_err();
        let ConfigError::UnknownKeys {
            tenant,
            backend,
            keys,
            accepted,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((tenant.as_str(), backend.as_str()), ("acme", "fusion"));
        assert_eq!(keys, &["customer_id", "sim_latency_ms", "voice_policies"]);
        assert!(accepted.contains(&"draas_instance") && accepted.contains(&"token_env"));
        let m = e.to_string();
        for part in [
            "tenant \"acme\"",
            "`customer_id` (a key of liveplatform tenants)",
            "`sim_latency_ms` (a key of sim tenants)",
            "`voice_policies` (a key of ump tenants)",
            "a fusion tenant takes: draas_instance, tenant_uuid, subscription_id, bulk_size, base_url",
        ] {
            assert!(m.contains(part), "{part:?} in {m}");
        }
    }

    #[test]
    fn a_missing_or_mistyped_key_names_the_tenant() {
        let e = TenantConfig::from_table(
            "acme",
            table("backend = \"fusion\"\nbase_url = \"https://f.example.net\"\ndraas_instance = \"p\"\nsubscription_id = 1\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ConfigError::Tenant { tenant, message, .. } if tenant == "acme" && message.contains("tenant_uuid")),
            "{e:?}"
        );
        let e = TenantConfig::from_table(
            "s",
            table("backend = \"sim\"\nsim_backend = \"teams\"\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sim_backend \"teams\" is not a backend (available: fusion, liveplatform, ump, portsip, graph)"), "{e}");
        let e = TenantConfig::from_table("x", table("backend = \"teams\"\n"), Path::new("."))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown backend \"teams\" (known: sim, fusion"),
            "{e}"
        );
        let e = TenantConfig::from_table(
            "p",
            table("backend = \"portsip\"\nbase_url = \"http://pbx.example.net\"\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("allow_insecure_http"), "{e}");
    }

    #[test]
    fn one_tenant_has_one_identity_however_it_is_spelt() {
        let cfg = |t: &str| TenantConfig::from_table("t", table(t), Path::new("/etc/ts")).unwrap();
        let a = cfg("backend = \"fusion\"\nbase_url = \"https://Fusion.Example.net/\"\ndraas_instance = \"d1\"\ntenant_uuid = \"ABC\"\nsubscription_id = 7\n");
        let b = cfg("backend = \"fusion\"\nbase_url = \"https://fusion.example.net\"\ndraas_instance = \"d1\"\ntenant_uuid = \"abc\"\nsubscription_id = 7\nrate_per_second = 3\n");
        assert_eq!(a.identity(), b.identity());
        let other = cfg("backend = \"fusion\"\nbase_url = \"https://fusion.example.net\"\ndraas_instance = \"d1\"\ntenant_uuid = \"abc\"\nsubscription_id = 8\n");
        assert_ne!(a.identity(), other.identity());
        let ump = cfg("backend = \"ump\"\nbase_url = \"https://fusion.example.net\"\n");
        assert_ne!(ump.identity(), a.identity(), "the backend counts");
        let sim = cfg("backend = \"sim\"\nstate = \"t.db\"\n");
        assert_eq!(sim.identity(), "sim fusion state /etc/ts/t.db");
        let sim = cfg("sim_backend = \"ump\"\nstate = \"/tmp/u.db\"\n");
        assert_eq!(sim.identity(), "sim ump state /tmp/u.db");
    }

    #[test]
    fn embedded_demos_cover_every_backend() {
        let demos = TenantConfig::embedded_demos(Path::new("/w"));
        let got: Vec<(&str, &str)> = demos
            .iter()
            .map(|(n, t)| (n.as_str(), t.backend().name))
            .collect();
        assert_eq!(
            got,
            [
                ("demo", "fusion"),
                ("demo-graph", "graph"),
                ("demo-lp", "liveplatform"),
                ("demo-portsip", "portsip"),
                ("demo-ump", "ump")
            ]
        );
        assert_eq!(
            demos["demo-ump"].identity(),
            "sim ump state /w/.teamsync/demo-ump.db"
        );
    }
}
