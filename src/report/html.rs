//! The HTML job report: one self-contained file a partner can send to a customer.
//!
//! Everything is inline (CSS, a small vanilla script, an SVG chart) and the page loads
//! nothing from the network, so it opens the same offline, from a mail attachment or a
//! ticket. Every value that comes from a sheet or a tenant is untrusted: the template is
//! rendered with minijinja's HTML auto-escaping, and a Content-Security-Policy meta allows
//! only our own inline script and style by their SHA-256 hashes (computed here from the
//! exact text embedded), so even an escape we missed could not run injected script or
//! load anything.
//!
//! The page's template, stylesheet and script are in `src/report/assets/`, compiled in with
//! `include_str!` (not in `templates/`, which holds the users' sheet templates).
//!
//! The filter state lives in the URL fragment (`#status=error&q=acme`): a link can point
//! straight at the failures, and the script applies it on load.

use super::format::{changes_of, duration, human, human_time, machine_time};
use super::model::{ReportItem, ReportJob};
use super::ReportError;
use base64::Engine;
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

const TEMPLATE: &str = include_str!("assets/report.html.j2");
const CSS: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");

/// Item statuses in the order the filter shows them, with the words a customer reads. A
/// successful item's badge says what was done to it ([`ReportItem::outcome`]).
const ITEM_STATUSES: [(&str, &str); 5] = [
    ("error", "Failed"),
    ("success", "Changed"),
    ("unchanged", "Unchanged"),
    ("pending", "Pending"),
    ("running", "Running"),
];

/// `'sha256-…'` CSP source for an inline element whose text is exactly `text`.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The policy: nothing from anywhere (no fetch, image, font, frame, form target or base
/// URL), except our one inline script and one inline style, allowed by hash.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; base-uri 'none'; form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(CSS)
    )
}

#[derive(Serialize)]
struct Card {
    class: &'static str,
    label: String,
    value: String,
}

#[derive(Serialize)]
struct Segment {
    class: &'static str,
    label: &'static str,
    count: u64,
    pct: String,
    dash: String,
    offset: String,
}

#[derive(Serialize)]
struct Filter {
    status: String,
    label: String,
    count: usize,
}

#[derive(Serialize)]
struct ChangeView {
    field: String,
    old: String,
    new: String,
    old_none: bool,
    new_none: bool,
    added: Vec<String>,
    removed: Vec<String>,
}

#[derive(Serialize)]
struct ItemView {
    id: i64,
    upn: String,
    /// The UPN cut where a line may break: after `@`, before each `.`.
    upn_parts: Vec<String>,
    display_name: Option<String>,
    status: String,
    status_label: String,
    changes: Vec<ChangeView>,
    error_code: Option<String>,
    error_reason: Option<String>,
    attempts: u32,
    updated: String,
    updated_machine: Option<String>,
    search: String,
    requested: Vec<(String, String)>,
    note: Option<String>,
}

fn status_label(status: &str) -> String {
    ITEM_STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or_else(|| status.to_string(), |(_, l)| l.to_string())
}

