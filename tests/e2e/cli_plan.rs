//! Planning against the simulated tenant over HTTP, through the real binary: the errors a
//! plan must catch before anything is sent, and the moves it must order safely.

use crate::support::Workspace;

const D: &str = "@contoso.onmicrosoft.com";

fn sheet(ws: &Workspace, name: &str, rows: &[&str]) -> String {
    let mut s = String::from("upn,displayName,country,number,licenses,groups,vrp,action\n");
    for r in rows {
        s.push_str(&r.replace("@D", D));
        s.push('\n');
    }
    ws.write(name, &s).display().to_string()
}

/// Items, across all jobs, that succeeded with at least one change.
fn writes_in(ws: &Workspace) -> i64 {
    ws.history()
        .query_row(
            "select count(*) from job_items where status = 'success' and changes != '[]'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn unknown_license_and_ambiguous_group_are_plan_errors_naming_row_and_candidates() {
    let ws = Workspace::new();
    let s = sheet(
        &ws,
        "bad.csv",
        &[
            "alice.martin@D,,,,NOPE_LICENSE,,,",
            "bob.peeters@D,,,,,Project X,,",
        ],
    );
    let r = ws.run(&["plan", &s]);
    r.code(2);
    assert!(r.stderr.contains("bad.csv:2"), "{}", r.stderr);
    assert!(r.stderr.contains("NOPE_LICENSE"), "{}", r.stderr);
    assert!(r.stderr.contains("bad.csv:3"), "{}", r.stderr);
    // Both "Project X" groups are named by id so the user can pick one.
    let ids = r.stderr.matches("Project X").count();
    assert!(ids >= 2, "candidates not listed: {}", r.stderr);
    // Nothing was sent: no job at all.
    assert!(!ws.path("history.db").exists());
}

#[test]
fn numbers_held_by_someone_else_or_claimed_twice_are_refused_before_sending() {
    let ws = Workspace::new();
    // +3225405201 belongs to alice, who is not in this sheet.
    let s = sheet(&ws, "steal.csv", &["bob.peeters@D,,,+3225405201,,,,"]);
    let r = ws.run(&["plan", &s]);
    r.code(2);
    assert!(r.stderr.contains("alice.martin"), "{}", r.stderr);
    // The same number on two rows (after normalisation): a sheet error.
    let s = sheet(
        &ws,
        "twice.csv",
        &[
            "hanne.claes@D,,,+32 2 540 52 30,MCOEV;STANDARDPACK,,,",
            "ines.goossens@D,,,tel:+3225405230,MCOEV;STANDARDPACK,,,",
        ],
    );
    let r = ws.run(&["sync", &s]);
    r.code(2);
    assert!(
        r.stdout.contains("twice.csv:3") || r.stderr.contains("twice.csv:3"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn a_swap_of_two_numbers_lands_and_no_number_is_ever_on_two_users() {
    let ws = Workspace::new();
    let s = sheet(
        &ws,
        "swap.csv",
        &[
            "alice.martin@D,,,+3225405202,,,,",
            "bob.peeters@D,,,+3225405201,,,,",
        ],
    );
    let plan = ws.run(&["--output", "json", "plan", &s]).code(0).json();
    assert_eq!(
        plan["summary"]["set_number"], 3,
        "one side is cleared first: {plan}"
    );
    ws.run(&["sync", &s]).code(0);
    let users = ws
        .run(&["--output", "json", "tenant", "users"])
        .code(0)
        .json()["users"]
        .clone();
    let num = |upn: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["upn"] == format!("{upn}{D}"))
            .map(|u| u["number"].clone())
            .unwrap()
    };
    assert_eq!(num("alice.martin"), "+3225405202");
    assert_eq!(num("bob.peeters"), "+3225405201");
    let mut numbers: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["number"].as_str().map(str::to_string))
        .collect();
    let n = numbers.len();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), n, "a number is on two users");
    ws.run(&["plan", &s, "--detailed-exitcode"]).code(0);
}

#[test]
fn delete_and_disable_rows() {
    let ws = Workspace::new();
    let s = sheet(
        &ws,
        "leavers.csv",
        &["david.maes@D,,,,,,,delete", "emma.jacobs@D,,,,,,,disable"],
    );
    ws.run(&["sync", &s]).code(0);
    let users = ws
        .run(&["--output", "json", "tenant", "users"])
        .code(0)
        .json()["users"]
        .clone();
    let find = |upn: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["upn"] == format!("{upn}{D}"))
            .cloned()
    };
    assert!(find("david.maes").is_none(), "deleted user still listed");
    let emma = find("emma.jacobs").expect("disabled user kept");
    assert!(emma["number"].is_null(), "{emma}");
    // Their numbers are free again: another user can take david's.
    let s2 = sheet(
        &ws,
        "reuse.csv",
        &["hanne.claes@D,,,+3225405204,MCOEV;STANDARDPACK,,,"],
    );
    ws.run(&["sync", &s2]).code(0);
    // Re-running the leavers sheet changes nothing.
    let again = ws.run(&["--output", "json", "plan", &s, "--detailed-exitcode"]);
    again.code(0);
    assert!(writes_in(&ws) >= 3);
}

#[test]
fn mirror_refuses_too_many_removals_unless_allowed() {
    let ws = Workspace::new();
    // A sheet of one numbered user: mirror would disable every other numbered user (18).
    let s = sheet(&ws, "one.csv", &["alice.martin@D,,,,,,,"]);
    let r = ws.run(&["plan", &s, "--mode", "mirror"]);
    r.code(2);
    assert!(r.stderr.contains("--allow-removals"), "{}", r.stderr);
    let ok = ws
        .run(&[
            "--output",
            "json",
            "plan",
            &s,
            "--mode",
            "mirror",
            "--allow-removals",
            "100",
        ])
        .code(0)
        .json();
    assert!(
        ok["summary"]["disables"].as_u64().unwrap() >= 11,
        "{}",
        ok["summary"]
    );
}
