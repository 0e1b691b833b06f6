//! The CLI contract end to end: the real binary against the embedded simulated tenant.

use crate::support::{sample, Workspace};

#[test]
fn validate_samples_pass_and_json_shape() {
    let ws = Workspace::new();
    ws.run(&["validate", &sample("users.csv")]).code(0);
    ws.run(&["validate", &sample("users.xlsx")]).code(0);
    ws.run(&["validate", &sample("resource-accounts.csv")])
        .code(0);
    // The CSV and the XLSX hold the same users: together they are duplicates.
    let both = ws.run(&["validate", &sample("users.csv"), &sample("users.xlsx")]);
    both.code(2);
    assert!(both.stdout.contains("duplicate UPN"), "{}", both.stdout);
    let j = ws
        .run(&["--output", "json", "validate", &sample("users.csv")])
        .code(0)
        .json();
    assert!(j["rows"].as_u64().unwrap() > 0);
    assert_eq!(j["rows"], j["valid"]);
    assert_eq!(j["errors"].as_array().unwrap().len(), 0);
    assert_eq!(j["files"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_sheet_names_file_row_column_and_exits_2_without_touching_the_tenant() {
    let ws = Workspace::new();
    let bad = ws.write(
        "bad.csv",
        "upn,displayName,number,country\nok.user@contoso.onmicrosoft.com,Ok User,,BE\nbroken,Broken,3.2254052E+09,XX\n",
    );
    let r = ws.run(&["--output", "json", "validate", bad.to_str().unwrap()]);
    r.code(2);
    let j = r.json();
    let errors = j["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["row"] == 3 && e["column"].as_str().unwrap().contains("upn")),
        "{j}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["row"] == 3 && e["column"].as_str().unwrap().contains("number")),
        "{j}"
    );
    assert!(errors
        .iter()
        .all(|e| e["file"].as_str().unwrap().ends_with("bad.csv")));
    // sync of the same sheet: exit 2, no tenant state created at all, and the run is
    // in the history as a failed job with the sheet's errors.
    ws.run(&["sync", bad.to_str().unwrap()]).code(2);
    assert!(!ws.path("demo-tenant.db").exists());
    let (status, code, errors): (String, String, String) = ws
        .history()
        .query_row(
            "select status, reason_code, errors from bulk_jobs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), code.as_str()), ("failed", "sheet"));
    assert!(errors.contains("bad.csv"), "{errors}");
}

#[test]
fn sync_twice_changes_nothing_the_second_time() {
    let ws = Workspace::new();
    let first = ws.run(&["--output", "json", "sync", &sample("users.csv")]);
    first.code(0);
    let job = first.json();
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["status"], "success", "{job}");
    let total = job["total_count"].as_u64().unwrap();
    assert!(total > 0);

    // Plan again: zero operations, --detailed-exitcode says "no changes".
    let plan = ws
        .run(&[
            "--output",
            "json",
            "plan",
            &sample("users.csv"),
            "--detailed-exitcode",
        ])
        .code(0)
        .json();
    assert_eq!(plan["summary"]["operations"], 0, "{plan}");
    assert_eq!(plan["summary"]["unchanged"], plan["summary"]["users"]);

    let second = ws
        .run(&["--output", "json", "sync", &sample("users.csv")])
        .code(0)
        .json();
    assert_eq!(second["status"], "success");
    assert_eq!(
        second["requests"].as_u64().unwrap(),
        1,
        "only the status check: {second}"
    );
    assert_eq!(
        second["unchanged_count"].as_u64().unwrap(),
        total,
        "{second}"
    );
}

#[test]
fn plan_detailed_exitcode_reports_pending_changes() {
    let ws = Workspace::new();
    ws.run(&["plan", &sample("users.csv"), "--detailed-exitcode"])
        .code(4);
}

#[test]
fn apply_without_terminal_or_yes_refuses_and_points_to_sync() {
    let ws = Workspace::new();
    let r = ws.run(&["apply", &sample("users.csv")]);
    r.code(2);
    assert!(r.stderr.contains("sync"), "{}", r.stderr);
}

#[test]
fn stale_saved_plan_is_refused() {
    let ws = Workspace::new();
    let plan_path = ws.path("plan.json");
    ws.run(&[
        "plan",
        &sample("users.csv"),
        "--out",
        plan_path.to_str().unwrap(),
    ])
    .code(0);
    // The tenant changes under the plan: apply the sheet first.
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let r = ws.run(&["apply", "--yes", "--plan", plan_path.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("changed since"), "{}", r.stderr);
}

#[test]
fn saved_plan_applies_when_the_tenant_did_not_drift() {
    let ws = Workspace::new();
    let plan_path = ws.path("plan.json");
    ws.run(&[
        "plan",
        &sample("users.csv"),
        "--out",
        plan_path.to_str().unwrap(),
    ])
    .code(0);
    ws.run(&["apply", "--yes", "--plan", plan_path.to_str().unwrap()])
        .code(0);
    ws.run(&["plan", &sample("users.csv"), "--detailed-exitcode"])
        .code(0);
}

#[test]
fn jobs_list_and_show_print_fusion_shapes() {
    let ws = Workspace::new();
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let list = ws.run(&["--output", "json", "jobs", "list"]).code(0).json();
    for k in ["bulks", "page", "pages", "results"] {
        assert!(list.get(k).is_some(), "missing {k}: {list}");
    }
    let id = list["bulks"][0]["id"].as_i64().unwrap();
    let show = ws
        .run(&["--output", "json", "jobs", "show", &id.to_string()])
        .code(0)
        .json();
    for k in [
        "id",
        "job_id",
        "title",
        "kind",
        "status",
        "total_count",
        "success_count",
        "job_items",
        "created_on",
        "updated_on",
    ] {
        assert!(show.get(k).is_some(), "missing {k}: {show}");
    }
    let job_id = show["job_id"].as_str().unwrap().to_string();
    let by_job_id = ws
        .run(&["--output", "json", "jobs", "show", &job_id])
        .code(0)
        .json();
    assert_eq!(by_job_id["id"], show["id"]);
}

#[test]
fn tenant_export_plans_to_zero_changes() {
    let ws = Workspace::new();
    let out = ws.path("current.csv");
    ws.run(&[
        "tenant",
        "export",
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ])
    .code(0);
    let plan = ws
        .run(&["--output", "json", "plan", out.to_str().unwrap()])
        .code(0)
        .json();
    assert_eq!(plan["summary"]["operations"], 0, "{plan}");
}

#[test]
fn unknown_tenant_and_bad_config_exit_2() {
    let ws = Workspace::new();
    ws.run(&["plan", &sample("users.csv"), "--tenant", "nope"])
        .code(2);
    ws.write("config/teamsync.toml", "dbb = 1\n");
    let r = ws.run(&["templates", "list"]);
    r.code(2);
    assert!(r.stderr.contains("dbb"), "{}", r.stderr);
}
