//! The HTTP layer every bearer-token JSON backend (Fusion, Live Platform, UMP, PortSIP)
//! shares, so each connector states only its paths and its error-body shape: URL building,
//! bearer auth (with one refresh through the token command on a 401), the tenant gate, and
//! the mapping of every answer to [`ConnectorError`] in one place.
//!
//! Status mapping (the executor decides on these):
//! - 2xx → ok;
//! - 401 → refresh the token once when it comes from a command and resend, else (or
//!   again) [`ConnectorError::Auth`]; 403 → `Auth` at once (a fresh token has the same
//!   roles);
//! - 429, and 503 with a Retry-After → throttling: the whole tenant's gate pauses for the
//!   Retry-After (seconds or HTTP date, 1 s when a 429 names none, capped at
//!   [`MAX_RETRY_AFTER`]) and learns from it, then `Retryable` (see
//!   [`ConnectorError::is_throttle`]); once the tenant has throttled without a break for
//!   longer than the gate's bound, [`ConnectorError::Throttled`] instead;
//! - 500/502/503/504, connection errors, timeouts, an unreadable body → `Retryable`;
//! - other statuses → `Rejected` with the code and reason of the error body
//!   (`{"error": {"code", "reason"}}`), or a short excerpt of whatever body came.
//!
//! Every answer is reported to the gate ([`Gate::answered`]), with the share of its limit
//! the server says is used when it sends `x-ms-throttle-limit-percentage`.
//!
//! The token never appears in a log line, an error or a `Debug` output.

use crate::config::{run_token_command, TenantKeys};
use crate::connector::gate::{Answer, Kind, Verdict};
use crate::connector::retry::RetryPolicy;
use crate::connector::{ConnectorError, Gate};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A Retry-After longer than this is treated as this: a typo'd or hostile header must not
/// stall a nightly job for days. Above the longest throttle Microsoft documents for Graph.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Pause after a 429 that names no Retry-After.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How much of an unparsed error body is kept as the reason.
const EXCERPT_CHARS: usize = 200;
/// Microsoft Graph's header for the share of its limit a client has used (sent from 0.8).
pub const LIMIT_USED_HEADER: &str = "x-ms-throttle-limit-percentage";
/// Per-request timeout when a tenant's config sets none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the bearer token comes from. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    Static(String),
    /// Name of an environment variable, read on first use.
    Env(String),
    /// A credential helper printing a token; run on first use and again once on a 401.
    Command(String),
    None,
}

impl TokenSource {
    /// `token_command` if the tenant sets one, else `token_env`, else no token.
    pub fn from_tenant_config(cfg: &(impl TenantKeys + ?Sized)) -> TokenSource {
        match cfg.remote().map(|r| (r.token_command, r.token_env)) {
            Some((Some(c), _)) => TokenSource::Command(c),
            Some((None, Some(v))) => TokenSource::Env(v),
            _ => TokenSource::None,
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("Static(<redacted>)"),
            TokenSource::Env(v) => write!(f, "Env({v:?})"),
            // A command line may embed a secret (`echo …`): not shown either.
            TokenSource::Command(_) => f.write_str("Command(<redacted>)"),
            TokenSource::None => f.write_str("None"),
        }
    }
}

/// How to reach a backend, whatever the vendor: every backend's settings embed this, so
/// the tenant keys that mean the same for all (`token_*`, `request_timeout_s`, `ca_file`,
/// `allow_insecure_http`, `max_attempts`) are read, defaulted and applied in one place.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub token: TokenSource,
    /// Per HTTP request, connection included; time waiting in the tenant's gate excluded.
    pub request_timeout: Duration,
    /// PEM bundle of a private CA, trusted in addition to the public roots.
    pub ca_file: Option<PathBuf>,
    /// Allows plain http to a non-loopback host (see [`crate::config::check_url`]).
    pub allow_insecure_http: bool,
    /// Retries of reads (snapshot, read_user, find_user, check) on errors other than
    /// throttling; `send` never retries.
    pub retry: RetryPolicy,
}