/// The badge of one item: what was done to a user that succeeded (Created, Updated,
/// Disabled, Deleted), else its status's word.
fn item_label(item: &ReportItem) -> String {
    match item.status.as_str() {
        "success" => {
            let o = item.outcome();
            let mut c = o.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        s => status_label(s),
    }
}

/// Where a UPN may wrap: after the `@` and before each `.`, so `first.last@contoso.com`
/// breaks into `first` `.last@` `contoso` `.com` rather than in the middle of a word.
fn upn_parts(upn: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for ch in upn.chars() {
        if ch == '.' && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
        if ch == '@' {
            parts.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

fn is_none(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_array().is_some_and(std::vec::Vec::is_empty)
}

fn item_view(item: &ReportItem) -> ItemView {
    let changes: Vec<ChangeView> = changes_of(&item.changes, &item.before)
        .into_iter()
        .map(|c| ChangeView {
            old: human(&c.old),
            new: human(&c.new),
            old_none: is_none(&c.old),
            new_none: is_none(&c.new),
            field: c.field,
            added: c.added,
            removed: c.removed,
        })
        .collect();
    let requested = if item.status == "error" {
        // Desired-row keys in sheet order (the sheet's own columns, from the attribute
        // table), so a new column shows up here without a list to keep in step.
        super::export::data_columns()
            .filter_map(|f| {
                let v = item.data.get(f)?;
                let shown = if is_none(v) {
                    "(clear)".to_string()
                } else {
                    human(v)
                };
                Some((f.to_string(), shown))
            })
            .collect()
    } else {
        Vec::new()
    };
    let label = item_label(item);
    let mut search = vec![
        item.upn.clone(),
        item.status.clone(),
        label.clone(),
        item.error_code.clone().unwrap_or_default(),
        item.error_reason.clone().unwrap_or_default(),
    ];
    search.extend(item.display_name().map(str::to_string));
    for c in &changes {
        search.push(c.field.clone());
        search.push(c.new.clone());
        search.extend(c.added.iter().cloned());
        search.extend(c.removed.iter().cloned());
    }
    ItemView {
        id: item.id,
        upn: item.upn.clone(),
        upn_parts: upn_parts(&item.upn),
        display_name: item.display_name().map(str::to_string),
        status: item.status.clone(),
        status_label: label,
        changes,
        error_code: item.error_code.clone().filter(|s| !s.is_empty()),
        error_reason: item.error_reason.clone().filter(|s| !s.is_empty()),
        attempts: item.attempts,
        updated: human_time(&item.updated_on),
        updated_machine: machine_time(&item.updated_on),
        search: search
            .iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        requested,
        note: item.note.clone().filter(|s| !s.is_empty()),
    }
}

fn percent(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 * 100.0 / total as f64
    }
}

fn pct_text(count: u64, total: u64) -> String {
    let p = percent(count, total);
    if count > 0 && p < 1.0 {
        "<1%".to_string()
    } else {
        format!("{p:.0}%")
    }
}

/// Renders the job report. `items` may be a subset of the job (the page says so).
pub fn html_report(job: &ReportJob, items: &[ReportItem]) -> Result<String, ReportError> {
    let total = job.total_count;
    let outcomes = job.outcomes.rows().map(|(k, label, n)| match k {
        "pending" => ("open", label, n),
        k => (k, label, n),
    });
    // The ring's circumference is 100 (r = 100 / 2π), so dash lengths are percentages;
    // an offset of 25 starts the first segment at twelve o'clock.
    let mut drawn = 0.0;
    let mut segments = Vec::new();
    let mut legend = Vec::new();
    for (class, label, count) in outcomes {
        let pct = percent(count, total);
        let seg = Segment {
            class,
            label,
            count,
            pct: pct_text(count, total),
            dash: format!("{:.3} {:.3}", pct, 100.0 - pct),
            offset: format!("{:.3}", 25.0 - drawn),
        };
        drawn += pct;
        if count > 0 || class != "open" {
            legend.push(Segment {
                class,
                label,
                count,
                pct: seg.pct.clone(),
                dash: String::new(),
                offset: String::new(),
            });
        }
        if count > 0 {
            segments.push(seg);
        }
    }
    let chart_title = format!(
        "Outcomes: {}",
        legend
            .iter()
            .map(|s| format!("{} {}", s.count, s.label.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (kind_label, unit, section) = match job.kind.as_str() {
        "ms_users" => ("Teams users", "users", "Users"),
        "ms_resource_accounts" => ("Resource accounts", "accounts", "Resource accounts"),
        other => (other, "items", "Items"),
    };
    let mut cards = vec![Card {
        class: "total",
        label: format!("Total {unit}"),
        value: total.to_string(),
    }];
    for (class, label, count) in outcomes {
        if count > 0 || class != "open" {
            cards.push(Card {
                class,
                label: label.to_string(),
                value: count.to_string(),
            });
        }
    }
    cards.push(Card {
        class: "time",
        label: "Duration".into(),
        value: duration(&job.created_on, job.finished_on.as_deref())
            .unwrap_or_else(|| "—".to_string()),
    });

    let views: Vec<ItemView> = items.iter().map(item_view).collect();
    let mut filters: Vec<Filter> = Vec::new();
    for v in &views {
        match filters.iter_mut().find(|f| f.status == v.status) {
            Some(f) => f.count += 1,
            None => filters.push(Filter {
                status: v.status.clone(),
                label: status_label(&v.status),
                count: 1,
            }),
        }
    }
    let rank = |s: &str| {
        ITEM_STATUSES
            .iter()
            .position(|(k, _)| *k == s)
            .unwrap_or(ITEM_STATUSES.len())
    };
    filters.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then(a.status.cmp(&b.status))
    });

    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("report.html")
        .map_err(|e| ReportError::Template(e.to_string()))?;
    tmpl.render(context! {
        job => job,
        kind_label => kind_label,
        unit => unit,
        section => section,
        cards => cards,
        segments => segments,
        legend => legend,
        chart_title => chart_title,
        filters => filters,
        items => views,
        started => human_time(&job.created_on),
        started_machine => machine_time(&job.created_on),
        finished => job.finished_on.as_deref().map(human_time),
        finished_machine => job.finished_on.as_deref().and_then(machine_time),
        updated => human_time(&job.updated_on),
        csp => Value::from_safe_string(content_security_policy()),
        css => Value::from_safe_string(CSS.to_string()),
        script => Value::from_safe_string(SCRIPT.to_string()),
    })
    .map_err(|e| ReportError::Template(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{item, items, job, XSS_ATTR, XSS_NAME};
    use serde_json::json;

    fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
        let a = s.find(open).expect(open) + open.len();
        let b = a + s[a..].find(close).expect(close);
        &s[a..b]
    }

    fn hash_of(text: &str) -> String {
        csp_hash(text)
    }

    #[test]
    fn hostile_values_render_as_text() {
        let html = html_report(&job(), &items()).unwrap();
        assert!(!html.contains(XSS_NAME), "raw <script> payload leaked");
        assert!(
            !html.contains(XSS_ATTR),
            "raw attribute-breaking payload leaked"
        );
        assert!(!html.contains("<img"), "no element from data");
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only our own script tag"
        );
        assert!(html.contains("&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;&#x2f;script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror="));
        assert!(html.contains("<title>Nightly &lt;b&gt;sync&lt;&#x2f;b&gt; &amp; more"));
        // A hostile status or error code cannot break out of a class attribute either.
        let mut odd = item(9, "x@x.example", "\" onmouseover=\"alert(1)", json!({}));
        odd.error_code = Some("<b>".into());
        let html = html_report(&job(), &[odd]).unwrap();
        assert!(!html.contains("\" onmouseover"));
        assert!(html.contains("<code>&lt;b&gt;</code>"));
    }

    #[test]
    fn csp_allows_exactly_the_embedded_script_and_style_and_nothing_remote() {
        let html = html_report(&job(), &items()).unwrap();
        let csp = between(
            &html,
            "http-equiv=\"Content-Security-Policy\" content=\"",
            "\"",
        );
        let script = between(&html, "<script>", "</script>");
        let style = between(&html, "<style>", "</style>");
        assert_eq!(script, SCRIPT);
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(
            csp.contains(&format!("script-src {};", hash_of(script))),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src {};", hash_of(style))),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        // The policy comes before anything it governs.
        assert!(html.find("Content-Security-Policy").unwrap() < html.find("<style>").unwrap());
        // Nothing loads from elsewhere: no external references of any kind.
        for needle in [
            "http://", "https://", "src=\"", "href=\"", "url(", "@import",
        ] {
            assert!(!html.contains(needle), "found {needle}");
        }
        // A known vector: the SHA-256 of "" in CSP form, to pin the encoding.
        assert_eq!(
            hash_of(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn summary_has_counts_duration_and_chart() {
        let html = html_report(&job(), &items()).unwrap();
        let card = |class: &str| {
            let at = html.find(&format!("id=\"card-{class}\"")).expect(class);
            between(&html[at..], "<div class=\"value\">", "</div>").to_string()
        };
        assert_eq!(card("total"), "5");
        // Every outcome has its card, a create counted as created, not updated.
        assert_eq!(card("created"), "1");
        assert_eq!(card("updated"), "1");
        assert_eq!(card("disabled"), "0");
        assert_eq!(card("deleted"), "0");
        assert_eq!(card("unchanged"), "1");
        assert_eq!(card("failed"), "2");
        assert_eq!(card("time"), "3 min 07 s");
        assert!(
            !html.contains("id=\"card-open\""),
            "no 'not finished' card when all ended"
        );
        assert!(html.contains(
            "Outcomes: 1 created, 1 updated, 0 disabled, 0 deleted, 1 unchanged, 2 failed"
        ));
        assert!(html.contains(
            "class=\"seg created\" cx=\"21\" cy=\"21\" r=\"15.91549\" stroke-dasharray=\"20.000 80.000\" stroke-dashoffset=\"25.000\""
        ));
        assert!(html.contains("stroke-dasharray=\"40.000 60.000\" stroke-dashoffset=\"-35.000\""));
        assert!(html.contains("<span class=\"pct\">40%</span>"));
        assert!(
            html.contains("<time datetime=\"2026-11-23T06:03:07Z\">2026-11-23 06:03:07 UTC</time>")
        );
    }

    #[test]
    fn rows_carry_status_changes_errors_and_search_text() {
        let html = html_report(&job(), &items()).unwrap();
        for (id, st) in [
            (1, "success"),
            (2, "unchanged"),
            (3, "error"),
            (4, "error"),
            (5, "pending"),
        ] {
            assert!(
                html.contains(&format!("<tr class=\"{st}\" data-status=\"{st}\"")),
                "item {id}"
            );
            assert!(html.contains(&format!("id=\"item-{id}\"")));
        }
        let alice = between(&html, "id=\"item-1\">", "</tr>");
        assert!(alice.contains(
            "<span class=\"old\">+3225405100</span><span class=\"arrow\">→</span><span class=\"new\">+3225405200</span>"
        ));
        assert!(alice.contains("<span class=\"old none\">(none)</span>"));
        assert!(alice.contains("<span class=\"add\">+ BE Office</span>"));
        let mallory = between(&html, "id=\"item-3\">", "</tr>");
        assert!(mallory.contains("<code>number_linked</code>Number already linked"));
        assert!(mallory.contains("<dt>number</dt><dd>(clear)</dd>"));
        assert!(mallory.contains("<td class=\"num\">3</td>"));
        assert!(html.contains("data-search=\"eve@acme.example error failed 404 user not found"));
        assert!(
            html.contains("value=\"error\" checked> <span class=\"badge error\">Failed</span> 2")
        );
        assert!(html.contains("<span id=\"shown-count\">5</span> of 5 shown"));
        assert!(
            !html.contains("This report lists"),
            "all items listed: no subset note"
        );
    }

    #[test]
    fn a_failed_job_says_why_and_lists_what_was_found() {
        let mut j = job();
        j.status = "failed".into();
        j.total_count = 0;
        j.reason = Some(format!("1 plan error; nothing was sent {XSS_NAME}"));
        j.problems = vec![format!("users.csv:3 [number]: claimed twice {XSS_ATTR}")];
        let html = html_report(&j, &[]).unwrap();
        assert!(html.contains("<span class=\"badge failed\" id=\"job-status\">failed</span>"));
        assert!(html.contains("<p class=\"reason\">1 plan error; nothing was sent &lt;script&gt;"));
        assert!(html
            .contains("<li class=\"mono\">users.csv:3 [number]: claimed twice &quot;&gt;&lt;img"));
        assert!(!html.contains(XSS_NAME) && !html.contains(XSS_ATTR));
        let mut ok = item(1, "a@x.example", "success", serde_json::json!({}));
        ok.note = Some("applied before the interruption".into());
        let html = html_report(&job(), &[ok]).unwrap();
        assert!(html.contains("<div class=\"note\">applied before the interruption</div>"));
        assert!(
            !html.contains("id=\"why\""),
            "a job without a reason has no reason box"
        );
    }

    #[test]
    fn upns_wrap_after_the_at_and_before_each_dot() {
        assert_eq!(
            upn_parts("first.last@contoso.onmicrosoft.com"),
            ["first", ".last@", "contoso", ".onmicrosoft", ".com"]
        );
        assert_eq!(upn_parts("a@b"), ["a@", "b"]);
        let html = html_report(&job(), &items()).unwrap();
        assert!(html.contains("<div class=\"upn\">alice@<wbr>acme<wbr>.example</div>"));
        // The badge of a successful item says what was done to it.
        let mut created = item(8, "n@x.example", "success", json!({}));
        created.action = Some("create".into());
        let html = html_report(&job(), &[created]).unwrap();
        assert!(html.contains("<span class=\"badge success\">Created</span>"));
    }

    #[test]
    fn unfinished_job_and_subset_are_said_so() {
        let mut j = job();
        j.status = "running".into();
        j.finished_on = None;
        j.success_count = 1;
        j.unchanged_count = 0;
        j.error_count = 1;
        j.outcomes = crate::report::Outcomes {
            updated: 1,
            failed: 1,
            pending: 3,
            ..Default::default()
        };
        let list = items();
        let html = html_report(&j, &list[..2]).unwrap();
        assert!(html.contains("not finished (last update 2026-11-23 06:03:07 UTC)"));
        assert!(html.contains("id=\"card-open\""));
        let at = html.find("id=\"card-open\"").unwrap();
        assert_eq!(between(&html[at..], "<div class=\"value\">", "</div>"), "3");
        let at = html.find("id=\"card-time\"").unwrap();
        assert_eq!(between(&html[at..], "<div class=\"value\">", "</div>"), "—");
        assert!(html.contains("This report lists 2 of the job's 5 items."));
        let html = html_report(&j, &[]).unwrap();
        assert!(html.contains("<tr class=\"empty\" id=\"no-match\"><td"));
    }
}
