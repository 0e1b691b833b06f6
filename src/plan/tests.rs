//! Planner tests against hand-built snapshots (the planner is pure: no tenant needed).

use super::*;
use crate::model::{
    AccountType, Attr, AttrValue, Catalogs, Country, GroupInfo, LicenseInfo, RowOrigin,
    UserDetails, VrpInfo, E164,
};
use std::collections::HashMap;

fn upn(s: &str) -> Upn {
    Upn::parse(s).unwrap()
}
fn num(s: &str) -> E164 {
    E164::parse_canonical(s).unwrap()
}
fn be() -> Country {
    Country::parse("BE").unwrap()
}
fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(std::string::ToString::to_string).collect()
}

/// A Fusion-like backend, built here rather than taken from the connector: the planner
/// knows backends only through their profile.
fn profile() -> Profile {
    Profile {
        write: true,
        create: true,
        delete: true,
        resource_accounts: true,
        attrs: AttrSet::ALL.without(Attr::Extension),
        create_needs: AttrSet::of(&[Attr::DisplayName, Attr::Country]),
        detail_reads: AttrSet::of(&[Attr::Groups, Attr::Vrp]),
        need_number: AttrSet::of(&[Attr::CustomerLicenses]),
        ..Profile::read_only("fusion")
    }
}

fn catalogs() -> Catalogs {
    let lic = |id: &str, part: &str, desc: &str, free| LicenseInfo {
        sku_id: id.into(),
        sku_part_number: part.into(),
        sku_description: Some(desc.into()),
        total: 100,
        free,
    };
    Catalogs {
        groups: vec![
            GroupInfo {
                id: "g-all".into(),
                display_name: "All Company".into(),
            },
            GroupInfo {
                id: "g-px1".into(),
                display_name: "Project X".into(),
            },
            GroupInfo {
                id: "g-px2".into(),
                display_name: "Project X".into(),
            },
            GroupInfo {
                id: "g-sales".into(),
                display_name: "Sales".into(),
            },
            GroupInfo {
                id: "g-be".into(),
                display_name: "BE Office".into(),
            },
        ],
        licenses: vec![
            lic("lic-ev", "MCOEV", "Microsoft Teams Phone Standard", 5),
            lic("lic-std", "STANDARDPACK", "Office 365 E1", 1),
            lic("lic-e5", "ENTERPRISEPREMIUM", "Office 365 E5", 0),
            lic(
                "lic-vu",
                "PHONESYSTEM_VIRTUALUSER",
                "Microsoft Teams Phone Resource Account",
                2,
            ),
        ],
        vrps: vec![
            VrpInfo {
                identity: "BE-National".into(),
                description: Some("Belgium national".into()),
            },
            VrpInfo {
                identity: "World-DRaaS".into(),
                description: None,
            },
        ],
    }
}

fn tuser(u: &str, number: Option<&str>) -> TenantUser {
    let name = u.split('@').next().unwrap();
    TenantUser {
        display_name: format!("{}{}", name[..1].to_uppercase(), &name[1..]),
        country: Some(be()),
        voice_enabled: number.is_some(),
        number: number.map(num),
        licenses: strs(&["lic-ev", "lic-std"]),
        customer_licenses: if number.is_some() {
            strs(&["Call-Bundle"])
        } else {
            vec![]
        },
        details: Some(UserDetails {
            groups: strs(&["g-all"]),
            vrp: number.map(|_| "BE-National".to_string()),
        }),
        ..TenantUser::new(format!("id-{name}"), upn(u))
    }
}

/// alice +3225405200, bob +3225405201, carol (no number), dave +3225405203 (not in most
/// sheets), and a call queue +3225405299.
fn snapshot() -> Snapshot {
    let mut cq = tuser("cq@contoso.com", Some("+3225405299"));
    cq.account_type = Some(AccountType::CallQueue);
    cq.licenses = strs(&["lic-vu"]);
    cq.details = Some(UserDetails {
        groups: vec![],
        vrp: None,
    });
    cq.display_name = "Main queue".into();
    Snapshot {
        users: vec![
            tuser("alice@contoso.com", Some("+3225405200")),
            tuser("bob@contoso.com", Some("+3225405201")),
            tuser("carol@contoso.com", None),
            tuser("dave@contoso.com", Some("+3225405203")),
            cq,
        ],
        catalogs: catalogs(),
        requests: 7,
        number_ranges: vec![],
        held_elsewhere: vec![],
    }
}

fn spec(u: &str, row: u64) -> UserSpec {
    let mut s = UserSpec::new(upn(u));
    s.origin = Some(RowOrigin {
        file: "users.csv".into(),
        row,
    });
    s
}

/// A row restating alice's full tenant state.
fn alice_full(row: u64) -> UserSpec {
    let mut s = spec("alice@contoso.com", row);
    s.display_name = Field::Set("Alice".into());
    s.country = Field::Set(be());
    s.number = Field::Set(num("+3225405200"));
    s.vrp = Field::Set("BE-National".into());
    s.groups = Field::Set(strs(&["All Company"]));
    s.licenses = Field::Set(strs(&["MCOEV", "STANDARDPACK"]));
    s.customer_licenses = Field::Set(strs(&["Call-Bundle"]));
    s
}

fn input<'a>(specs: &'a [UserSpec], snap: &'a Snapshot) -> PlanInput<'a> {
    PlanInput {
        tenant: "demo",
        mode: Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec!["users.csv".into()],
        source_sha256: "00".repeat(32),
        specs,
        snapshot: snap,
        profile: profile(),
        allow_removals: None,
    }
}

fn plan(specs: &[UserSpec], snap: &Snapshot) -> Result<Plan, PlanErrors> {
    make_plan(input(specs, snap))
}

fn errors(r: Result<Plan, PlanErrors>) -> Vec<Diagnostic> {
    match r {
        Ok(p) => panic!(
            "expected plan errors, got a plan:\n{}",
            render_human(&p, false)
        ),
        Err(e) => e.0,
    }
}

fn user<'p>(p: &'p Plan, u: &str) -> &'p UserPlan {
    p.users
        .iter()
        .find(|x| x.upn.as_str() == u)
        .unwrap_or_else(|| panic!("{u} not in plan"))
}

fn kinds(up: &UserPlan) -> Vec<&'static str> {
    up.ops.iter().map(|o| o.op.kind()).collect()
}

/// What an operation does, without the `before` values it records: what the
/// assertions below compare against shorthand operations.
fn effect(op: &Operation) -> Operation {
    let strip = |changes: &[model::AttrChange]| {
        changes
            .iter()
            .map(|c| model::AttrChange {
                before: None,
                ..c.clone()
            })
            .collect()
    };
    match op {
        Operation::Set { changes } => Operation::Set {
            changes: strip(changes),
        },
        other => other.clone(),
    }
}

fn ops_total(p: &Plan) -> usize {
    p.users.iter().map(|u| u.ops.len()).sum()
}

/// Plays a plan's operations onto a snapshot the way a successful apply would, in an
/// order that respects `after` (each op of a user runs in sequence).
fn apply_to(snap: &Snapshot, p: &Plan) -> Snapshot {
    numbers::check_acyclic(&p.users).expect("acyclic");
    let mut s = snap.clone();
    for up in &p.users {
        for op in &up.ops {
            let idx = s.users.iter().position(|u| u.upn == up.upn);
            match &op.op {
                Operation::Create { changes } => {
                    let mut u = TenantUser {
                        display_name: String::new(),
                        details: Some(UserDetails {
                            groups: vec![],
                            vrp: None,
                        }),
                        account_type: up.desired.account_type,
                        ..TenantUser::new(format!("new-{}", up.upn), up.upn.clone())
                    };
                    for c in changes {
                        u.set(c.attr, c.after.clone()).unwrap();
                    }
                    s.users.push(u);
                }
                Operation::Delete => {
                    s.users.remove(idx.unwrap());
                }
                Operation::Set { changes } => {
                    let u = &mut s.users[idx.unwrap()];
                    for c in changes {
                        // A released number takes the draas object, customer licenses
                        // included, with it.
                        if c.attr == Attr::Number && c.after.is_none() {
                            u.customer_licenses.clear();
                        }
                        u.set(c.attr, c.after.clone()).unwrap();
                    }
                }
            }
        }
    }
    s
}

