//! Graph's HTTP side: the client-credentials token, one request through the tenant's gate,
//! a JSON batch whose parts each pass the gate, and the polling of an asynchronous
//! operation.
//!
//! Why a client of its own rather than the shared [`crate::connector::http::Client`]: the
//! token comes from the identity platform (and is fetched again when it expires or on a
//! 401), a batch is one HTTP request that the tenant counts as one per part (each part
//! takes a permit of the gate and reports its own answer to it), and an operation is polled
//! at the absolute URL Graph's `Location` names.
//!
//! Neither the client secret nor a token appears in a log line, an error or `Debug`.

use crate::connector::gate::{Answer, Kind, Permit, Verdict};
use crate::connector::http::{
    excerpt, limit_used, retry_after, scrub, TokenSource, DEFAULT_RETRY_AFTER,
};
use crate::connector::retry::RetryPolicy;
use crate::connector::{ConnectorError, Gate};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Graph's cap on the parts of one `$batch`.
pub const BATCH_MAX: usize = 20;
/// A token is fetched again this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);
/// How long an asynchronous number operation may run before the item fails.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);
/// The first pause between two polls of an operation (doubled up to [`POLL_CAP`]).
const POLL_FIRST: Duration = Duration::from_millis(250);
const POLL_CAP: Duration = Duration::from_secs(5);
/// Graph's header naming the scope of a throttle.
pub const THROTTLE_SCOPE: &str = "x-ms-throttle-scope";
/// The scope of an app-only token for Graph.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

/// How the connector authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Client credentials: the secret (from an environment variable or a command) for a
    /// token from `token_url`.
    ClientSecret {
        token_url: String,
        client_id: String,
        secret: TokenSource,
    },
    /// A bearer token obtained elsewhere (`token_env`, `token_command`).
    Bearer(TokenSource),
}

fn cfg(m: impl Into<String>) -> ConnectorError {
    ConnectorError::Config(m.into())
}

/// One Graph answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

/// One part of a batch.
#[derive(Debug, Clone)]
pub struct Part {
    pub method: Method,
    /// Relative to `/v1.0`, e.g. `users/{id}/assignLicense`.
    pub url: String,
    pub body: Option<Value>,
    /// Index of an earlier part this one waits for.
    pub depends_on: Option<usize>,
}

impl Part {
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.url)
    }
}

struct Token {
    value: String,
    renew_at: Instant,
}

