//! The HTML job report in a real browser (Debian's headless chromium): it renders, an
//! injected script in the data never runs, and the status filter read from the URL
//! fragment hides the other rows. Skipped with a notice when chromium is not installed
//! (CI installs it); with chromium present, every assertion must hold.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use teamsync::report::{html_report, ReportItem, ReportJob};

/// Payloads that would change the page if they ran: they set the title, add an element
/// or an attribute. None of those markers may show up in the live DOM.
const SCRIPT_NAME: &str = "<script>document.title='PWNED';\
document.documentElement.setAttribute('data-pwned','script')</script>";
const ATTR_NAME: &str = "\"><img src=x onerror=\"document.title='PWNED';\
document.body.insertAdjacentHTML('beforeend','<p id=pwned-img>x</p>')\">";
const SVG_REASON: &str = "<svg onload=\"document.title='PWNED'\"></svg> number in use";
const TITLE: &str =
    "Nightly </title><script>document.documentElement.setAttribute('data-pwned','title')</script>";

/// The browser to use: `TS_CHROMIUM`, else Debian's `/usr/bin/chromium`;
/// `Err(path)` when it is not there.
fn chromium() -> Result<PathBuf, PathBuf> {
    let p = std::env::var_os("TS_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if p.exists() {
        Ok(p)
    } else {
        Err(p)
    }
}

/// A UPN as the report breaks it: a line may wrap after `@` and before each `.`.
fn wrapped(upn: &str) -> String {
    upn.replace('@', "@<wbr>").replace('.', "<wbr>.")
}

fn item(id: i64, upn: &str, status: &str, display: &str) -> ReportItem {
    ReportItem {
        id,
        upn: upn.into(),
        status: status.into(),
        data: json!({"upn": upn, "displayName": display, "action": "upsert"}),
        changes: json!([]),
        before: json!({}),
        error_code: None,
        error_reason: None,
        attempts: 1,
        created_on: "2026-11-23T06:00:01Z".into(),
        updated_on: "2026-11-23T06:00:02Z".into(),
        note: None,
        action: Some(
            if status == "unchanged" {
                "unchanged"
            } else {
                "update"
            }
            .into(),
        ),
    }
}

fn sample() -> (ReportJob, Vec<ReportItem>) {
    let mut job = ReportJob {
        id: 12,
        job_id: "01JDQ7ZK5W8M3X".into(),
        title: TITLE.into(),
        kind: "ms_users".into(),
        tenant: "acme".into(),
        source: "users.csv".into(),
        status: "partial".into(),
        total_count: 5,
        success_count: 3,
        error_count: 2,
        unchanged_count: 1,
        created_on: "2026-11-23T06:00:00Z".into(),
        updated_on: "2026-11-23T06:01:30Z".into(),
        finished_on: Some("2026-11-23T06:01:30Z".into()),
        host: "runner-1".into(),
        os_user: "svc".into(),
        teamsync_version: "0.1.0".into(),
        reason: None,
        problems: vec![],
        outcomes: Default::default(),
        backend_bulks: vec![],
    };
    let mut alice = item(1, "alice@acme.example", "success", "Alice Martin");
    alice.changes = json!([{"field": "number", "old": null, "new": "+3225405200"}]);
    let mut alex = item(2, "alex@acme.example", "success", "Alex Durand");
    alex.changes = json!([{"field": "vrp", "old": "A", "new": "B"}]);
    let bob = item(3, "bob@acme.example", "unchanged", "Bob");
    let mut mallory = item(4, "mallory@acme.example", "error", SCRIPT_NAME);
    mallory.error_code = Some("number_linked".into());
    mallory.error_reason = Some(SVG_REASON.into());
    let mut eve = item(5, "eve@acme.example", "error", ATTR_NAME);
    eve.error_code = Some("404".into());
    eve.error_reason = Some("User not found".into());
    let items = vec![alice, alex, bob, mallory, eve];
    job.outcomes = teamsync::report::Outcomes::of_items(&items);
    (job, items)
}