#[test]
fn replanning_a_matching_tenant_plans_zero_operations() {
    let snap = snapshot();
    let mut carol = spec("carol@contoso.com", 3);
    carol.display_name = Field::Set("Carol".into());
    carol.number = Field::Clear;
    carol.vrp = Field::Clear;
    let specs = vec![alice_full(2), carol];
    let p = plan(&specs, &snap).unwrap();
    assert_eq!(ops_total(&p), 0);
    assert_eq!(p.users.len(), 2, "unchanged users are still listed");
    assert!(p
        .users
        .iter()
        .all(|u| u.action == UserAction::Unchanged && u.changes.is_empty()));
    let s = summary(&p);
    assert_eq!((s.users, s.unchanged, s.operations), (2, 2, 0));
}

#[test]
fn cells_that_differ_only_in_spelling_are_unchanged() {
    let snap = snapshot();
    let mut s = spec("ALICE@Contoso.com", 2);
    s.display_name = Field::Set("  Alice ".into());
    s.country = Field::Set(Country::parse("be").unwrap());
    s.number = Field::Set(num("tel:+3225405200"));
    s.vrp = Field::Set("belgium NATIONAL".into()); // by description
    s.groups = Field::Set(strs(&["all company", "G-ALL"])); // name and id of one group
    s.licenses = Field::Set(strs(&[
        "lic-STD",
        "microsoft teams phone standard",
        "mcoev",
    ]));
    s.customer_licenses = Field::Set(strs(&["call-bundle"]));
    let p = plan(&[s], &snap).unwrap();
    assert_eq!(ops_total(&p), 0, "{}", render_human(&p, false));
}

#[test]
fn create_needs_display_name_and_country() {
    let snap = snapshot();
    let mut s = spec("new@contoso.com", 4);
    s.number = Field::Set(num("+3225405210"));
    let errs = errors(plan(&[s.clone()], &snap));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].row, Some(4));
    assert!(
        errs[0].message.contains("displayName and country"),
        "{}",
        errs[0].message
    );

    s.display_name = Field::Set("New Person".into());
    let errs = errors(plan(&[s.clone()], &snap));
    assert!(
        errs.iter().any(|e| e.message.contains("needs country")),
        "{errs:?}"
    );
}

#[test]
fn create_gets_all_its_operations_in_order() {
    let snap = snapshot();
    let mut s = spec("new@contoso.com", 4);
    s.display_name = Field::Set("New Person".into());
    s.country = Field::Set(be());
    s.number = Field::Set(num("+3225405210"));
    s.licenses = Field::Set(strs(&["MCOEV"]));
    s.vrp = Field::Set("World-DRaaS".into());
    s.groups = Field::Set(strs(&["Sales", "BE Office"]));
    s.customer_licenses = Field::Set(strs(&["Call-Bundle"]));
    let p = plan(&[s], &snap).unwrap();
    let u = user(&p, "new@contoso.com");
    assert_eq!(u.action, UserAction::Create);
    assert_eq!(u.user_id, None);
    assert_eq!(
        kinds(u),
        [
            "create",
            "set_licenses",
            "set_number",
            "set_vrp",
            "set_groups",
            "set_customer_licenses"
        ]
    );
    assert_eq!(
        effect(&u.ops[4].op),
        Operation::set_groups(strs(&["g-sales", "g-be"]))
    );
    assert!(u.before.is_empty());
    // After a successful apply, the same sheet plans nothing.
    let after = apply_to(&snap, &p);
    let specs = p
        .users
        .iter()
        .map(|u| u.desired.clone())
        .collect::<Vec<_>>();
    assert_eq!(ops_total(&plan(&specs, &after).unwrap()), 0);
}

#[test]
fn list_fields_compare_as_sets_and_show_additions_and_removals() {
    let snap = snapshot();
    let mut s = spec("alice@contoso.com", 2);
    s.groups = Field::Set(strs(&["Sales", "BE Office"]));
    s.licenses = Field::Set(strs(&["STANDARDPACK", "MCOEV"])); // same set, other order
    let p = plan(&[s], &snap).unwrap();
    let u = user(&p, "alice@contoso.com");
    assert_eq!(kinds(u), ["set_groups"]);
    assert_eq!(
        effect(&u.ops[0].op),
        Operation::set_groups(strs(&["g-sales", "g-be"]))
    );
    let c = &u.changes[0];
    assert_eq!(c.field, "groups");
    assert_eq!(c.added, strs(&["Sales", "BE Office"]));
    assert_eq!(c.removed, strs(&["All Company"]));
    assert_eq!(u.before["groups"], serde_json::json!(["g-all"]));

    let mut s = spec("alice@contoso.com", 2);
    s.groups = Field::Clear;
    let p = plan(&[s], &snap).unwrap();
    assert_eq!(
        effect(&user(&p, "alice@contoso.com").ops[0].op),
        Operation::set_groups(vec![])
    );
}

#[test]
fn number_swap_is_broken_by_clearing_one_side_first() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+3225405200"));
    let p = plan(&[a, b], &snap).unwrap();
    let (ua, ub) = (user(&p, "alice@contoso.com"), user(&p, "bob@contoso.com"));
    assert_eq!(ua.ops.len(), 2);
    assert_eq!(effect(&ua.ops[0].op), Operation::set_number(None));
    assert!(ua.ops[0].awaited && ua.ops[0].after.is_empty());
    assert_eq!(
        effect(&ua.ops[1].op),
        Operation::set_number(Some(num("+3225405201")))
    );
    assert_eq!(
        ua.ops[1].after,
        vec![OpRef {
            upn: upn("bob@contoso.com"),
            index: 0
        }]
    );
    assert_eq!(ub.ops.len(), 1);
    assert_eq!(
        ub.ops[0].after,
        vec![OpRef {
            upn: upn("alice@contoso.com"),
            index: 0
        }]
    );
    assert!(ub.ops[0].awaited);
    numbers::check_acyclic(&p.users).unwrap();
    let after = apply_to(&snap, &p);
    let specs = p
        .users
        .iter()
        .map(|u| u.desired.clone())
        .collect::<Vec<_>>();
    assert_eq!(ops_total(&plan(&specs, &after).unwrap()), 0);
}

#[test]
fn three_way_rotation_is_broken_once_and_acyclic() {
    let snap = snapshot();
    // alice → bob's, bob → dave's, dave → alice's
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+3225405203"));
    let mut d = spec("dave@contoso.com", 4);
    d.number = Field::Set(num("+3225405200"));
    let p = plan(&[a, b, d], &snap).unwrap();
    let extra: usize = p.users.iter().map(|u| u.ops.len()).sum::<usize>() - 3;
    assert_eq!(extra, 1, "exactly one extra release breaks the cycle");
    assert_eq!(
        kinds(user(&p, "alice@contoso.com")),
        ["set_number", "set_number"]
    );
    numbers::check_acyclic(&p.users).unwrap();
}

#[test]
fn acyclic_check_detects_cycles() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+3225405200"));
    let mut p = plan(&[a, b], &snap).unwrap();
    // Undo the break: alice's only op waits on bob's, bob's on alice's.
    let ua = p
        .users
        .iter_mut()
        .find(|u| u.upn.as_str() == "alice@contoso.com")
        .unwrap();
    ua.ops.remove(0);
    let ub = p
        .users
        .iter_mut()
        .find(|u| u.upn.as_str() == "bob@contoso.com")
        .unwrap();
    ub.ops[0].after = vec![OpRef {
        upn: upn("alice@contoso.com"),
        index: 0,
    }];
    assert!(numbers::check_acyclic(&p.users).is_err());
}

#[test]
fn number_moving_from_a_released_sheet_user_waits_for_the_release() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Clear;
    let p = plan(&[a, b], &snap).unwrap();
    let (ua, ub) = (user(&p, "alice@contoso.com"), user(&p, "bob@contoso.com"));
    assert_eq!(
        ua.ops.len(),
        1,
        "alice frees her old number by replacing it"
    );
    assert_eq!(
        ua.ops[0].after,
        vec![OpRef {
            upn: upn("bob@contoso.com"),
            index: 0
        }]
    );
    assert!(ub.ops[0].awaited);
    assert!(!ua.ops[0].awaited, "nobody claims alice's old number");
}

#[test]
fn claiming_a_number_held_outside_the_sheet_is_an_error_naming_the_holder() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405203"));
    let errs = errors(plan(&[a.clone()], &snap));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.contains("dave@contoso.com"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[0].column.as_deref(), Some("number"));

    // Held by a resource account: said so.
    a.number = Field::Set(num("+3225405299"));
    let errs = errors(plan(&[a.clone()], &snap));
    assert!(
        errs[0].message.contains("resource account cq@contoso.com"),
        "{}",
        errs[0].message
    );

    // Held by a sheet user who keeps it.
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.display_name = Field::Set("Robert".into());
    let errs = errors(plan(&[a.clone(), b], &snap));
    assert!(
        errs[0].message.contains("users.csv:3 (bob@contoso.com)"),
        "{}",
        errs[0].message
    );

    // Mirror mode releases dave (not in the sheet), so the move is planned.
    a.number = Field::Set(num("+3225405203"));
    let specs = [a];
    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    let p = make_plan(i).unwrap();
    let ua = user(&p, "alice@contoso.com");
    assert_eq!(
        ua.ops[0].after,
        vec![OpRef {
            upn: upn("dave@contoso.com"),
            index: 0
        }]
    );
}

