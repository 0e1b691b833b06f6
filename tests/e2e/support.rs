//! A small fluent harness for running the real `teamsync` binary in a scratch folder
//! with its own config, history and simulated tenant state.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch workspace: `config/teamsync.toml` pointing at the repo's templates and
/// sample tenant, with history and tenant state inside the tempdir.
pub(crate) struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Workspace {
        Workspace::with_tenant_extra("")
    }

    /// `extra` is appended to the demo tenant's table (e.g. `sim_latency_ms = 20`).
    pub(crate) fn with_tenant_extra(extra: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let cfg = format!(
            "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"demo\"\nlock_dir = \"../locks\"\n\n\
             [tenants.demo]\nbackend = \"sim\"\nseed = {seed:?}\nstate = \"../demo-tenant.db\"\n\
             rate_per_second = 0\nrequest_timeout_s = 5\n{extra}\n",
            templates = repo().join("templates").display().to_string(),
            seed = repo().join("samples/tenant.json").display().to_string(),
        );
        std::fs::write(dir.path().join("config/teamsync.toml"), cfg).unwrap();
        Workspace { dir }
    }

    /// A workspace whose default tenant `t` is the tenant table `table` (a simulator
    /// served over HTTP by the test, with its keys).
    pub(crate) fn with_tenant_table(table: &str) -> Workspace {
        let ws = Workspace::new();
        ws.write(
            "config/teamsync.toml",
            &format!(
                "db = \"../history.db\"\ntemplates = {:?}\ndefault_tenant = \"t\"\n\n[tenants.t]\n{table}",
                repo().join("templates").display().to_string(),
            ),
        );
        ws
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file into the workspace and returns its path.
    pub(crate) fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("teamsync").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("TEAMSYNC_CONFIG")
            .env_remove("TEAMSYNC_DB")
            .env("NO_COLOR", "1")
            .arg("--config")
            .arg(self.path("config/teamsync.toml"));
        c
    }

    /// Starts teamsync in the background (output discarded), for kill and race tests.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
            .current_dir(self.dir.path())
            .env_remove("TEAMSYNC_CONFIG")
            .env_remove("TEAMSYNC_DB")
            .arg("--config")
            .arg(self.path("config/teamsync.toml"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn teamsync")
    }

    /// Runs teamsync with args; returns (exit code, stdout, stderr).
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    /// [`Workspace::run`] with extra environment variables (a tenant's token).
    pub(crate) fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self
            .cmd()
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("run teamsync");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) fn history(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("history.db")).expect("history db")
    }
}

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "exit code {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub(crate) fn sample(rel: &str) -> String {
    repo().join("samples").join(rel).display().to_string()
}

#[allow(dead_code)]
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}