/// Loads `url` in headless chromium and returns the DOM after the page's scripts ran.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("temp profile dir");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s for {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({}) for {url}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The opening tags `<tr ...>` of the item rows, read with quoted attribute values
/// skipped so a `>` inside a value cannot end a tag early.
fn item_rows(dom: &str) -> Vec<String> {
    let mut rows = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("<tr ") {
        let tag_start = &rest[at..];
        let mut quote: Option<char> = None;
        let mut end = tag_start.len();
        for (i, ch) in tag_start.char_indices() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(ch),
                (None, '>') => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        let tag = &tag_start[..end];
        if tag.contains("data-status=") {
            rows.push(tag.to_string());
        }
        rest = &tag_start[end..];
    }
    rows
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// (status, hidden) of every item row.
fn visibility(dom: &str) -> Vec<(String, bool)> {
    item_rows(dom)
        .iter()
        .map(|t| {
            let hidden = t.contains(" hidden=") || t.ends_with(" hidden>");
            (
                attr(t, "data-status").unwrap_or_default().to_string(),
                hidden,
            )
        })
        .collect()
}

fn title_of(dom: &str) -> &str {
    let a = dom.find("<title>").expect("a <title>") + "<title>".len();
    &dom[a..a + dom[a..].find("</title>").expect("</title>")]
}

fn shown_count(dom: &str) -> &str {
    let key = "<span id=\"shown-count\">";
    let a = dom.find(key).expect("shown count") + key.len();
    &dom[a..a + dom[a..].find('<').unwrap()]
}

#[test]
fn report_renders_in_chromium_blocks_injection_and_filters_by_fragment() {
    let chromium = match chromium() {
        Ok(p) => p,
        Err(p) => {
            eprintln!(
                "SKIP report_html: no chromium at {} (CI installs it; TS_CHROMIUM overrides)",
                p.display()
            );
            return;
        }
    };
    let (job, items) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, html_report(&job, &items).unwrap()).unwrap();
    let url = format!("file://{}", path.display());

    // Plain load: the page renders and our own script (allowed by its CSP hash) ran.
    let dom = dump_dom(&chromium, &url);
    assert!(
        dom.contains("data-js=\"ready\""),
        "our inline script must run under the CSP (hash mismatch?)"
    );
    assert!(dom.contains("id=\"summary\""), "summary section");
    assert!(
        dom.contains("<div class=\"value\">1 min 30 s</div>"),
        "duration card"
    );
    assert!(
        dom.contains(
            "Outcomes: 0 created, 2 updated, 0 disabled, 0 deleted, 1 unchanged, 2 failed"
        ),
        "chart title"
    );
    for upn in [
        "alice@acme.example",
        "alex@acme.example",
        "bob@acme.example",
        "mallory@acme.example",
        "eve@acme.example",
    ] {
        assert!(
            dom.contains(&format!("<div class=\"upn\">{}</div>", wrapped(upn))),
            "{upn} row"
        );
    }
    let vis = visibility(&dom);
    assert_eq!(vis.len(), 5, "five item rows: {vis:?}");
    assert!(
        vis.iter().all(|(_, hidden)| !hidden),
        "nothing hidden without a filter"
    );
    assert_eq!(shown_count(&dom), "5");

    // No injected script ran: title untouched, no injected element or attribute.
    let title = title_of(&dom);
    assert!(
        !title.contains("PWNED"),
        "title was changed by injected script: {title}"
    );
    assert!(
        title.starts_with("Nightly &lt;/title&gt;&lt;script&gt;"),
        "title is text: {title}"
    );
    assert!(!dom.contains("data-pwned="), "injected setAttribute ran");
    assert!(
        !dom.contains("id=\"pwned-img\"") && !dom.contains("<p id=pwned"),
        "injected element"
    );
    assert!(!dom.contains("<img"), "no <img> element from data");
    assert!(!dom.contains("<svg onload"), "no <svg> element from data");
    assert!(
        dom.contains("&lt;script&gt;document.title='PWNED'"),
        "payload shown as text"
    );
    assert!(dom.contains("&lt;svg onload=\"document.title='PWNED'\"&gt;&lt;/svg&gt; number in use"));

    // The fragment filter: only failed rows stay visible.
    let dom = dump_dom(&chromium, &format!("{url}#status=error"));
    let vis = visibility(&dom);
    assert_eq!(vis.len(), 5);
    for (status, hidden) in &vis {
        assert_eq!(*hidden, status != "error", "row {status} hidden={hidden}");
    }
    assert_eq!(shown_count(&dom), "2");
    assert!(
        dom.contains("data-filter=\"error\""),
        "the script read the fragment"
    );
    assert!(!dom.contains("data-pwned="));

    // Status list plus text filter: "al" matches alice and alex, but unchanged is off.
    let dom = dump_dom(&chromium, &format!("{url}#status=success,unchanged&q=ALEX"));
    let visible: Vec<String> = item_rows(&dom)
        .iter()
        .filter(|t| !(t.contains(" hidden=") || t.ends_with(" hidden>")))
        .map(|t| attr(t, "id").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        visible,
        vec!["item-2"],
        "only alex matches success + 'alex'"
    );
    assert_eq!(shown_count(&dom), "1");
    assert!(
        dom.contains("id=\"no-match\" hidden"),
        "the no-match row stays hidden"
    );

    // A filter nothing matches shows the no-match row.
    let dom = dump_dom(&chromium, &format!("{url}#q=nobody-at-all"));
    assert_eq!(shown_count(&dom), "0");
    assert!(
        !dom.contains("id=\"no-match\" hidden"),
        "the no-match row is shown"
    );
}