#[test]
fn a_number_claimed_twice_names_both_rows() {
    let snap = snapshot();
    let mut a = spec("carol@contoso.com", 2);
    a.number = Field::Set(num("+3225405250"));
    let mut b = spec("alice@contoso.com", 7);
    b.number = Field::Set(num("+3225405250"));
    let errs = errors(plan(&[a, b], &snap));
    assert!(!errs.is_empty());
    for e in &errs {
        assert!(e.message.contains("claimed twice"), "{}", e.message);
        assert!(
            e.message.contains("users.csv:2 (carol@contoso.com)"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("users.csv:7 (alice@contoso.com)"),
            "{}",
            e.message
        );
    }
}

#[test]
fn unknown_license_is_an_error_naming_row_and_column() {
    let snap = snapshot();
    let mut s = spec("alice@contoso.com", 5);
    s.licenses = Field::Set(strs(&["MCOEV", "E3-TYPO"]));
    let errs = errors(plan(&[s], &snap));
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].file.as_str(), errs[0].row), ("users.csv", Some(5)));
    assert_eq!(errs[0].column.as_deref(), Some("licenses"));
    assert!(
        errs[0].message.contains("unknown license \"E3-TYPO\""),
        "{}",
        errs[0].message
    );
}

#[test]
fn ambiguous_group_name_lists_the_candidates() {
    let snap = snapshot();
    let mut s = spec("alice@contoso.com", 5);
    s.groups = Field::Set(strs(&["Project X"]));
    let errs = errors(plan(&[s.clone()], &snap));
    assert_eq!(errs.len(), 1);
    let m = &errs[0].message;
    assert!(m.contains("ambiguous group \"Project X\""), "{m}");
    assert!(
        m.contains("Project X (g-px1)") && m.contains("Project X (g-px2)"),
        "{m}"
    );
    // The id the error offers disambiguates.
    s.groups = Field::Set(strs(&["g-px2"]));
    let p = plan(&[s], &snap).unwrap();
    assert_eq!(
        effect(&user(&p, "alice@contoso.com").ops[0].op),
        Operation::set_groups(strs(&["g-px2"]))
    );
}

#[test]
fn all_errors_are_reported_not_only_the_first() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.licenses = Field::Set(strs(&["NOPE"]));
    let mut b = spec("bob@contoso.com", 3);
    b.vrp = Field::Set("Mars".into());
    let mut c = spec("new@contoso.com", 4);
    c.number = Field::Set(num("+3225405260"));
    let errs = errors(plan(&[a, b, c], &snap));
    let rows: Vec<Option<u64>> = errs.iter().map(|e| e.row).collect();
    assert_eq!(rows, vec![Some(2), Some(3), Some(4)], "{errs:?}");
}

/// A tenant with `n` number holders absent from the sheet (besides the base users).
fn big_tenant(n: usize) -> Snapshot {
    let mut s = snapshot();
    for i in 0..n {
        s.users.push(tuser(
            &format!("u{i}@contoso.com"),
            Some(&format!("+32254060{i:02}")),
        ));
    }
    s
}

#[test]
fn mirror_refuses_too_many_removals_unless_allowed() {
    let snap = big_tenant(10); // + bob, dave = 12 removals; 13 holders → threshold 10
    let specs = [alice_full(2)];
    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    let errs = errors(make_plan(i));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("disable 12 users"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].message.contains("--allow-removals 12"),
        "{}",
        errs[0].message
    );

    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    i.allow_removals = Some(11);
    assert!(
        make_plan(i).is_err(),
        "an allowance below the count is not enough"
    );

    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    i.allow_removals = Some(12);
    let p = make_plan(i).unwrap();
    assert_eq!(p.users.len(), 13);
    assert_eq!(
        p.users[0].upn.as_str(),
        "alice@contoso.com",
        "sheet users first"
    );
    let disabled: Vec<&UserPlan> = p
        .users
        .iter()
        .filter(|u| u.action == UserAction::Disable)
        .collect();
    assert_eq!(disabled.len(), 12);
    assert!(disabled
        .iter()
        .all(|u| kinds(u) == ["set_number", "set_vrp"] && u.origin.is_none()));
    assert!(
        p.users.iter().all(|u| u.upn.as_str() != "cq@contoso.com"),
        "resource accounts untouched"
    );
    assert!(
        p.users
            .iter()
            .all(|u| u.upn.as_str() != "carol@contoso.com"),
        "no number, nothing to remove"
    );

    // A re-run after the removals plans nothing.
    let after = apply_to(&snap, &p);
    let mut i = input(&specs, &after);
    i.mode = Mode::Mirror;
    assert_eq!(ops_total(&make_plan(i).unwrap()), 0);
}

#[test]
fn an_empty_sheet_never_mirrors() {
    let snap = snapshot();
    let mut i = input(&[], &snap);
    i.mode = Mode::Mirror;
    i.allow_removals = Some(1000);
    let errs = errors(make_plan(i));
    assert!(
        errs[0].message.contains("no user rows"),
        "{}",
        errs[0].message
    );
    // Upsert with nothing to do is simply an empty plan.
    let p = plan(&[], &snap).unwrap();
    assert!(p.users.is_empty());
}

#[test]
fn mirror_within_the_threshold_needs_no_flag() {
    let snap = snapshot();
    let specs = [alice_full(2)];
    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    let p = make_plan(i).unwrap();
    assert_eq!(summary(&p).disables, 2); // bob, dave
}

#[test]
fn disable_and_delete_rows() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.action = RowAction::Disable;
    let mut b = spec("bob@contoso.com", 3);
    b.action = RowAction::Delete;
    let mut g = spec("ghost@contoso.com", 4);
    g.action = RowAction::Delete;
    let p = plan(&[a, b, g], &snap).unwrap();
    let ua = user(&p, "alice@contoso.com");
    assert_eq!(ua.action, UserAction::Disable);
    assert_eq!(
        ua.ops.iter().map(|o| effect(&o.op)).collect::<Vec<_>>(),
        vec![Operation::set_number(None), Operation::set_vrp(None)]
    );
    assert_eq!(ua.before["number"], "+3225405200");
    assert_eq!(ua.before["vrp"], "BE-National");
    let ub = user(&p, "bob@contoso.com");
    assert_eq!((ub.action, kinds(ub)), (UserAction::Delete, vec!["delete"]));
    assert_eq!(ub.before["displayName"], "Bob");
    let ug = user(&p, "ghost@contoso.com");
    assert_eq!(ug.action, UserAction::Unchanged);
    assert!(p.warnings.iter().any(|w| w.contains("ghost@contoso.com")));
    // Bob's deleted number can go to carol in the same plan, after the delete.
    let mut a = spec("alice@contoso.com", 2);
    a.action = RowAction::Disable;
    let mut b = spec("bob@contoso.com", 3);
    b.action = RowAction::Delete;
    let mut c = spec("carol@contoso.com", 5);
    c.number = Field::Set(num("+3225405201"));
    let p = plan(&[a, b, c], &snap).unwrap();
    assert_eq!(
        user(&p, "carol@contoso.com").ops[0].after,
        vec![OpRef {
            upn: upn("bob@contoso.com"),
            index: 0
        }]
    );
    let after = apply_to(&snap, &p);
    let specs: Vec<UserSpec> = p.users.iter().map(|u| u.desired.clone()).collect();
    assert_eq!(ops_total(&plan(&specs, &after).unwrap()), 0);
}

#[test]
fn license_preflight_counts_net_assignments_against_free() {
    let snap = snapshot(); // STANDARDPACK: 1 free
    let mk = |u: &str, row| {
        let mut s = spec(u, row);
        s.display_name = Field::Set("N".into());
        s.country = Field::Set(be());
        s.licenses = Field::Set(strs(&["STANDARDPACK"]));
        s
    };
    let specs = [mk("n1@contoso.com", 2), mk("n2@contoso.com", 3)];
    let errs = errors(plan(&specs, &snap));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].message.contains("not enough STANDARDPACK"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].message.contains("needs 2") && errs[0].message.contains("1 free"),
        "{}",
        errs[0].message
    );
    // Freeing one elsewhere makes it fit.
    let mut free = spec("carol@contoso.com", 4);
    free.licenses = Field::Set(strs(&["MCOEV"]));
    let specs = [mk("n1@contoso.com", 2), mk("n2@contoso.com", 3), free];
    plan(&specs, &snap).unwrap();
}