impl HttpSettings {
    /// [`DEFAULT_REQUEST_TIMEOUT`], no CA file, https only, default retry policy.
    pub fn new(token: TokenSource) -> HttpSettings {
        HttpSettings {
            token,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ca_file: None,
            allow_insecure_http: false,
            retry: RetryPolicy::default(),
        }
    }

    /// From a `[tenants.X]` table: the token from `token_command` if set, else
    /// `token_env`; a timeout and an attempt count of 0 are read as 1.
    pub fn from_tenant_config(cfg: &(impl TenantKeys + ?Sized)) -> HttpSettings {
        let pacing = cfg.pacing();
        let remote = cfg.remote();
        HttpSettings {
            token: TokenSource::from_tenant_config(cfg),
            request_timeout: Duration::from_secs(pacing.request_timeout_s.max(1)),
            ca_file: remote.as_ref().and_then(|r| r.ca_file.clone()),
            allow_insecure_http: remote.is_some_and(|r| r.allow_insecure_http),
            retry: RetryPolicy {
                max_attempts: pacing.max_attempts.max(1),
                ..RetryPolicy::default()
            },
        }
    }
}

impl Default for HttpSettings {
    /// No token, otherwise as [`HttpSettings::new`].
    fn default() -> HttpSettings {
        HttpSettings::new(TokenSource::None)
    }
}

/// One request to send, relative to the client's root (Fusion: the tenant's `msteams` path).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
}

