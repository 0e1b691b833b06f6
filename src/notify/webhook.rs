//! Posts a run's summary to an incoming webhook: a documented JSON object, a Microsoft
//! Teams message card, or a Slack message.
//!
//! A notification must never cost the run: it is sent after the job is recorded, retried
//! with backoff on network errors, 429 and 5xx, and given up after a bound
//! (`timeout_s`, 15 s by default) with a warning. The URL carries the token that lets
//! anyone post to the channel, so it is a secret: it never appears in a log line or an
//! error (reqwest's errors are stripped of it).

use super::{NotifyConfig, NotifyFormat, RunSummary, FAILED_USERS_SHOWN};
use serde_json::{json, Value};
use std::time::Duration;

/// Why a notification was not delivered (its text never holds the URL).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Config(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the webhook answered {status} after {attempts} attempt(s)")]
    Status { status: u16, attempts: u32 },
    #[error("the webhook could not be reached after {attempts} attempt(s)")]
    Unreachable {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("no answer from the webhook within {0:?}")]
    TimedOut(Duration),
}

/// The payload for `format`.
pub fn payload(format: NotifyFormat, s: &RunSummary) -> Value {
    match format {
        NotifyFormat::Json => json_payload(s),
        NotifyFormat::Teams => teams_card(s),
        NotifyFormat::Slack => slack_message(s),
    }
}

/// The documented object: [`RunSummary`] with its `schema`.
pub fn json_payload(s: &RunSummary) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("schema".into(), json!("teamsync.notification/v1"));
    }
    v
}

fn headline(s: &RunSummary) -> String {
    format!("teamsync: {} on {} — {}", s.title, s.tenant, s.status)
}

/// (name, value) facts every chat format shows.
fn facts(s: &RunSummary) -> Vec<(String, String)> {
    let mut f = vec![
        ("Tenant".to_string(), s.tenant.clone()),
        (
            "Job".to_string(),
            match (&s.id, &s.job_id) {
                (Some(id), Some(j)) => format!("{id} ({j})"),
                _ => "not recorded".into(),
            },
        ),
        ("Status".to_string(), s.status.clone()),
        (
            "Exit code".to_string(),
            format!("{} ({})", s.exit_code, s.exit_meaning),
        ),
    ];
    for (_, label, n) in s.counts.rows() {
        if label != "Not finished" || n > 0 {
            f.push((label.to_string(), n.to_string()));
        }
    }
    f.push((
        "Duration".to_string(),
        crate::human::duration(Duration::from_secs_f64(s.duration_s)),
    ));
    if let Some(r) = &s.reason {
        f.push((
            "Reason".to_string(),
            r.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Some(r) = &s.report {
        f.push(("Report".to_string(), r.clone()));
    }
    f.push(("Host".to_string(), s.host.clone()));
    f
}

fn failed_lines(s: &RunSummary) -> Option<(String, Vec<String>)> {
    if s.failed_users.is_empty() {
        return None;
    }
    let title = if s.failed_users_total as usize > s.failed_users.len() {
        format!(
            "Failed users (first {} of {})",
            FAILED_USERS_SHOWN, s.failed_users_total
        )
    } else {
        "Failed users".to_string()
    };
    let lines = s
        .failed_users
        .iter()
        .map(|u| {
            let code = u.error_code.as_deref().unwrap_or("error");
            let reason = u.error_reason.as_deref().unwrap_or("");
            format!("{}: {code} {reason}", u.upn).trim_end().to_string()
        })
        .collect();
    Some((title, lines))
}

/// A Microsoft Teams incoming-webhook message card (`@type: MessageCard`): the counts as
/// facts, the failed users (first 10) as a second section, red unless the run was done.
pub fn teams_card(s: &RunSummary) -> Value {
    let color = match (s.succeeded(), s.status.as_str()) {
        (true, _) => "1F8A4C",
        (false, "partial") => "B7791F",
        _ => "C0362C",
    };
    let mut sections = vec![json!({
        "activityTitle": headline(s),
        "activitySubtitle": format!("finished {}", s.finished_on),
        "facts": facts(s).into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "markdown": false,
    })];
    if let Some((title, lines)) = failed_lines(s) {
        sections.push(json!({
            "title": title,
            "text": lines.join("\n\n"),
            "markdown": false,
        }));
    }
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": color,
        "summary": headline(s),
        "title": headline(s),
        "sections": sections,
    })
}

/// A Slack incoming-webhook message: `text` (the notification's fallback) and blocks
/// with the same facts and failed users.
pub fn slack_message(s: &RunSummary) -> Value {
    let fields: Vec<Value> = facts(s)
        .into_iter()
        .take(10) // Slack takes at most 10 fields per section.
        .map(|(n, v)| json!({"type": "mrkdwn", "text": format!("*{n}*\n{v}")}))
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": headline(s)}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some((title, lines)) = failed_lines(s) {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*{title}*\n• {}", lines.join("\n• "))},
        }));
    }
    json!({ "text": headline(s), "blocks": blocks })
}