#[test]
fn customer_licenses_need_a_number() {
    let snap = snapshot();
    let mut c = spec("carol@contoso.com", 3);
    c.customer_licenses = Field::Set(strs(&["Call-Bundle"]));
    let errs = errors(plan(&[c], &snap));
    assert_eq!(errs[0].column.as_deref(), Some("customerLicenses"));
    assert!(
        errs[0].message.contains("only for users with a number"),
        "{}",
        errs[0].message
    );
    // Releasing alice's number while setting customer licenses is the same mistake.
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Clear;
    a.customer_licenses = Field::Set(strs(&["Call-Bundle"]));
    assert_eq!(errors(plan(&[a], &snap)).len(), 1);
}

#[test]
fn a_number_needs_a_phone_system_license() {
    let snap = snapshot();
    let mut c = spec("carol@contoso.com", 3);
    c.number = Field::Set(num("+3225405270"));
    c.licenses = Field::Set(strs(&["STANDARDPACK"]));
    let errs = errors(plan(&[c.clone()], &snap));
    assert!(
        errs[0].message.contains("Phone System"),
        "{}",
        errs[0].message
    );
    c.licenses = Field::Set(strs(&["STANDARDPACK", "MCOEV"])); // what carol holds already
    let p = plan(&[c.clone()], &snap).unwrap();
    assert_eq!(kinds(user(&p, "carol@contoso.com")), ["set_number"]);
    c.licenses = Field::Set(strs(&["ENTERPRISEPREMIUM"])); // E5 includes Phone System
    let mut snap = snap;
    snap.catalogs.licenses[2].free = 1;
    let p = plan(&[c], &snap).unwrap();
    assert_eq!(
        kinds(user(&p, "carol@contoso.com")),
        ["set_licenses", "set_number"],
        "licenses before number"
    );
}

#[test]
fn capability_refusals_name_field_and_backend() {
    let snap = snapshot();
    let mut s = spec("alice@contoso.com", 2);
    s.groups = Field::Set(strs(&["Sales"]));
    let specs = [s];
    let mut i = input(&specs, &snap);
    i.profile.backend = "portsip";
    i.profile.attrs = i.profile.attrs.without(Attr::Groups);
    let errs = errors(make_plan(i));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].column.as_deref(), Some("groups"));
    assert!(
        errs[0]
            .message
            .contains("portsip backend cannot set groups"),
        "{}",
        errs[0].message
    );

    // A read-only backend still plans (audit).
    let mut i = input(&specs, &snap);
    i.profile.write = false;
    assert_eq!(ops_total(&make_plan(i).unwrap()), 1);
}

#[test]
fn missing_details_are_a_caller_bug_not_a_guess() {
    let mut snap = snapshot();
    snap.users[0].details = None;
    let mut s = spec("alice@contoso.com", 2);
    s.vrp = Field::Set("World-DRaaS".into());
    let errs = errors(plan(&[s], &snap));
    assert!(
        errs[0].message.contains("details were not read"),
        "{}",
        errs[0].message
    );
}

#[test]
fn detail_upns_lists_rows_touching_groups_vrp_or_disabling() {
    let mut a = spec("alice@contoso.com", 2);
    a.groups = Field::Set(strs(&["Sales"]));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Clear;
    let mut c = spec("carol@contoso.com", 4);
    c.vrp = Field::Clear;
    let mut d = spec("dave@contoso.com", 5);
    d.action = RowAction::Disable;
    assert_eq!(
        detail_upns(&[a, b, c, d], &profile()),
        vec![
            upn("alice@contoso.com"),
            upn("carol@contoso.com"),
            upn("dave@contoso.com")
        ]
    );
}

#[test]
fn resource_account_sheets_create_modify_and_delete() {
    let snap = snapshot();
    let mut aa = spec("aa@contoso.com", 2);
    aa.display_name = Field::Set("Reception".into());
    aa.country = Field::Set(be());
    aa.number = Field::Set(num("+3225405280"));
    let specs = [aa.clone()];
    let mut i = input(&specs, &snap);
    i.kind = JobKind::MsResourceAccounts;
    let errs = errors(make_plan(i));
    assert!(
        errs[0].message.contains("accountType"),
        "{}",
        errs[0].message
    );

    aa.account_type = Some(AccountType::AutoAttendant);
    let mut cq = spec("cq@contoso.com", 3);
    cq.number = Field::Clear;
    cq.display_name = Field::Set("Main queue".into());
    let specs = [aa, cq];
    let mut i = input(&specs, &snap);
    i.kind = JobKind::MsResourceAccounts;
    let p = make_plan(i).unwrap();
    assert_eq!(kinds(user(&p, "aa@contoso.com")), ["create", "set_number"]);
    assert_eq!(kinds(user(&p, "cq@contoso.com")), ["set_number"]);

    // A user row in a resource-account sheet is refused, and vice versa.
    let specs = [spec("alice@contoso.com", 2)];
    let mut i = input(&specs, &snap);
    i.kind = JobKind::MsResourceAccounts;
    assert!(errors(make_plan(i))[0]
        .message
        .contains("not a resource account"));
    let specs = [spec("cq@contoso.com", 2)];
    assert!(errors(plan(&specs, &snap))[0]
        .message
        .contains("is a resource account"));
}

#[test]
fn fingerprint_is_stable_under_reordering_and_changes_with_relevant_state() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405250"));
    a.groups = Field::Set(strs(&["Sales"]));
    let mut c = spec("carol@contoso.com", 3);
    c.display_name = Field::Set("Carol".into());
    let p = plan(&[a, c], &snap).unwrap();
    let fp = fingerprint(&snap, &p.users);
    assert_eq!(fp, p.snapshot_fingerprint);
    assert_eq!(fp.len(), 64);

    let mut shuffled = snap.clone();
    shuffled.users.reverse();
    shuffled.catalogs.groups.reverse();
    shuffled.catalogs.licenses.reverse();
    shuffled.users[0].licenses.reverse();
    shuffled.requests = 99;
    let mut users = p.users.clone();
    users.reverse();
    assert_eq!(fingerprint(&shuffled, &users), fp, "order does not matter");

    let mut unrelated = snap.clone();
    unrelated
        .users
        .iter_mut()
        .find(|u| u.upn.as_str() == "bob@contoso.com")
        .unwrap()
        .display_name = "B".into();
    unrelated.catalogs.licenses[0].free = 0;
    unrelated.users[2].country = None; // carol's row does not touch her country
    assert_eq!(
        fingerprint(&unrelated, &p.users),
        fp,
        "users and counts the plan does not use"
    );

    let mut changed = snap.clone();
    changed.users[2].display_name = "Caroline".into(); // carol: unchanged in the plan, still relevant
    assert_ne!(fingerprint(&changed, &p.users), fp);
    let mut claimed = snap.clone();
    claimed.users[1].number = Some(num("+3225405250")); // bob now holds the number alice claims
    assert_ne!(fingerprint(&claimed, &p.users), fp);
    let mut renamed = snap.clone();
    renamed.catalogs.groups[3].display_name = "Sales EMEA".into();
    assert_ne!(fingerprint(&renamed, &p.users), fp);
}