impl Request {
    pub(crate) fn get(path: &[&str]) -> Request {
        Request {
            method: Method::GET,
            path: path.iter().map(std::string::ToString::to_string).collect(),
            query: Vec::new(),
            body: None,
        }
    }
    /// For messages: method and path below the root, e.g. `GET users/abc`.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.path.join("/"))
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    /// The API's root (Fusion: `…/msteams`), without a trailing slash.
    root: reqwest::Url,
    token: TokenSource,
    cached: tokio::sync::Mutex<Option<String>>,
    gate: Arc<Gate>,
    pub retry: RetryPolicy,
    parse_error: ErrorParser,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("root", &self.root.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn cfg(m: impl Into<String>) -> ConnectorError {
    ConnectorError::Config(m.into())
}

/// `base_url` (query and fragment dropped) with `segments` appended to its path.
fn root_url(base_url: &str, segments: &[&str]) -> Result<reqwest::Url, ConnectorError> {
    let mut root =
        reqwest::Url::parse(base_url).map_err(|e| cfg(format!("base_url {base_url:?}: {e}")))?;
    root.set_query(None);
    root.set_fragment(None);
    root.path_segments_mut()
        .map_err(|()| cfg(format!("base_url {base_url:?} cannot carry a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(root)
}

/// `(code, reason)` from a non-2xx body; see [`parse_error_body`] for Fusion's.
pub(crate) type ErrorParser = fn(&[u8], StatusCode) -> (Option<String>, String);

impl Client {
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// A client for the API at `base_url` (query and fragment dropped) with `segments`
    /// appended. Refuses plain http to a non-loopback host unless `http` allows it
    /// ([`crate::config::check_url`]) and a CA file that holds no readable certificate. The
    /// token is not resolved yet: the first request does it.
    pub(crate) fn new(
        base_url: &str,
        segments: &[&str],
        http: HttpSettings,
        parse_error: ErrorParser,
        gate: Arc<Gate>,
    ) -> Result<Client, ConnectorError> {
        crate::config::check_url(base_url, http.allow_insecure_http).map_err(cfg)?;
        let root = root_url(base_url, segments)?;
        let mut b = reqwest::Client::builder()
            .timeout(http.request_timeout)
            .connect_timeout(http.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("teamsync/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &http.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| cfg(format!("ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| cfg(format!("ca_file {}: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(cfg(format!(
                    "ca_file {}: no PEM certificate in it",
                    ca.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| cfg(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Client {
            http: client,
            root,
            token: http.token,
            cached: tokio::sync::Mutex::new(None),
            gate,
            retry: http.retry,
            parse_error,
        })
    }

    fn url(&self, r: &Request) -> reqwest::Url {
        let mut u = self.root.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            segs.extend(r.path.iter());
        }
        if !r.query.is_empty() {
            u.query_pairs_mut()
                .extend_pairs(r.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        u
    }

    /// The current token, resolved on first use (so building a connector never runs a
    /// command or fails on a missing variable before it is needed).
    async fn token(&self) -> Result<Option<String>, ConnectorError> {
        let mut c = self.cached.lock().await;
        if c.is_none() {
            *c = resolve(&self.token).await?;
        }
        Ok(c.clone())
    }

    /// A fresh token from the command, unless another request already refreshed the one
    /// that failed (then that newer one is used, and the command runs only once).
    async fn refresh(&self, failed: Option<&str>) -> Result<Option<String>, ConnectorError> {
        let mut c = self.cached.lock().await;
        if c.as_deref() != failed && c.is_some() {
            return Ok(c.clone());
        }
        *c = resolve(&self.token).await?;
        Ok(c.clone())
    }

    /// Sends `r` once (plus one resend after a token refresh) and returns the body of a
    /// 2xx answer. Every HTTP request made is counted in `counter` and goes through the
    /// gate, which hears every answer.
    pub(crate) async fn send(
        &self,
        r: &Request,
        counter: &AtomicU64,
    ) -> Result<Vec<u8>, ConnectorError> {
        self.send_keeping(r, counter, &[])
            .await
            .map(|(_, body)| body)
    }

    /// [`Client::send`], except that an answer whose status is in `keep` is the caller's
    /// to read (status and body), like a 2xx: for an endpoint whose error answers carry
    /// results (Fusion's bulk update answers 400 with the outcome of every item).
    pub(crate) async fn send_keeping(
        &self,
        r: &Request,
        counter: &AtomicU64,
        keep: &[u16],
    ) -> Result<(u16, Vec<u8>), ConnectorError> {
        let url = self.url(r);
        let kind = if r.method == Method::GET {
            Kind::Read
        } else {
            Kind::Write
        };
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            let permit = self.gate.admit(kind).await;
            counter.fetch_add(1, Ordering::Relaxed);
            let mut rb = self.http.request(r.method.clone(), url.clone());
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = &r.body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    self.gate.answered(permit, Answer::Lost);
                    return Err(transport(r, e));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            if let Verdict::GiveUp {
                throttled_for,
                limit,
            } = self.gate.answered(permit, answer_of(status, &headers))
            {
                return Err(ConnectorError::Throttled {
                    request: r.describe(),
                    throttled_for,
                    limit,
                });
            }
            let body = resp.bytes().await.map_err(|e| transport(r, e))?;
            if status.is_success() || keep.contains(&status.as_u16()) {
                return Ok((status.as_u16(), body.to_vec()));
            }
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && matches!(self.token, TokenSource::Command(_))
            {
                tracing::info!(
                    "{}: HTTP 401, running token_command for a fresh token",
                    r.describe()
                );
                token = self.refresh(token.as_deref()).await?;
                refreshed = true;
                continue;
            }
            // Scrubbed before any excerpt is cut, so no part of the token survives.
            let body = match token.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => String::from_utf8_lossy(&body)
                    .replace(t, "<redacted>")
                    .into_bytes(),
                None => body.to_vec(),
            };
            let err = self.status_error(r, status, &headers, &body);
            return Err(scrub(err, token.as_deref()));
        }
    }

    fn status_error(
        &self,
        r: &Request,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ConnectorError {
        let code = status.as_u16();
        match code {
            401 | 403 => ConnectorError::Auth {
                status: code,
                message: format!("{}: {}", r.describe(), (self.parse_error)(body, status).1),
            },
            429 => {
                // The gate has paused the tenant for it already (`answered`).
                let wait = retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER);
                tracing::debug!("{}: HTTP 429, retry after {:?}", r.describe(), wait);
                ConnectorError::Retryable {
                    status: Some(429),
                    retry_after: Some(wait),
                    message: format!(
                        "{}: throttled, retry after {}s",
                        r.describe(),
                        wait.as_secs_f64()
                    ),
                }
            }
            500 | 502 | 503 | 504 => ConnectorError::Retryable {
                status: Some(code),
                retry_after: retry_after(headers),
                message: format!("{}: {}", r.describe(), (self.parse_error)(body, status).1),
            },
            _ => {
                let (c, reason) = (self.parse_error)(body, status);
                ConnectorError::Rejected {
                    status: code,
                    code: c,
                    reason,
                }
            }
        }
    }

    /// A read: sends with retries per the policy and parses the JSON. Throttling is
    /// retried without using an attempt (the gate holds the next send until the
    /// Retry-After has passed, and bounds throttling by time); other temporary failures
    /// use attempts, with backoff and jitter.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        r: &Request,
        counter: &AtomicU64,
    ) -> Result<T, ConnectorError> {
        let mut attempt = 1;
        loop {
            let res = self.send(r, counter).await.and_then(|b| parse_json(r, &b));
            match res {
                Err(e) if e.is_throttle() => {
                    tracing::debug!("{e}; retrying once the tenant's pause ends");
                }
                Err(ConnectorError::Retryable {
                    message,
                    retry_after,
                    ..
                }) if attempt < self.retry.max_attempts.max(1) => {
                    tracing::debug!("{message}; retrying (attempt {attempt})");
                    let mut wait = self.retry.backoff(attempt);
                    if let Some(d) = retry_after {
                        wait = wait.max(d);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// What the gate hears of an answer: 429 and 503 with Retry-After are throttling.
fn answer_of(status: StatusCode, headers: &HeaderMap) -> Answer {
    match (status.as_u16(), retry_after(headers)) {
        (429, ra) => Answer::Throttled {
            retry_after: ra.unwrap_or(DEFAULT_RETRY_AFTER),
        },
        (503, Some(ra)) => Answer::Throttled { retry_after: ra },
        _ => Answer::Served {
            limit_used: limit_used(headers),
        },
    }
}

/// `x-ms-throttle-limit-percentage` as a share of the limit: Graph sends a fraction
/// (0.8 to 1.8, despite the name); a value above 2 is read as a percentage (80 = 0.8).
pub(crate) fn limit_used(h: &HeaderMap) -> Option<f64> {
    let v: f64 = h
        .get(LIMIT_USED_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .ok()?;
    if !(v.is_finite() && v >= 0.0) {
        return None;
    }
    Some(if v > 2.0 { v / 100.0 } else { v })
}

pub(crate) async fn resolve(src: &TokenSource) -> Result<Option<String>, ConnectorError> {
    match src {
        TokenSource::None => Ok(None),
        TokenSource::Static(t) => Ok(Some(t.clone())),
        TokenSource::Env(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(cfg(format!("environment variable {var} is not set"))),
        },
        TokenSource::Command(cmd) => {
            let cmd = cmd.clone();
            tokio::task::spawn_blocking(move || run_token_command(&cmd))
                .await
                .map_err(|e| cfg(format!("the credential command did not finish: {e}")))?
                .map(Some)
                .map_err(|e| cfg(e.to_string()))
        }
    }
}

/// A server that echoes request headers into its error body must not carry the token
/// into our errors (and from there into logs and the history).
pub(crate) fn scrub(e: ConnectorError, token: Option<&str>) -> ConnectorError {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return e;
    };
    let clean = |s: String| {
        if s.contains(t) {
            s.replace(t, "<redacted>")
        } else {
            s
        }
    };
    match e {
        ConnectorError::Rejected {
            status,
            code,
            reason,
        } => ConnectorError::Rejected {
            status,
            code: code.map(clean),
            reason: clean(reason),
        },
        ConnectorError::Retryable {
            status,
            retry_after,
            message,
        } => ConnectorError::Retryable {
            status,
            retry_after,
            message: clean(message),
        },
        ConnectorError::Auth { status, message } => ConnectorError::Auth {
            status,
            message: clean(message),
        },
        other => other,
    }
}

/// Malformed JSON in a 2xx answer: the server or a proxy hiccuped; another try may do.
pub(crate) fn parse_json<T: DeserializeOwned>(
    r: &Request,
    body: &[u8],
) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|e| ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("{}: malformed JSON in a 2xx answer ({e})", r.describe()),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn transport(r: &Request, e: reqwest::Error) -> ConnectorError {
    if e.is_builder() {
        return cfg(format!("{}: {}", r.describe(), error_chain(&e)));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // Without the URL: it is long and already named by `describe`.
    let e = e.without_url();
    ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("{}: {what} ({})", r.describe(), error_chain(&e)),
    }
}

/// Retry-After as delta-seconds or an HTTP date; `None` when absent or unparsable.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        // Whole seconds, rounded up: the date has second precision and waiting a fraction
        // too little means another 429.
        match at.duration_since(SystemTime::now()) {
            Ok(d) => Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            Err(_) => Duration::ZERO,
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// `(code, reason)` from an error body. Reads `{"error": {"code", "reason"}}` as the
/// document shows it, tolerates a flat `{"code", "reason"|"message"}`, and otherwise keeps
/// a short excerpt of the body (or the status text when it is empty).
pub(crate) fn parse_error_body(body: &[u8], status: StatusCode) -> (Option<String>, String) {
    fn code_str(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Ok(e) =
            serde_json::from_value::<crate::connector::fusion::wire::ErrorBody>(v.clone())
        {
            let code = e.error.code.as_ref().and_then(code_str);
            if let Some(reason) = e.error.reason.filter(|r| !r.trim().is_empty()) {
                return (code, excerpt(&reason));
            }
            if code.is_some() {
                return (code, fallback_reason(body, status));
            }
        }
        if let Some(o) = v.as_object() {
            let code = o.get("code").and_then(code_str);
            let reason = ["reason", "message", "detail", "error"]
                .iter()
                .find_map(|k| {
                    o.get(*k)
                        .and_then(|r| r.as_str())
                        .filter(|r| !r.trim().is_empty())
                });
            if let Some(r) = reason {
                return (code, excerpt(r));
            }
            if code.is_some() {
                return (code, fallback_reason(body, status));
            }
        }
    }
    (None, fallback_reason(body, status))
}

fn fallback_reason(body: &[u8], status: StatusCode) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_string()
    } else {
        excerpt(text)
    }
}

pub(crate) fn excerpt(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(EXCERPT_CHARS).collect();
    if one_line.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn tenant(toml_text: &str) -> crate::config::TenantConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn http_settings_read_the_shared_tenant_keys() {
        let h = HttpSettings::from_tenant_config(&tenant(
            "backend = \"portsip\"\nbase_url = \"https://pbx.example.net\"\ntoken_env = \"PBX_TOKEN\"\ntoken_command = \"echo s3cr3t\"\n\
             request_timeout_s = 0\nca_file = \"/etc/ca.pem\"\nallow_insecure_http = true\n\
             max_attempts = 3\n",
        ));
        // The command wins over the variable, and a zero timeout is read as one second.
        assert_eq!(h.token, TokenSource::Command("echo s3cr3t".into()));
        assert_eq!(h.request_timeout, Duration::from_secs(1));
        assert_eq!(h.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(h.allow_insecure_http);
        assert_eq!(h.retry.max_attempts, 3);
        assert_eq!(h.retry.base, RetryPolicy::default().base);
        assert!(!format!("{h:?}").contains("s3cr3t"), "{h:?}");

        let h = HttpSettings::from_tenant_config(&tenant(
            "backend = \"ump\"\nbase_url = \"https://ump.example.net\"\ntoken_env = \"UMP_TOKEN\"\nrequest_timeout_s = 7\n",
        ));
        assert_eq!(h.token, TokenSource::Env("UMP_TOKEN".into()));
        assert_eq!(h.request_timeout, Duration::from_secs(7));
        assert_eq!(h.ca_file, None);
        assert!(!h.allow_insecure_http);
    }

    #[test]
    fn default_http_settings_have_no_token_and_refuse_plain_http() {
        let h = HttpSettings::default();
        assert_eq!(h.token, TokenSource::None);
        assert_eq!(h.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(!h.allow_insecure_http && h.ca_file.is_none());
        let e = Client::new(
            "http://api.example.net",
            &["api"],
            h.clone(),
            parse_error_body,
            Arc::new(Gate::unlimited()),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("plain http")),
            "{e}"
        );
        let c = Client::new(
            "http://127.0.0.1:9/prefix/?q=1#f",
            &["api", "v1"],
            h,
            parse_error_body,
            Arc::new(Gate::unlimited()),
        )
        .unwrap();
        assert!(
            format!("{c:?}").contains("\"http://127.0.0.1:9/prefix/api/v1\""),
            "{c:?}"
        );
    }

    #[test]
    fn retry_after_seconds_date_and_garbage() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&at).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-4"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn throttling_is_a_429_or_a_503_with_retry_after() {
        let mut h = HeaderMap::new();
        assert_eq!(
            answer_of(StatusCode::TOO_MANY_REQUESTS, &h),
            Answer::Throttled {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        assert_eq!(
            answer_of(StatusCode::SERVICE_UNAVAILABLE, &h),
            Answer::Served { limit_used: None },
            "a 503 without Retry-After is a fault, not throttling"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            answer_of(StatusCode::SERVICE_UNAVAILABLE, &h),
            Answer::Throttled {
                retry_after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            answer_of(StatusCode::TOO_MANY_REQUESTS, &h),
            Answer::Throttled {
                retry_after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            answer_of(StatusCode::OK, &h),
            Answer::Served { limit_used: None }
        );
    }

    #[test]
    fn limit_used_reads_graphs_fraction_and_a_percentage() {
        let mut h = HeaderMap::new();
        assert_eq!(limit_used(&h), None);
        for (v, want) in [
            ("0.8", Some(0.8)),
            ("1.8", Some(1.8)),
            ("85", Some(0.85)),
            (" 90 % ", Some(0.9)),
            ("lots", None),
            ("-1", None),
            ("NaN", None),
        ] {
            h.insert(LIMIT_USED_HEADER, HeaderValue::from_static(v));
            assert_eq!(limit_used(&h), want, "{v:?}");
        }
        h.insert(LIMIT_USED_HEADER, HeaderValue::from_static("0.93"));
        assert_eq!(
            answer_of(StatusCode::OK, &h),
            Answer::Served {
                limit_used: Some(0.93)
            }
        );
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            parse_error_body(
                br#"{"error":{"code":2095,"reason":"The template does not exist"}}"#,
                s
            ),
            (Some("2095".into()), "The template does not exist".into())
        );
        assert_eq!(
            parse_error_body(br#"{"error":{"code":"E7"}}"#, s),
            (Some("E7".into()), "{\"error\":{\"code\":\"E7\"}}".into())
        );
        assert_eq!(
            parse_error_body(br#"{"code":12,"message":"nope"}"#, s),
            (Some("12".into()), "nope".into())
        );
        assert_eq!(
            parse_error_body(br#"{"error":"flat"}"#, s),
            (None, "flat".into())
        );
        assert_eq!(parse_error_body(b"", s), (None, "Bad Request".into()));
        assert_eq!(
            parse_error_body(b"<html>\n<b>bad</b>\n</html>", s),
            (None, "<html> <b>bad</b> </html>".into())
        );
        let long = "é".repeat(1000);
        let (_, r) = parse_error_body(long.as_bytes(), s);
        assert_eq!(r.chars().count(), EXCERPT_CHARS + 1);
        let (_, r) = parse_error_body(&[0xff, 0xfe, 0x00], s);
        assert!(!r.is_empty());
        assert_eq!(parse_error_body(b"[1,2]", s).0, None);
        assert_eq!(parse_error_body(b"null", s).0, None);
    }
}