/// Posts the summary, retrying with backoff within the configured bound.
pub async fn send(cfg: &NotifyConfig, s: &RunSummary) -> Result<(), WebhookError> {
    let url = cfg.url().map_err(WebhookError::Config)?;
    let bound = Duration::from_secs(cfg.timeout_s.max(1));
    let body = payload(cfg.format, s);
    let client = reqwest::Client::builder()
        .timeout(bound.min(Duration::from_secs(10)))
        .user_agent(concat!("teamsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WebhookError::Client(e.without_url()))?;
    match tokio::time::timeout(bound, post_with_retries(&client, &url, &body)).await {
        Ok(r) => r,
        Err(_) => Err(WebhookError::TimedOut(bound)),
    }
}

/// Attempts the webhook gets; waits of 0.5 s, 1 s, 2 s between them.
const ATTEMPTS: u32 = 4;

async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(), WebhookError> {
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= ATTEMPTS;
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status().as_u16();
                let retryable = status == 429 || status >= 500;
                if !retryable || last {
                    return Err(WebhookError::Status {
                        status,
                        attempts: attempt,
                    });
                }
            }
            Err(e) if last => {
                return Err(WebhookError::Unreachable {
                    attempts: attempt,
                    source: e.without_url(),
                })
            }
            Err(_) => {}
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::summary;
    use crate::notify::{FailedUser, NotifyOn};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn cfg(url: String) -> NotifyConfig {
        NotifyConfig {
            webhook_url: Some(url),
            webhook_url_env: None,
            format: NotifyFormat::Teams,
            on: NotifyOn::Always,
            timeout_s: 5,
        }
    }

    #[test]
    fn the_teams_card_has_the_counts_and_the_first_ten_failed_users() {
        let mut s = summary();
        s.failed_users = (0..FAILED_USERS_SHOWN)
            .map(|i| FailedUser {
                upn: format!("u{i}@acme.example"),
                error_code: Some("404".into()),
                error_reason: Some("User not found".into()),
            })
            .collect();
        s.failed_users_total = 14;
        let c = teams_card(&s);
        assert_eq!(c["@type"], "MessageCard");
        assert_eq!(c["themeColor"], "B7791F");
        let facts = c["sections"][0]["facts"].as_array().unwrap();
        let fact = |n: &str| {
            facts
                .iter()
                .find(|f| f["name"] == n)
                .map(|f| f["value"].as_str().unwrap().to_string())
        };
        assert_eq!(fact("Tenant").as_deref(), Some("acme"));
        assert_eq!(fact("Created").as_deref(), Some("2"));
        assert_eq!(fact("Failed").as_deref(), Some("1"));
        assert_eq!(fact("Exit code").as_deref(), Some("1 (items failed)"));
        assert_eq!(c["sections"][1]["title"], "Failed users (first 10 of 14)");
        assert_eq!(
            c["sections"][1]["text"]
                .as_str()
                .unwrap()
                .matches("@acme.example")
                .count(),
            10
        );
        let slack = slack_message(&s);
        assert!(slack["text"].as_str().unwrap().contains("acme"));
        assert!(slack["blocks"][1]["fields"].as_array().unwrap().len() <= 10);
    }

    #[tokio::test]
    async fn a_failing_webhook_is_retried_then_given_up_without_naming_the_url() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook/secret-token"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/hook/secret-token"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let c = cfg(format!("{}/hook/secret-token", server.uri()));
        send(&c, &summary()).await.unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 3);

        // A 4xx is not retried; the error does not carry the URL.
        let gone = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&gone)
            .await;
        let e = send(
            &cfg(format!("{}/hook/secret-token", gone.uri())),
            &summary(),
        )
        .await
        .unwrap_err();
        assert_eq!(gone.received_requests().await.unwrap().len(), 1);
        assert!(!format!("{e:?}").contains("secret-token"), "{e:?}");

        // Nobody listening: given up within the bound, the URL nowhere in the error chain.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let mut c = cfg(format!("http://{addr}/hook/secret-token"));
        c.timeout_s = 2;
        let t0 = std::time::Instant::now();
        let e = send(&c, &summary()).await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        let mut chain = format!("{e}");
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(c) = cur {
            chain.push_str(&format!(": {c} {c:?}"));
            cur = c.source();
        }
        assert!(!chain.contains("secret-token"), "{chain}");
    }
}