#[test]
fn drift_is_detected_and_described() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.display_name = Field::Set("Alice Smith".into());
    let mut n = spec("new@contoso.com", 3);
    n.display_name = Field::Set("New".into());
    n.country = Field::Set(be());
    n.number = Field::Set(num("+3225405250"));
    n.licenses = Field::Set(strs(&["MCOEV"]));
    let mut c = spec("carol@contoso.com", 4);
    c.display_name = Field::Set("Carol".into());
    let p = plan(&[a, n, c], &snap).unwrap();
    assert_eq!(check_drift(&p, &snap), Ok(()));

    // A field no row touches may change freely.
    let mut fresh = snap.clone();
    fresh.users[2].country = Some(Country::parse("NL").unwrap());
    assert_eq!(check_drift(&p, &fresh), Ok(()));

    let mut fresh = snap.clone();
    fresh.users[0].display_name = "Alicia".into();
    fresh.users[2].display_name = "Caroline".into();
    fresh.users[1].number = Some(num("+3225405250"));
    let found = check_drift(&p, &fresh).unwrap_err();
    let text = found.join("\n");
    assert!(
        text.contains(r#"alice@contoso.com: planned [displayName: "Alice" → "Alice Smith"], the tenant now needs [displayName: "Alicia" → "Alice Smith"]"#),
        "{text}"
    );
    assert!(text.contains(r#"carol@contoso.com: planned [no change], the tenant now needs [displayName: "Caroline" → "Carol"]"#), "{text}");
    assert!(
        text.contains("+3225405250") && text.contains("bob@contoso.com"),
        "{text}"
    );
    assert!(!text.contains("new@contoso.com: now exists"), "{text}");

    let mut created = snap.clone();
    created.users.push(tuser("new@contoso.com", None));
    let found = check_drift(&p, &created).unwrap_err();
    assert!(
        found
            .iter()
            .any(|f| f == "new@contoso.com: now exists in the tenant (the plan creates it)"),
        "{found:?}"
    );
}

#[test]
fn mirror_removals_survive_a_drift_check_that_reads_their_details() {
    // The plan was made without details for dave (not in the sheet); `apply --plan`
    // snapshots with detail_upns of every planned row, mirror rows included.
    let mut snap = snapshot();
    let dave = snap
        .users
        .iter_mut()
        .find(|u| u.upn.as_str() == "dave@contoso.com")
        .unwrap();
    dave.details = None;
    let mut a = spec("alice@contoso.com", 2);
    a.display_name = Field::Set("Alice Smith".into());
    let specs = [a, spec("bob@contoso.com", 3)];
    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    let p = make_plan(i).unwrap();
    assert_eq!(
        kinds(user(&p, "dave@contoso.com")),
        ["set_number", "set_vrp"]
    );
    let desired: Vec<UserSpec> = p.users.iter().map(|u| u.desired.clone()).collect();
    assert!(detail_upns(&desired, &profile()).contains(&upn("dave@contoso.com")));

    let fresh = snapshot(); // dave's details read this time
    assert_eq!(check_drift(&p, &fresh), Ok(()));
    let mut moved = snapshot();
    moved.users[0].display_name = "Alicia".into();
    let found = check_drift(&p, &moved).unwrap_err();
    assert_eq!(found.len(), 1, "only alice drifted: {found:?}");
    let mut gone = snapshot();
    gone.users
        .iter_mut()
        .find(|u| u.upn.as_str() == "dave@contoso.com")
        .unwrap()
        .number = None;
    let found = check_drift(&p, &gone).unwrap_err();
    assert!(
        found[0].starts_with("dave@contoso.com: planned [number: \"+3225405203\" → null"),
        "{found:?}"
    );
}

#[test]
fn saved_plans_round_trip_and_check_their_format() {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+3225405200"));
    let p = plan(&[a, b], &snap).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    save(&p, &path).unwrap();
    assert_eq!(load(&path).unwrap(), p);

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["format"] = serde_json::json!(99);
    std::fs::write(&path, v.to_string()).unwrap();
    assert!(matches!(
        load(&path),
        Err(SavedPlanError::Format { found: 99, .. })
    ));
    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(load(&path), Err(SavedPlanError::Invalid { .. })));
    assert!(matches!(
        load(&dir.path().join("missing.json")),
        Err(SavedPlanError::Io { .. })
    ));
}

/// A plan with one of everything, for the renderers.
fn mixed_plan() -> Plan {
    let snap = snapshot();
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+3225405201"));
    a.groups = Field::Set(strs(&["All Company", "Sales"]));
    a.display_name = Field::Set("Alice Smith".into());
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+3225405200"));
    let mut n = spec("new@contoso.com", 4);
    n.display_name = Field::Set("New Person".into());
    n.country = Field::Set(be());
    n.licenses = Field::Set(strs(&["MCOEV"]));
    n.number = Field::Set(num("+3225405250"));
    let mut c = spec("carol@contoso.com", 5);
    c.display_name = Field::Set("Carol".into());
    let specs = [a, b, n, c];
    let mut i = input(&specs, &snap);
    i.mode = Mode::Mirror;
    make_plan(i).unwrap()
}

#[test]
fn render_human_snapshot() {
    let p = mixed_plan();
    insta::assert_snapshot!(render_human(&p, false));
    let colored = render_human(&p, true);
    assert!(colored.contains("\x1b[32m+\x1b[0m"));
}

#[test]
fn render_human_with_nothing_to_do() {
    let snap = snapshot();
    let p = plan(&[alice_full(2)], &snap).unwrap();
    let text = render_human(&p, false);
    assert!(
        text.contains("1 unchanged") && text.contains("No changes"),
        "{text}"
    );
    assert!(
        !text.contains("alice@contoso.com"),
        "unchanged users are counted, not listed: {text}"
    );
}

#[test]
fn render_json_summary_shape() {
    let p = mixed_plan();
    let j = render_json(&p);
    assert_eq!(
        j["summary"],
        serde_json::json!({
            "users": 5, "unchanged": 1, "operations": 10,
            "create": 1, "set_properties": 1, "set_licenses": 1, "set_number": 5,
            "set_vrp": 1, "set_groups": 1, "set_customer_licenses": 0, "delete": 0,
            "creates": 1, "updates": 2, "disables": 1, "deletes": 0
        })
    );
    let users = j["users"].as_array().unwrap();
    assert_eq!(users.len(), 5);
    assert_eq!(users[0]["upn"], "alice@contoso.com");
    assert_eq!(users[0]["action"], "update");
    assert_eq!(users[0]["operations"][0]["op"], "set_properties");
    assert_eq!(users[3]["action"], "unchanged");
    assert_eq!(users[4]["upn"], "dave@contoso.com");
    assert_eq!(users[4]["action"], "disable");
}

#[test]
fn planning_scales_linearly() {
    // 20k users with numbers, groups and licenses, half of them changing number (moves
    // into free numbers) — a quadratic step would take minutes here, not milliseconds.
    let n = 20_000;
    let mut snap = snapshot();
    for i in 0..n {
        snap.users.push(tuser(
            &format!("s{i}@contoso.com"),
            Some(&format!("+3227{i:06}")),
        ));
    }
    for i in 0..2000 {
        snap.catalogs.groups.push(GroupInfo {
            id: format!("gx{i}"),
            display_name: format!("Team {i}"),
        });
    }
    snap.catalogs.licenses[1].free = n as i64;
    let specs: Vec<UserSpec> = (0..n)
        .map(|i| {
            let mut s = spec(&format!("s{i}@contoso.com"), i as u64 + 2);
            s.groups = Field::Set(strs(&["All Company", &format!("Team {}", i % 2000)]));
            s.licenses = Field::Set(strs(&["MCOEV", "STANDARDPACK"]));
            if i % 2 == 0 {
                s.number = Field::Set(num(&format!("+3228{i:06}")));
            }
            s
        })
        .collect();
    let t = std::time::Instant::now();
    let p = plan(&specs, &snap).unwrap();
    let took = t.elapsed();
    assert_eq!(summary(&p).set_number, n / 2);
    assert_eq!(summary(&p).set_groups, n);
    assert!(took.as_secs() < 20, "planning {n} users took {took:?}");
    eprintln!("planned {n} users in {took:?}");
}

#[test]
fn resource_account_creates_count_virtual_user_licenses() {
    let mut snap = snapshot();
    snap.catalogs.licenses[3].free = 1;
    let mk = |u: &str, row| {
        let mut s = spec(u, row);
        s.display_name = Field::Set("Queue".into());
        s.country = Field::Set(be());
        s.account_type = Some(AccountType::CallQueue);
        s
    };
    let specs = [mk("q1@contoso.com", 2), mk("q2@contoso.com", 3)];
    let mut i = input(&specs, &snap);
    i.kind = JobKind::MsResourceAccounts;
    let errs = errors(make_plan(i));
    assert!(
        errs[0]
            .message
            .contains("not enough PHONESYSTEM_VIRTUALUSER"),
        "{}",
        errs[0].message
    );
}

/// Runs a plan the way a concurrent executor may: any op whose predecessor and `after`
/// dependencies are done can go next, in an order `pick` chooses. Fails if a claim ever
/// meets a number still linked to someone else (the tenant's "already linked" error) or
/// if the plan deadlocks.
fn run_adversarially(
    snap: &Snapshot,
    p: &Plan,
    mut pick: impl FnMut(usize) -> usize,
) -> Result<(), String> {
    let mut holder: HashMap<E164, Upn> = snap
        .users
        .iter()
        .filter_map(|u| u.number.clone().map(|n| (n, u.upn.clone())))
        .collect();
    let mut next: Vec<usize> = vec![0; p.users.len()];
    let mut done: std::collections::HashSet<(Upn, usize)> = Default::default();
    let total: usize = p.users.iter().map(|u| u.ops.len()).sum();
    while done.len() < total {
        let ready: Vec<usize> = (0..p.users.len())
            .filter(|&i| {
                let u = &p.users[i];
                next[i] < u.ops.len()
                    && u.ops[next[i]]
                        .after
                        .iter()
                        .all(|a| done.contains(&(a.upn.clone(), a.index)))
            })
            .collect();
        if ready.is_empty() {
            return Err(format!("deadlock after {} of {total} ops", done.len()));
        }
        let i = ready[pick(ready.len()) % ready.len()];
        let u = &p.users[i];
        let release = |holder: &mut HashMap<E164, Upn>| holder.retain(|_, h| *h != u.upn);
        let op = &u.ops[next[i]].op;
        match op.claims_number() {
            Some(n) => {
                if let Some(h) = holder.get(n) {
                    if *h != u.upn {
                        return Err(format!("{} claims {n} still linked to {h}", u.upn));
                    }
                }
                release(&mut holder);
                holder.insert(n.clone(), u.upn.clone());
            }
            None if op.releases_number() || matches!(op, Operation::Delete) => release(&mut holder),
            None => {}
        }
        done.insert((u.upn.clone(), next[i]));
        next[i] += 1;
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Random reshuffles of numbers among users (moves, swaps, rotations, releases) plan
    /// acyclically and run without ever claiming a linked number, in any execution order.
    #[test]
    fn random_number_reshuffles_never_claim_a_linked_number(
        current in proptest::collection::vec(proptest::option::of(0usize..10), 2..8),
        wanted in proptest::collection::vec(0usize..12, 8),
        picks in proptest::collection::vec(0usize..64, 64),
    ) {
        let pool: Vec<String> = (0..10).map(|i| format!("+32254070{i:02}")).collect();
        let mut snap = snapshot();
        snap.users.clear();
        let mut taken = std::collections::HashSet::new();
        for (i, c) in current.iter().enumerate() {
            let n = c.filter(|&k| taken.insert(k)).map(|k| pool[k].as_str());
            snap.users.push(tuser(&format!("p{i}@contoso.com"), n));
        }
        // wanted: 0..10 a pool number, 10 clear, 11 keep.
        let specs: Vec<UserSpec> = (0..current.len())
            .map(|i| {
                let mut s = spec(&format!("p{i}@contoso.com"), i as u64 + 2);
                s.number = match wanted[i] {
                    k @ 0..=9 => Field::Set(num(&pool[k])),
                    10 => Field::Clear,
                    _ => Field::Keep,
                };
                s
            })
            .collect();
        match plan(&specs, &snap) {
            Err(e) => {
                for d in &e.0 {
                    proptest::prop_assert!(
                        d.message.contains("claimed twice") || d.message.contains("keeps it"),
                        "unexpected error {}", d
                    );
                }
            }
            Ok(p) => {
                numbers::check_acyclic(&p.users).map_err(|e| proptest::test_runner::TestCaseError::fail(e.join(", ")))?;
                let mut k = 0;
                let r = run_adversarially(&snap, &p, |_| { k += 1; picks[k % picks.len()] });
                proptest::prop_assert!(r.is_ok(), "{:?}\n{}", r, render_human(&p, false));
                let after = apply_to(&snap, &p);
                proptest::prop_assert_eq!(ops_total(&plan(&specs, &after).unwrap()), 0);
            }
        }
    }
}

/// A backend without country but with extensions (PortSIP): creates need an extension
/// and no country; country and extension are refused where the backend lacks them.
#[test]
fn country_and_extension_follow_the_capabilities() {
    let snap = snapshot();
    let portsip = |i: &mut PlanInput| {
        i.profile.backend = "portsip";
        i.profile.attrs = i.profile.attrs.without(Attr::Country).with(Attr::Extension);
        i.profile.create_needs = AttrSet::of(&[Attr::DisplayName, Attr::Extension]);
    };
    let mut carol = spec("erin.new@contoso.com", 2);
    carol.display_name = Field::Set("Carol".into());
    carol.extension = Field::Set("103".into());
    let specs = [carol.clone()];
    let mut i = input(&specs, &snap);
    portsip(&mut i);
    let p = make_plan(i).unwrap();
    let up = user(&p, "erin.new@contoso.com");
    assert_eq!(kinds(up), vec!["create"]);
    assert!(matches!(up.ops[0].op, Operation::Create { .. }));
    assert!(up.ops[0].op.sets(Attr::Country).is_none());
    assert!(up.changes.iter().any(|c| c.field == "extension"));
    assert!(!up.changes.iter().any(|c| c.field == "country"));

    let mut no_ext = carol.clone();
    no_ext.extension = Field::Keep;
    let mut with_country = carol.clone();
    with_country.upn = upn("frank.new@contoso.com");
    with_country.country = Field::Set(be());
    let specs = [no_ext, with_country];
    let mut i = input(&specs, &snap);
    portsip(&mut i);
    let errs = errors(make_plan(i));
    let cols: Vec<_> = errs.iter().map(|e| e.column.as_deref()).collect();
    assert_eq!(cols, vec![Some("extension"), Some("country")], "{errs:?}");

    // Fusion has no extension: the column is refused, not dropped.
    let mut s = spec("alice@contoso.com", 2);
    s.extension = Field::Set("101".into());
    let errs = errors(plan(&[s], &snap));
    assert_eq!(errs[0].column.as_deref(), Some("extension"));
    assert!(errs[0]
        .message
        .contains("fusion backend cannot set extension"));
}

fn ranged(snap: &mut Snapshot, name: &str, free: &[&str]) {
    snap.number_ranges.push(crate::model::NumberRange {
        name: name.into(),
        numbers_free: free.iter().map(|n| num(n)).collect(),
    });
}

#[test]
fn auto_number_takes_the_lowest_free_number_not_named_elsewhere() {
    let mut snap = snapshot();
    ranged(
        &mut snap,
        "BE-Brussels",
        &["+3225405290", "+3225405291", "+3225405292"],
    );
    // carol has no number: auto. alice already holds one: keeps it. eve names +…290.
    let mut carol = spec("carol@contoso.com", 2);
    carol.number_range = Some("be-brussels".into());
    let mut alice = spec("alice@contoso.com", 3);
    alice.number_range = Some("BE-Brussels".into());
    let mut dave = spec("dave@contoso.com", 4);
    dave.number = Field::Set(num("+3225405290"));
    let specs = [carol, alice, dave];
    let mut i = input(&specs, &snap);
    i.profile.number_ranges = true;
    let p = make_plan(i).unwrap();
    let c = user(&p, "carol@contoso.com");
    assert_eq!(
        effect(&c.ops[0].op),
        Operation::set_number(Some(num("+3225405291")))
    );
    assert_eq!(c.desired.number, Field::Set(num("+3225405291")));
    assert!(user(&p, "alice@contoso.com").ops.is_empty());
    // Re-planned after the apply: nothing left to do, and the same choice is not made twice.
    let after = apply_to(&snap, &p);
    let mut carol2 = spec("carol@contoso.com", 2);
    carol2.number_range = Some("BE-Brussels".into());
    let mut i2 = input(std::slice::from_ref(&carol2), &after);
    i2.profile.number_ranges = true;
    let p2 = make_plan(i2).unwrap();
    assert_eq!(ops_total(&p2), 0);
}

#[test]
fn auto_number_errors_name_the_row_and_the_reason() {
    let mut snap = snapshot();
    ranged(&mut snap, "Small", &["+3225405290"]);
    let auto = |u: &str, row: u64, range: &str| {
        let mut s = spec(u, row);
        s.number_range = Some(range.into());
        s
    };
    let specs = [
        auto("carol@contoso.com", 2, "Small"),
        auto("new1@contoso.com", 3, "Small"),
        auto("new2@contoso.com", 4, "Nowhere"),
    ];
    let mut i = input(&specs, &snap);
    i.profile.number_ranges = true;
    let errs = errors(make_plan(i));
    let msgs: Vec<String> = errs.iter().map(std::string::ToString::to_string).collect();
    assert!(
        errs.iter()
            .any(|e| e.row == Some(3) && e.message.contains("no free number left")),
        "{msgs:?}"
    );
    assert!(
        errs.iter().any(|e| e.row == Some(4)
            && e.column.as_deref() == Some("number")
            && e.message
                .contains("unknown number range \"Nowhere\" (known: Small)")),
        "{msgs:?}"
    );
    // A backend without ranges refuses `auto` outright.
    let specs = [auto("carol@contoso.com", 2, "Small")];
    let errs = errors(plan(&specs, &snap));
    assert!(
        errs[0].message.contains("the fusion backend has none"),
        "{errs:?}"
    );
}

fn no_admin(s: &UserSpec) -> Vec<crate::model::RowProblem> {
    if s.upn.local_part() == "admin" {
        vec![crate::model::RowProblem {
            column: "upn",
            message: "admin is reserved".into(),
        }]
    } else {
        vec![]
    }
}

/// A PortSIP-like profile: row rules, a create-only extension, no groups or country.
fn pbx_profile() -> Profile {
    Profile {
        write: true,
        create: true,
        attrs: AttrSet::of(&[Attr::DisplayName, Attr::Number, Attr::Extension]),
        create_needs: AttrSet::of(&[Attr::DisplayName, Attr::Extension]),
        create_only: AttrSet::of(&[Attr::Extension]),
        row_rules: no_admin,
        ..Profile::read_only("pbx")
    }
}

/// Every backend rule comes from the profile and is checked in one pass: a sheet breaking
/// the row rules, the carried attributes and a create-only attribute gets every error at
/// once, and the tenant-independent ones are also found without a snapshot.
#[test]
fn every_backend_rule_is_reported_in_one_pass() {
    let mut snap = snapshot();
    snap.users[0].extension = Some("101".into());
    let mut admin = spec("admin@contoso.com", 2);
    admin.display_name = Field::Set("Admin".into());
    admin.extension = Field::Set("100".into());
    let mut alice = spec("alice@contoso.com", 3);
    alice.extension = Field::Set("102".into());
    let mut bob = spec("bob@contoso.com", 4);
    bob.groups = Field::Set(strs(&["Sales"]));
    let specs = [admin, alice, bob];
    let mut i = input(&specs, &snap);
    i.profile = pbx_profile();
    let errs = errors(make_plan(i));
    let got: Vec<(Option<u64>, Option<&str>)> =
        errs.iter().map(|e| (e.row, e.column.as_deref())).collect();
    assert_eq!(
        got,
        [
            (Some(2), Some("upn")),
            (Some(3), Some("extension")),
            (Some(4), Some("groups"))
        ],
        "{errs:?}"
    );
    assert!(
        errs[1].message.contains("has extension 101 in pbx"),
        "{errs:?}"
    );
    let early = check_rows(&specs, JobKind::MsUsers, &pbx_profile());
    let got: Vec<(Option<u64>, Option<&str>)> =
        early.iter().map(|e| (e.row, e.column.as_deref())).collect();
    assert_eq!(got, [(Some(2), Some("upn")), (Some(4), Some("groups"))]);
    // The same extension, or none, is fine.
    let mut alice = spec("alice@contoso.com", 3);
    alice.extension = Field::Set("101".into());
    let specs = [alice];
    let mut i = input(&specs, &snap);
    i.profile = pbx_profile();
    assert_eq!(ops_total(&make_plan(i).unwrap()), 0);
}

/// Detail reads follow the profile: a backend whose list carries everything reads none.
#[test]
fn detail_upns_follow_the_profiles_detail_reads() {
    let mut g = spec("a@contoso.com", 2);
    g.groups = Field::Set(strs(&["Sales"]));
    let mut d = spec("b@contoso.com", 3);
    d.action = RowAction::Disable;
    let specs = [g, d];
    assert_eq!(detail_upns(&specs, &profile()).len(), 2);
    let vrp_only = Profile {
        detail_reads: AttrSet::of(&[Attr::Vrp]),
        ..profile()
    };
    assert_eq!(
        detail_upns(&specs, &vrp_only),
        vec![upn("b@contoso.com")],
        "groups are not a detail here; a disable still releases the VRP"
    );
    assert!(detail_upns(&specs, &pbx_profile()).is_empty());
}

/// Rows that touch every attribute Fusion carries, and a delete, a disable and a create.
fn every_kind_of_row() -> Vec<UserSpec> {
    let mut a = spec("alice@contoso.com", 2);
    a.display_name = Field::Set("Alice Smith".into());
    a.number = Field::Set(num("+3225405210"));
    a.vrp = Field::Set("World-DRaaS".into());
    a.groups = Field::Set(strs(&["Sales"]));
    a.licenses = Field::Set(strs(&["MCOEV"]));
    a.customer_licenses = Field::Clear;
    let mut b = spec("bob@contoso.com", 3);
    b.action = RowAction::Delete;
    let mut c = spec("dave@contoso.com", 4);
    c.action = RowAction::Disable;
    let mut n = spec("new@contoso.com", 5);
    n.display_name = Field::Set("New Person".into());
    n.country = Field::Set(be());
    n.licenses = Field::Set(strs(&["MCOEV"]));
    n.number = Field::Set(num("+3225405250"));
    let mut g = spec("carol@contoso.com", 6);
    g.country = Field::Set(Country::parse("NL").unwrap());
    vec![a, b, c, n, g]
}

/// Format 1 built the record a plan depends on field by field; the table-driven record
/// is the same JSON, so plans saved in format 1 keep their fingerprint and apply.
#[test]
fn format_one_fingerprints_are_unchanged() {
    fn sorted_lower(v: &[String]) -> Vec<String> {
        let s: std::collections::BTreeSet<String> =
            v.iter().map(|x| x.trim().to_lowercase()).collect();
        s.into_iter().collect()
    }
    // Format 1's `user_record`, as it was.
    fn legacy(up: &UserPlan, tu: Option<&TenantUser>) -> serde_json::Value {
        use serde_json::json;
        let Some(t) = tu else {
            return json!({"upn": up.upn, "absent": true});
        };
        let d = &up.desired;
        let all = d.action == RowAction::Delete;
        let mut r = json!({
            "upn": t.upn,
            "id": t.id,
            "number": t.number.as_ref().map(std::string::ToString::to_string),
            "accountType": t.account_type,
        });
        if all || !d.display_name.is_keep() {
            r["displayName"] = json!(t.display_name);
        }
        if all || !d.country.is_keep() {
            r["country"] = json!(t.country);
        }
        if all || !d.licenses.is_keep() || !d.number.is_keep() {
            r["licenses"] = json!(sorted_lower(&t.licenses));
        }
        if all || !d.customer_licenses.is_keep() {
            r["customerLicenses"] = json!(sorted_lower(&t.customer_licenses));
        }
        if !d.groups.is_keep() || up.before.contains_key("groups") {
            r["groups"] = json!(t.details.as_ref().map(|x| sorted_lower(&x.groups)));
        }
        if !d.vrp.is_keep() || up.before.contains_key("vrp") {
            r["vrp"] = json!(t
                .details
                .as_ref()
                .map(|x| x.vrp.as_ref().map(|v| v.to_lowercase())));
        }
        r
    }
    let mut snap = snapshot();
    snap.users[3].details = None; // dave: a disable that must read details, below
    let p = plan(&every_kind_of_row()[..2], &snap).unwrap();
    let mut users = p.users.clone();
    let kept = [alice_full(2)];
    let mut i = input(&kept, &snap);
    i.mode = Mode::Mirror;
    i.allow_removals = Some(10);
    users.extend(make_plan(i).unwrap().users);
    for up in &users {
        let tu = snap.users.iter().find(|u| u.upn == up.upn);
        assert_eq!(saved::user_record(up, tu), legacy(up, tu), "{}", up.upn);
    }
    let snap = snapshot();
    let p = plan(&every_kind_of_row(), &snap).unwrap();
    for up in &p.users {
        let tu = snap.users.iter().find(|u| u.upn == up.upn);
        assert_eq!(saved::user_record(up, tu), legacy(up, tu), "{}", up.upn);
    }
}

/// An operation as format 1 wrote it: one shape per kind.
fn legacy_op(op: &Operation) -> serde_json::Value {
    use serde_json::json;
    let v = |a: Attr| op.sets(a).map(|v| v.as_ref().map(AttrValue::to_json));
    match op {
        Operation::Delete => json!({"op": "delete"}),
        Operation::Create { .. } => json!({"op": "create",
            "display_name": v(Attr::DisplayName).flatten(),
            "country": v(Attr::Country).flatten()}),
        Operation::Set { .. } => {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), json!(op.kind()));
            for (key, attr) in [
                ("display_name", Attr::DisplayName),
                ("country", Attr::Country),
                ("sku_ids", Attr::Licenses),
                ("number", Attr::Number),
                ("vrp", Attr::Vrp),
                ("group_ids", Attr::Groups),
                ("skus", Attr::CustomerLicenses),
            ] {
                if let Some(x) = v(attr) {
                    m.insert(key.into(), x.unwrap_or(serde_json::Value::Null));
                }
            }
            serde_json::Value::Object(m)
        }
    }
}