pub struct GraphClient {
    http: reqwest::Client,
    /// `base_url` + `/v1.0`.
    root: Url,
    auth: Auth,
    token: tokio::sync::Mutex<Option<Token>>,
    gate: Arc<Gate>,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.root.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    pub fn new(
        base_url: &str,
        auth: Auth,
        http: crate::connector::http::HttpSettings,
        gate: Arc<Gate>,
    ) -> Result<GraphClient, ConnectorError> {
        crate::config::check_url(base_url, http.allow_insecure_http).map_err(cfg)?;
        if let Auth::ClientSecret { token_url, .. } = &auth {
            crate::config::check_url(token_url, http.allow_insecure_http)
                .map_err(|e| cfg(format!("token_url: {e}")))?;
        }
        let mut root =
            Url::parse(base_url).map_err(|e| cfg(format!("base_url {base_url:?}: {e}")))?;
        root.set_query(None);
        root.set_fragment(None);
        root.path_segments_mut()
            .map_err(|()| cfg(format!("base_url {base_url:?} cannot carry a path")))?
            .pop_if_empty()
            .push("v1.0");
        let mut b = reqwest::Client::builder()
            .timeout(http.request_timeout)
            .connect_timeout(http.request_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
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
        let client = b.build().map_err(|e| cfg(format!("HTTP client: {e}")))?;
        Ok(GraphClient {
            http: client,
            root,
            auth,
            token: tokio::sync::Mutex::new(None),
            gate,
            retry: http.retry,
        })
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// `rel` (below `/v1.0`, with its query) as an absolute URL.
    pub fn url(&self, rel: &str) -> Result<Url, ConnectorError> {
        let base = format!("{}/", self.root.as_str().trim_end_matches('/'));
        Url::parse(&base)
            .and_then(|b| b.join(rel.trim_start_matches('/')))
            .map_err(|e| cfg(format!("URL {rel:?}: {e}")))
    }

    /// A URL the server handed us (`@odata.nextLink`, `Location`): only followed on the
    /// same scheme, host and port as `base_url`, so the token never goes elsewhere.
    pub fn follow(&self, link: &str) -> Result<Url, ConnectorError> {
        let u = Url::parse(link).map_err(|e| ConnectorError::Retryable {
            status: None,
            retry_after: None,
            message: format!("the server sent an unreadable link {}: {e}", excerpt(link)),
        })?;
        if u.origin() != self.root.origin() || !u.path().starts_with(self.root.path()) {
            return Err(ConnectorError::Rejected {
                status: 0,
                code: Some("foreign-link".into()),
                reason: format!(
                    "the server sent a link outside {} ({}); not followed",
                    self.root,
                    excerpt(link)
                ),
            });
        }
        Ok(u)
    }

    /// The client secret, from the same sources as every backend's bearer token.
    async fn secret(src: &TokenSource) -> Result<String, ConnectorError> {
        crate::connector::http::resolve(src)
            .await?
            .ok_or_else(|| cfg("no client secret configured"))
    }

    /// The bearer token: cached until shortly before it expires, or fetched anew (`fresh`,
    /// after a 401 with the token `failed`).
    async fn bearer(&self, failed: Option<&str>) -> Result<Option<String>, ConnectorError> {
        let mut t = self.token.lock().await;
        if let Some(tok) = t.as_ref() {
            let stale = failed == Some(tok.value.as_str());
            if !stale && Instant::now() < tok.renew_at {
                return Ok(Some(tok.value.clone()));
            }
        }
        let fetched = match &self.auth {
            Auth::Bearer(TokenSource::None) => return Ok(None),
            Auth::Bearer(src) => Token {
                value: GraphClient::secret(src).await?,
                renew_at: Instant::now() + Duration::from_secs(3000),
            },
            Auth::ClientSecret {
                token_url,
                client_id,
                secret,
            } => {
                let secret = GraphClient::secret(secret).await?;
                self.fetch_token(token_url, client_id, &secret).await?
            }
        };
        let value = fetched.value.clone();
        *t = Some(fetched);
        Ok(Some(value))
    }

    async fn fetch_token(
        &self,
        token_url: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<Token, ConnectorError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", SCOPE)
            .finish();
        let resp = self
            .http
            .post(token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| ConnectorError::Retryable {
                status: None,
                retry_after: None,
                message: format!("token request: {}", e.without_url()),
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let scrub = |s: &str| s.replace(secret, "<redacted>");
        if !status.is_success() {
            let why = body
                .get("error_description")
                .and_then(Value::as_str)
                .or_else(|| body.get("error").and_then(Value::as_str))
                .unwrap_or("no reason given");
            let message = format!("token request refused: {}", excerpt(&scrub(why)));
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    ConnectorError::Retryable {
                        status: Some(status.as_u16()),
                        retry_after: None,
                        message,
                    }
                } else {
                    ConnectorError::Auth {
                        status: status.as_u16(),
                        message,
                    }
                },
            );
        }
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::Auth {
                status: status.as_u16(),
                message: "token answer without access_token".into(),
            })?
            .to_string();
        let lifetime = body
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map_or(Duration::from_secs(3599), Duration::from_secs);
        Ok(Token {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }

    /// Sends one request through the gate (with one resend after a fresh token on a
    /// 401) and maps its answer: 2xx is a [`Reply`], anything else a [`ConnectorError`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        counter: &AtomicU64,
    ) -> Result<Reply, ConnectorError> {
        let what = format!("{method} {}", describe(&url, &self.root));
        let kind = if method == Method::GET {
            Kind::Read
        } else {
            Kind::Write
        };
        let mut token = self.bearer(None).await?;
        let mut refreshed = false;
        loop {
            let permit = self.gate.admit(kind).await;
            counter.fetch_add(1, Ordering::Relaxed);
            let mut rb = self.http.request(method.clone(), url.clone());
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.gate.answered(permit, Answer::Lost);
                    return Err(transport(&what, e));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            self.report(permit, status.as_u16(), &headers, &what)?;
            let bytes = resp.bytes().await.map_err(|e| transport(&what, e))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                token = self.bearer(token.as_deref()).await?;
                refreshed = true;
                continue;
            }
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            let reply = Reply {
                status: status.as_u16(),
                location: headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body,
            };
            return match status_error(&what, &reply, retry_after(&headers)) {
                None => Ok(reply),
                Some(e) => Err(scrub(e, token.as_deref())),
            };
        }
    }

    /// Tells the gate how a request (or a batch part) was answered; stops when the tenant
    /// has throttled for longer than allowed.
    fn report(
        &self,
        permit: Permit,
        status: u16,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<(), ConnectorError> {
        if status == 429 {
            // Graph names what it throttled on (`Application_Tenant/…`): for the log, the
            // gate treats every scope as the tenant's one budget.
            if let Some(scope) = headers.get(THROTTLE_SCOPE).and_then(|v| v.to_str().ok()) {
                tracing::debug!("{what}: throttled, scope {scope}");
            }
        }
        let answer = match (status, retry_after(headers)) {
            (429, ra) => Answer::Throttled {
                retry_after: ra.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            (503, Some(ra)) => Answer::Throttled { retry_after: ra },
            _ => Answer::Served {
                limit_used: limit_used(headers),
            },
        };
        if let Verdict::GiveUp {
            throttled_for,
            limit,
        } = self.gate.answered(permit, answer)
        {
            return Err(ConnectorError::Throttled {
                request: what.to_string(),
                throttled_for,
                limit,
            });
        }
        Ok(())
    }

    /// A read: JSON, retried (throttling without using an attempt, other temporary
    /// failures with backoff).
    pub async fn read(&self, url: Url, counter: &AtomicU64) -> Result<Value, ConnectorError> {
        let mut attempt = 1;
        loop {
            match self.send(Method::GET, url.clone(), None, counter).await {
                // Throttling uses no attempt: the gate waited; send again.
                Err(e) if e.is_throttle() => {}
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
                Err(e) => return Err(e),
                Ok(r) if r.body.is_object() => return Ok(r.body),
                Ok(_) => {
                    let e = ConnectorError::Retryable {
                        status: None,
                        retry_after: None,
                        message: format!(
                            "GET {}: the answer is not a JSON object",
                            describe(&url, &self.root)
                        ),
                    };
                    if attempt >= self.retry.max_attempts.max(1) {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Sends `parts` (at most [`BATCH_MAX`]) as one `$batch` and returns each part's
    /// answer, in order. Each part takes a permit of the gate (Graph counts them one by
    /// one) and the envelope one more; a part answered 429 is reported to the gate with
    /// its own Retry-After and sent again in the next batch once the pause has passed
    /// (with the parts that waited for it), and a part answered 5xx likewise, up to the
    /// policy's attempts: neither is the user's failure. Parts already answered are never
    /// sent again.
    pub async fn batch(
        &self,
        parts: &[Part],
        counter: &AtomicU64,
    ) -> Result<Vec<Result<Reply, ConnectorError>>, ConnectorError> {
        let mut done: Vec<Option<Result<Reply, ConnectorError>>> = vec![None; parts.len()];
        let mut faults = vec![0u32; parts.len()];
        let url = self.url("$batch")?;
        let mut token = self.bearer(None).await?;
        let mut refreshed = false;
        while done.iter().any(Option::is_none) {
            let pending: Vec<usize> = (0..parts.len()).filter(|i| done[*i].is_none()).collect();
            let mut requests = Vec::new();
            for &i in &pending {
                let p = &parts[i];
                let mut r = serde_json::json!({
                    "id": (i + 1).to_string(),
                    "method": p.method.as_str(),
                    "url": format!("/{}", p.url),
                });
                if let Some(b) = &p.body {
                    r["body"] = b.clone();
                    r["headers"] = serde_json::json!({"Content-Type": "application/json"});
                }
                if let Some(d) = p.depends_on.filter(|d| pending.contains(d)) {
                    r["dependsOn"] = serde_json::json!([(d + 1).to_string()]);
                }
                requests.push(r);
            }
            let envelope = serde_json::json!({ "requests": requests });
            let mut permits = Vec::with_capacity(pending.len() + 1);
            for _ in 0..=pending.len() {
                permits.push(self.gate.admit(Kind::Write).await);
            }
            counter.fetch_add(1, Ordering::Relaxed);
            let mut rb = self.http.post(url.clone()).json(&envelope);
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    for p in permits {
                        self.gate.answered(p, Answer::Lost);
                    }
                    return Err(transport("POST $batch", e));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| transport("POST $batch", e))?;
            if !status.is_success() {
                for p in permits {
                    self.report(p, status.as_u16(), &headers, "POST $batch")?;
                }
                if status == StatusCode::UNAUTHORIZED && !refreshed {
                    token = self.bearer(token.as_deref()).await?;
                    refreshed = true;
                    continue;
                }
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = Reply {
                    status: status.as_u16(),
                    location: None,
                    body,
                };
                let e = status_error("POST $batch", &reply, retry_after(&headers)).unwrap_or_else(
                    || ConnectorError::Retryable {
                        status: Some(status.as_u16()),
                        retry_after: None,
                        message: "POST $batch: unexpected answer".into(),
                    },
                );
                if e.is_throttle() {
                    continue;
                }
                return Err(scrub(e, token.as_deref()));
            }
            let mut permits = permits.into_iter();
            if let Some(p) = permits.next() {
                self.report(p, status.as_u16(), &headers, "POST $batch")?;
            }
            let answers: Vec<Value> = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("responses").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            let mut throttled: Vec<usize> = Vec::new();
            for (&i, permit) in pending.iter().zip(permits) {
                let id = (i + 1).to_string();
                let what = parts[i].describe();
                let Some(a) = answers
                    .iter()
                    .find(|a| a.get("id").and_then(Value::as_str) == Some(id.as_str()))
                else {
                    self.gate.answered(permit, Answer::Lost);
                    faults[i] += 1;
                    if faults[i] >= self.retry.max_attempts.max(1) {
                        done[i] = Some(Err(ConnectorError::Retryable {
                            status: None,
                            retry_after: None,
                            message: format!("{what}: the batch answer has no part {id}"),
                        }));
                    }
                    continue;
                };
                let status = a
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0);
                let part_headers = inner_headers(a.get("headers"));
                self.report(permit, status, &part_headers, &what)?;
                let reply = Reply {
                    status,
                    location: part_headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    body: a.get("body").cloned().unwrap_or(Value::Null),
                };
                let waited_on_throttle = status == 424
                    && parts[i]
                        .depends_on
                        .is_some_and(|d| throttled.contains(&d) || done[d].is_none());
                match status_error(&what, &reply, retry_after(&part_headers)) {
                    None => done[i] = Some(Ok(reply)),
                    Some(e) if e.is_throttle() => throttled.push(i),
                    Some(_) if waited_on_throttle => {}
                    Some(e @ ConnectorError::Retryable { .. }) => {
                        faults[i] += 1;
                        if faults[i] >= self.retry.max_attempts.max(1) {
                            done[i] = Some(Err(e));
                        } else {
                            tokio::time::sleep(self.retry.backoff(faults[i])).await;
                        }
                    }
                    Some(e) => done[i] = Some(Err(scrub(e, token.as_deref()))),
                }
            }
            if !throttled.is_empty() {
                tracing::debug!(
                    "$batch: {} of {} parts throttled; sending them again after the pause",
                    throttled.len(),
                    pending.len()
                );
            }
        }
        Ok(done
            .into_iter()
            .map(|d| d.unwrap_or_else(|| Err(cfg("unreachable"))))
            .collect())
    }

    /// Polls an asynchronous operation at `location` until it ends; `Ok` holds its id and
    /// final status (`succeeded`), `Err` the failure with Graph's `statusDetail`.
    pub async fn poll(
        &self,
        what: &str,
        location: &str,
        counter: &AtomicU64,
    ) -> Result<(String, String), ConnectorError> {
        let url = self.follow(location)?;
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            tokio::time::sleep(pause).await;
            let v = self.read(url.clone(), counter).await?;
            let op = v.get("value").filter(|x| x.is_object()).unwrap_or(&v);
            let id = op
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let status = op.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "succeeded" => return Ok((id, status.to_string())),
                "failed" | "skipped" => {
                    let detail = op
                        .get("numbers")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n.get("statusDetail").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let detail = if detail.is_empty() {
                        "no detail given".to_string()
                    } else {
                        excerpt(&detail)
                    };
                    return Err(ConnectorError::Rejected {
                        status: 202,
                        code: Some(format!("operation-{status}")),
                        reason: format!("{what}: operation {id} {status}: {detail}"),
                    });
                }
                "notStarted" | "running" | "" => {}
                other => {
                    tracing::debug!("{what}: operation {id} is {other:?}; polling on");
                }
            }
            if started.elapsed() >= OPERATION_TIMEOUT {
                return Err(ConnectorError::Rejected {
                    status: 202,
                    code: Some("operation-timeout".into()),
                    reason: format!(
                        "{what}: operation {id} still {status} after {}s; check numberAssignments before running again",
                        OPERATION_TIMEOUT.as_secs()
                    ),
                });
            }
            pause = (pause * 2).min(POLL_CAP);
        }
    }
}

/// The path below `/v1.0` of a URL, for messages (never its host).
fn describe(url: &Url, root: &Url) -> String {
    let p = url.path();
    p.strip_prefix(root.path())
        .unwrap_or(p)
        .trim_start_matches('/')
        .to_string()
}

fn inner_headers(v: Option<&Value>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            if let (Ok(name), Some(Ok(value))) = (
                reqwest::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                v.as_str().map(reqwest::header::HeaderValue::from_str),
            ) {
                h.insert(name, value);
            }
        }
    }
    h
}

/// `(code, message)` of Graph's `{"error": {"code", "message"}}`, else an excerpt.
pub fn error_of(body: &Value, status: u16) -> (Option<String>, String) {
    let e = body.get("error");
    let code = e
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .map(str::to_string);
    let message = e
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .map(excerpt);
    let message = message.unwrap_or_else(|| match body {
        Value::Null => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given")
            .to_string(),
        Value::String(s) => excerpt(s),
        other => excerpt(&other.to_string()),
    });
    (code, message)
}

/// The error an answer is, or `None` for a 2xx.
fn status_error(what: &str, r: &Reply, ra: Option<Duration>) -> Option<ConnectorError> {
    let (code, message) = error_of(&r.body, r.status);
    Some(match r.status {
        200..=299 => return None,
        401 | 403 => ConnectorError::Auth {
            status: r.status,
            message: format!("{what}: {message}"),
        },
        429 => {
            let wait = ra.unwrap_or(DEFAULT_RETRY_AFTER);
            ConnectorError::Retryable {
                status: Some(429),
                retry_after: Some(wait),
                message: format!("{what}: throttled, retry after {}s", wait.as_secs_f64()),
            }
        }
        0 | 500 | 502 | 503 | 504 => ConnectorError::Retryable {
            status: Some(r.status).filter(|s| *s != 0),
            retry_after: ra,
            message: format!("{what}: {message}"),
        },
        s => ConnectorError::Rejected {
            status: s,
            code,
            reason: format!("{what}: {message}"),
        },
    })
}

fn transport(what: &str, e: reqwest::Error) -> ConnectorError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("{what}: {kind} ({})", e.without_url()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_bodies() {
        let body: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/graph/docs_throttling_429_response_body.json"
        ))
        .unwrap();
        assert_eq!(
            error_of(&body, 429),
            (
                Some("TooManyRequests".into()),
                "Please retry again later.".into()
            )
        );
        assert_eq!(error_of(&Value::Null, 404).1, "Not Found");
        let r = Reply {
            status: 400,
            location: None,
            body: serde_json::json!({"error": {"code": "Request_BadRequest", "message": "nope"}}),
        };
        let e = status_error("POST users/x/assignLicense", &r, None).unwrap();
        assert_eq!(e.code(), "Request_BadRequest");
        assert!(e.to_string().contains("nope"), "{e}");
        let r = Reply { status: 429, ..r };
        assert!(status_error("x", &r, Some(Duration::from_millis(2128)))
            .unwrap()
            .is_throttle());
    }

    #[test]
    fn debug_hides_the_secret_and_links_stay_at_home() {
        let c = GraphClient::new(
            "http://127.0.0.1:9",
            Auth::ClientSecret {
                token_url: "http://127.0.0.1:9/t/oauth2/v2.0/token".into(),
                client_id: "app".into(),
                secret: TokenSource::Static("s3cr3t-value".into()),
            },
            crate::connector::http::HttpSettings::default(),
            Arc::new(Gate::unlimited()),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(c
            .follow("http://127.0.0.1:9/v1.0/users?$skiptoken=x")
            .is_ok());
        assert!(c.follow("http://evil.example:9/v1.0/users").is_err());
        assert!(c.follow("http://127.0.0.1:10/v1.0/users").is_err());
        assert_eq!(
            c.url("users?$top=5").unwrap().as_str(),
            "http://127.0.0.1:9/v1.0/users?$top=5"
        );
    }
}
