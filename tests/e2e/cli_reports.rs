//! Reviewing jobs through the CLI: revert puts the tenant back, a retry sheet of the
//! failures reads back unchanged (formula-looking values included), reports export.

use crate::support::{sample, Workspace};

#[test]
fn a_job_applied_then_reverted_leaves_the_tenant_as_it_was() {
    let ws = Workspace::new();
    let before = ws.path("before.csv");
    ws.run(&["tenant", "export", "--out", before.to_str().unwrap()])
        .code(0);
    let job = ws
        .run(&["--output", "json", "sync", &sample("users.csv")])
        .code(0)
        .json();
    let id = job["id"].as_i64().unwrap().to_string();
    // The sync changed something the before-export no longer matches.
    ws.run(&["plan", before.to_str().unwrap(), "--detailed-exitcode"])
        .code(4);

    let undo = ws.path("undo.json");
    let revert = ws.run(&["jobs", "revert", &id, "--out", undo.to_str().unwrap()]);
    revert.code(0);
    // theo.fontaine had no usage location; the job set FR, which the API cannot remove.
    assert!(
        revert
            .stderr
            .contains("theo.fontaine@contoso.onmicrosoft.com: the job set a usage location"),
        "{}",
        revert.stderr
    );
    ws.run(&["apply", "--yes", "--plan", undo.to_str().unwrap()])
        .code(0);

    // Every field of every user is as before, and the user the job created is gone.
    let r = ws.run(&[
        "--output",
        "json",
        "plan",
        before.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    r.code(0);
    let users = ws
        .run(&["--output", "json", "tenant", "users"])
        .code(0)
        .json()["users"]
        .clone();
    let upns: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["upn"].as_str().unwrap())
        .collect();
    assert!(
        !upns.contains(&"sophie.desmet@contoso.onmicrosoft.com"),
        "{upns:?}"
    );
    let after = ws.path("after.csv");
    ws.run(&["tenant", "export", "--out", after.to_str().unwrap()])
        .code(0);
    let lines = |p: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let theo_before = "theo.fontaine@contoso.onmicrosoft.com,Theo Fontaine,-,,-,All Company,-,";
    let expected: Vec<String> = lines(&before)
        .into_iter()
        .map(|l| {
            if l == theo_before {
                l.replace(",-,,-,", ",-,FR,-,")
            } else {
                l
            }
        })
        .collect();
    assert!(
        lines(&before).iter().any(|l| l == theo_before),
        "sample tenant changed?"
    );
    assert_eq!(expected, lines(&after));
}

#[test]
fn failures_export_as_a_retry_sheet_that_reads_back_unchanged() {
    let ws = Workspace::new();
    // +3225409999 is a valid Belgian number outside the subscription's inventory: the
    // tenant refuses it at apply time, so those two items fail.
    let sheet = ws.write(
        "people.csv",
        "upn,displayName,country,number,licenses\n\
         ok.person@contoso.onmicrosoft.com,Ok Person,BE,,\n\
         formula.person@contoso.onmicrosoft.com,=HYPERLINK(\"http://x\"),BE,+3225409999,MCOEV\n\
         minus.person@contoso.onmicrosoft.com,-1+2 Person,BE,+3225409998,MCOEV\n",
    );
    // Per user: the create lands and the number is refused (a bulk item is all or nothing).
    let job = ws.run(&[
        "--output",
        "json",
        "sync",
        "--bulk-size",
        "0",
        sheet.to_str().unwrap(),
    ]);
    job.code(1);
    let job = job.json();
    assert_eq!(job["status"], "partial", "{job}");
    let id = job["id"].as_i64().unwrap().to_string();

    let retry = ws.path("retry.csv");
    ws.run(&[
        "jobs",
        "export",
        &id,
        "--format",
        "csv",
        "--failed-only",
        "--out",
        retry.to_str().unwrap(),
    ])
    .code(0);
    let text = std::fs::read_to_string(&retry).unwrap();
    assert!(
        text.contains("'=HYPERLINK"),
        "formula not neutralised:\n{text}"
    );
    assert!(!text.contains("ok.person"), "{text}");
    assert!(
        text.contains("+3225409999"),
        "a valid number is not neutralised:\n{text}"
    );

    // The retry sheet validates, and plans exactly the failed users with their values.
    ws.run(&["validate", retry.to_str().unwrap()]).code(0);
    let plan = ws
        .run(&["--output", "json", "plan", retry.to_str().unwrap()])
        .code(0)
        .json();
    let users = plan["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{plan}");
    // The display name read back from the retry sheet equals the tenant's exactly: no
    // displayName change is planned (the create had succeeded; the number failed).
    let f = users
        .iter()
        .find(|u| u["upn"] == "formula.person@contoso.onmicrosoft.com")
        .unwrap();
    let fields: Vec<&str> = f["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["licenses", "number"], "{f}");
    let m = users
        .iter()
        .find(|u| u["upn"] == "minus.person@contoso.onmicrosoft.com")
        .unwrap();
    assert!(!m.to_string().contains("displayName"), "{m}");

    let html = ws.path("job.html");
    ws.run(&[
        "jobs",
        "export",
        &id,
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ])
    .code(0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("formula.person@contoso.onmicrosoft.com"));
    assert!(!page.contains("<script>alert"), "");
    let xlsx = ws.path("job.xlsx");
    ws.run(&[
        "jobs",
        "export",
        &id,
        "--format",
        "xlsx",
        "--out",
        xlsx.to_str().unwrap(),
    ])
    .code(0);
    let show = ws
        .run(&["--output", "json", "jobs", "show", &id, "--status", "error"])
        .code(0)
        .json();
    let items = show["job_items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i["error_reason"].as_str().is_some_and(|r| !r.is_empty())),
        "{show}"
    );
}