/// A plan saved by format 1 loads: its operations read as the same changes (with
/// `before` unknown), and against the same tenant it passes the drift check.
#[test]
fn format_one_plans_still_load() {
    let snap = snapshot();
    let p = plan(&every_kind_of_row(), &snap).unwrap();
    let mut v = serde_json::to_value(&p).unwrap();
    v["format"] = serde_json::json!(1);
    for (u, up) in v["users"].as_array_mut().unwrap().iter_mut().zip(&p.users) {
        for (o, planned) in u["ops"].as_array_mut().unwrap().iter_mut().zip(&up.ops) {
            let mut old = legacy_op(&planned.op);
            for k in ["after", "awaited"] {
                if let Some(x) = o.get(k) {
                    old[k] = x.clone();
                }
            }
            *o = old;
        }
    }
    assert!(v.to_string().contains("\"group_ids\""), "{v}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan-v1.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let q = load(&path).unwrap();
    for (a, b) in q.users.iter().zip(&p.users) {
        let ea: Vec<Operation> = a.ops.iter().map(|o| effect(&o.op)).collect();
        let eb: Vec<Operation> = b.ops.iter().map(|o| effect(&o.op)).collect();
        assert_eq!(ea, eb, "{}", a.upn);
        assert_eq!(a.changes, b.changes);
    }
    assert_eq!(check_drift(&q, &snap), Ok(()));
}

/// Operations carry what the tenant held and what it will hold: the before of each
/// change, and for lists the members added and removed, for backends that write deltas.
#[test]
fn operations_carry_before_and_after() {
    let snap = snapshot();
    let p = plan(&every_kind_of_row(), &snap).unwrap();
    let a = user(&p, "alice@contoso.com");
    let groups = a
        .ops
        .iter()
        .find_map(|o| o.op.change(Attr::Groups))
        .unwrap();
    assert_eq!(groups.before, Some(Some(AttrValue::List(strs(&["g-all"])))));
    assert_eq!(groups.after, Some(AttrValue::List(strs(&["g-sales"]))));
    assert_eq!(groups.delta(), Some((vec!["g-sales"], vec!["g-all"])));
    let lic = a
        .ops
        .iter()
        .find_map(|o| o.op.change(Attr::Licenses))
        .unwrap();
    assert_eq!(lic.delta(), Some((vec![], vec!["lic-std"])));
    let number = a
        .ops
        .iter()
        .find_map(|o| o.op.change(Attr::Number))
        .unwrap();
    assert_eq!(
        number.before,
        Some(Some(AttrValue::Number(num("+3225405200"))))
    );
    // Properties change together: one operation, two changes.
    let props = &a.ops[0].op;
    assert_eq!(props.kind(), "set_properties");
    assert_eq!(props.attrs(), AttrSet::of(&[Attr::DisplayName]));
    // A create starts from nothing; its own values are the create's.
    let n = user(&p, "new@contoso.com");
    assert_eq!(
        n.ops[0].op.attrs(),
        AttrSet::of(&[Attr::DisplayName, Attr::Country])
    );
    let lic = n.ops[1].op.change(Attr::Licenses).unwrap();
    assert_eq!(lic.delta(), Some((vec!["lic-ev"], vec![])));
    // A mirror removal never read its VRP: its before is unknown, so no delta.
    let mut s = snapshot();
    s.users[3].details = None;
    let kept = [alice_full(2)];
    let mut i = input(&kept, &s);
    i.mode = Mode::Mirror;
    i.allow_removals = Some(10);
    let m = make_plan(i).unwrap();
    let d = user(&m, "dave@contoso.com");
    let vrp = d.ops.iter().find_map(|o| o.op.change(Attr::Vrp)).unwrap();
    assert_eq!((vrp.before.clone(), vrp.after.clone()), (None, None));
    // The JSON form names attributes: `set` and `before`.
    let j = serde_json::to_value(&a.ops).unwrap();
    assert_eq!(j[2]["op"], "set_number");
    assert_eq!(j[2]["set"]["number"], "+3225405210");
    assert_eq!(j[2]["before"]["number"], "+3225405200");
    let back: Vec<PlannedOp> = serde_json::from_value(j).unwrap();
    assert_eq!(back, a.ops);
}

/// A hand-edited operation whose kind does not match what it sets is refused, not run.
#[test]
fn an_operation_must_match_its_kind() {
    let bad = serde_json::json!({"op": "set_number", "set": {"vrp": null}});
    assert!(serde_json::from_value::<Operation>(bad).is_err());
    let bad = serde_json::json!({"op": "set_number", "set": {"number": 12}});
    assert!(serde_json::from_value::<Operation>(bad).is_err());
    let bad = serde_json::json!({"op": "set_nothing", "number": null});
    assert!(serde_json::from_value::<Operation>(bad).is_err());
}

/// A PortSIP-like create carries its extension (the request needs it), not the row.
#[test]
fn a_create_carries_the_values_its_request_needs() {
    let snap = snapshot();
    let mut e = spec("erin.new@contoso.com", 2);
    e.display_name = Field::Set("Erin".into());
    e.extension = Field::Set("0105".into());
    e.number = Field::Set(num("+3225405260"));
    let specs = [e];
    let mut i = input(&specs, &snap);
    i.profile = pbx_profile();
    let p = make_plan(i).unwrap();
    let u = user(&p, "erin.new@contoso.com");
    assert_eq!(kinds(u), ["create", "set_number"]);
    assert_eq!(u.ops[0].op.sets_text(Attr::Extension), Some("0105"));
    assert_eq!(u.ops[0].op.sets_text(Attr::DisplayName), Some("Erin"));
}

/// A number libphonenumber calls invalid is planned only when the tenant holds it or
/// offers it in a range (UMP's `+311111120` test range); any other is a plan error.
#[test]
fn invalid_numbers_only_when_the_tenant_holds_or_offers_them() {
    let mut snap = snapshot();
    snap.users[0].number = Some(num("+311111120"));
    snap.number_ranges = vec![crate::model::NumberRange {
        name: "R".into(),
        numbers_free: vec![num("+311111121")],
    }];
    // Held by alice (who keeps it), offered to bob: both fine.
    let mut a = spec("alice@contoso.com", 2);
    a.number = Field::Set(num("+311111120"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+311111121"));
    let p = plan(&[a.clone(), b.clone()], &snap).unwrap();
    assert_eq!(kinds(user(&p, "bob@contoso.com")), ["set_number"]);
    // Neither held nor offered: refused, with the row's country.
    let mut c = spec("dave@contoso.com", 4);
    c.number = Field::Set(num("+311111199"));
    c.country = Field::Set(Country::parse("NL").unwrap());
    let e = errors(plan(&[a, b, c], &snap));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].row, e[0].column.as_deref()),
        (Some(4), Some("number"))
    );
    assert!(
        e[0].message.contains("+311111199 is not a valid phone number (country NL), and it is not a number the tenant holds or offers in a number range"),
        "{}",
        e[0].message
    );
    assert!(numbers::is_valid_number(&num("+3225405200")));
    assert!(!numbers::is_valid_number(&num("+311111120")));
    // Another country's number: fine where the tenant holds it, an error otherwise.
    let mut e = spec("erin@contoso.com", 6);
    e.number = Field::Set(num("+33140201234"));
    e.country = Field::Set(be());
    e.display_name = Field::Set("Erin".into());
    let errs = errors(plan(&[e.clone()], &snap));
    assert!(
        errs.iter().any(|d| d.message.contains("+33140201234 is a FR number, not valid for the row's country BE, and it is not a number the tenant holds")),
        "{errs:?}"
    );
    snap.users[1].number = Some(num("+33140201234"));
    let mut b = spec("bob@contoso.com", 3);
    b.number = Field::Set(num("+33140201234"));
    b.country = Field::Set(be());
    assert!(plan(&[b], &snap).is_ok());
}

/// A number held by an account no sheet row can address (a PortSIP user without an
/// email) is never given to anyone else.
#[test]
fn a_number_held_outside_the_listed_users_cannot_be_claimed() {
    let mut snap = snapshot();
    snap.held_elsewhere = vec![crate::model::HeldNumber {
        number: num("+3225405299"),
        holder: "PortSIP user 7 (\"frontdesk\", no email)".into(),
    }];
    let mut c = spec("carol@contoso.com", 5);
    c.number = Field::Set(num("+3225405299"));
    let e = errors(plan(&[c], &snap));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("+3225405299 is held by PortSIP user 7 (\"frontdesk\", no email), which no sheet row can address"),
        "{}",
        e[0].message
    );
}
