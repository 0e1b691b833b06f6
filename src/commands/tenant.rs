//! `teamsync tenant …`: read the tenant as it is now, or export it as an input sheet.

use super::run::render_run_error;
use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::{SheetFormat, TenantCommand};
use crate::connect::Tenant;
use crate::model::attr::Catalog;
use crate::model::{
    AccountType, Attr, AttrValue, Catalogs, JobKind, Profile, Snapshot, TenantUser, E164,
};
use crate::report::sheet_out;
use crate::run::{connector_failure, open_tenant};

pub(super) async fn run(ctx: &Ctx, cmd: TenantCommand) -> CmdResult {
    let name = match &cmd {
        TenantCommand::Status { tenant }
        | TenantCommand::Users { tenant }
        | TenantCommand::Groups { tenant }
        | TenantCommand::Licenses { tenant }
        | TenantCommand::Vrps { tenant }
        | TenantCommand::Numbers { tenant }
        | TenantCommand::Export { tenant, .. } => tenant.clone(),
    };
    let tenant = open_tenant(&ctx.config, name.as_deref(), None)
        .await
        .map_err(|e| render_run_error(ctx, e))?;
    let result = dispatch(ctx, &tenant, cmd).await;
    tenant.close().await;
    result
}

async fn full_snapshot(tenant: &Tenant, details: bool) -> Result<Snapshot, CliError> {
    tenant
        .connector
        .snapshot(&[], details)
        .await
        .map_err(|e| CliError::Run(connector_failure(&tenant.name, e)))
}

async fn dispatch(ctx: &Ctx, tenant: &Tenant, cmd: TenantCommand) -> CmdResult {
    match cmd {
        TenantCommand::Status { .. } => {
            let st = tenant
                .connector
                .check()
                .await
                .map_err(|e| render_run_error(ctx, connector_failure(&tenant.name, e)))?;
            if ctx.json() {
                print_json(
                    "tenant-status",
                    serde_json::json!({"tenant": tenant.name, "backend": tenant.connector.backend(), "ok": st.ok, "details": st.details}),
                )?;
            } else {
                outln!("tenant   {} ({})", tenant.name, tenant.connector.backend())?;
                outln!("status   {}", if st.ok { "ok" } else { "NOT READY" })?;
                if let Some(m) = st.details.as_object() {
                    for (k, v) in m {
                        outln!("{k:<8} {}", v)?;
                    }
                }
            }
            // A tenant that answers but reports a problem is a failed read of it.
            Ok(if st.ok { Exit::Done } else { Exit::Aborted })
        }
        TenantCommand::Users { .. } => {
            let mut snap = full_snapshot(tenant, false).await?;
            snap.users.sort_by(|a, b| a.upn.cmp(&b.upn));
            if ctx.json() {
                print_json("tenant-users", listed(tenant, "users", &snap.users))?;
            } else {
                outln!(
                    "{:<44} {:<28} {:<3} {:<16} LICENSES",
                    "UPN",
                    "DISPLAY NAME",
                    "CC",
                    "NUMBER"
                )?;
                for u in &snap.users {
                    outln!(
                        "{:<44} {:<28} {:<3} {:<16} {}",
                        u.upn,
                        truncate(&u.display_name, 28),
                        u.country
                            .as_ref()
                            .map_or("", super::super::model::Country::as_str),
                        u.number
                            .as_ref()
                            .map(std::string::ToString::to_string)
                            .unwrap_or_default(),
                        license_names(&snap.catalogs, &u.licenses).join(";")
                    )?;
                }
                errln!("{} users ({} requests)", snap.users.len(), snap.requests);
            }
            Ok(Exit::Done)
        }
        TenantCommand::Groups { .. } => {
            let snap = full_snapshot(tenant, false).await?;
            if ctx.json() {
                print_json(
                    "tenant-groups",
                    listed(tenant, "groups", &snap.catalogs.groups),
                )?;
            } else {
                outln!("{:<38} DISPLAY NAME", "ID")?;
                for g in &snap.catalogs.groups {
                    outln!("{:<38} {}", g.id, g.display_name)?;
                }
            }
            Ok(Exit::Done)
        }
        TenantCommand::Licenses { .. } => {
            let snap = full_snapshot(tenant, false).await?;
            if ctx.json() {
                print_json(
                    "tenant-licenses",
                    listed(tenant, "licenses", &snap.catalogs.licenses),
                )?;
            } else {
                outln!(
                    "{:<26} {:>7} {:>7}  {:<38} DESCRIPTION",
                    "SKU",
                    "FREE",
                    "TOTAL",
                    "SKU ID"
                )?;
                for l in &snap.catalogs.licenses {
                    outln!(
                        "{:<26} {:>7} {:>7}  {:<38} {}",
                        l.sku_part_number,
                        l.free,
                        l.total,
                        l.sku_id,
                        l.sku_description.as_deref().unwrap_or("")
                    )?;
                }
            }
            Ok(Exit::Done)
        }
        TenantCommand::Vrps { .. } => {
            let snap = full_snapshot(tenant, false).await?;
            if ctx.json() {
                print_json("tenant-vrps", listed(tenant, "vrps", &snap.catalogs.vrps))?;
            } else {
                for v in &snap.catalogs.vrps {
                    outln!(
                        "{:<28} {}",
                        v.identity,
                        v.description.as_deref().unwrap_or("")
                    )?;
                }
            }
            Ok(Exit::Done)
        }
        TenantCommand::Numbers { .. } => {
            let snap = full_snapshot(tenant, false).await?;
            if ctx.json() {
                print_json(
                    "tenant-numbers",
                    listed(tenant, "number_ranges", &snap.number_ranges),
                )?;
                return Ok(Exit::Done);
            }
            if snap.number_ranges.is_empty() {
                errln!(
                    "the {} backend lists no number ranges or free numbers: these are the numbers its users and accounts hold",
                    tenant.connector.backend()
                );
            } else {
                outln!("{:<52} {:>6}  NEXT FREE", "RANGE", "FREE")?;
                for r in &snap.number_ranges {
                    let next = r.numbers_free.first().map(std::string::ToString::to_string);
                    outln!(
                        "{:<52} {:>6}  {}",
                        r.name,
                        r.numbers_free.len(),
                        next.as_deref().unwrap_or("-")
                    )?;
                }
                outln!()?;
            }
            let mut held = numbers_in_use(&snap);
            held.sort();
            outln!("{:<24} HELD BY", "NUMBER IN USE")?;
            for (n, who) in &held {
                outln!("{:<24} {who}", n.to_string())?;
            }
            Ok(Exit::Done)
        }
        TenantCommand::Export {
            format,
            out,
            resource_accounts,
            ..
        } => {
            let snap = full_snapshot(tenant, true).await?;
            let kind = if resource_accounts {
                JobKind::MsResourceAccounts
            } else {
                JobKind::MsUsers
            };
            // A column the backend cannot plan (Live Platform's license criteria) would make
            // the exported sheet fail its own plan: it is left empty.
            let (header, rows) = export_rows(&snap, &tenant.connector.profile(), kind);
            let accounts = snap
                .users
                .iter()
                .filter(|u| u.account_type.is_some())
                .count();
            if accounts > 0 && !resource_accounts {
                errln!(
                    "{accounts} resource account(s) left out: `tenant export --resource-accounts` writes them as a resource-account sheet"
                );
            }
            let bytes = match format {
                SheetFormat::Csv => sheet_out::to_csv(&header, &rows),
                SheetFormat::Xlsx => {
                    if out.is_none() {
                        return Err(CliError::Invalid("--format xlsx needs --out FILE".into()));
                    }
                    sheet_out::to_xlsx(&header, &rows)?
                }
            };
            sheet_out::write_out(out.as_deref(), &bytes)?;
            if let Some(o) = &out {
                let what = if resource_accounts {
                    "resource accounts"
                } else {
                    "users"
                };
                errln!("{} {what} written to {}", rows.len(), o.display());
            }
            Ok(Exit::Done)
        }
    }
}

/// A list read from the tenant as a `--output json` document: the items under `key`,
/// with the tenant's name and backend.
fn listed(tenant: &Tenant, key: &str, items: &impl serde::Serialize) -> serde_json::Value {
    serde_json::json!({
        key: serde_json::to_value(items).unwrap_or_default(),
        "tenant": tenant.name,
        "backend": tenant.connector.backend(),
    })
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn license_names(c: &Catalogs, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            c.licenses
                .iter()
                .find(|l| l.sku_id.eq_ignore_ascii_case(id))
                .map_or_else(|| id.clone(), |l| l.sku_part_number.clone())
        })
        .collect()
}

/// The tenant as an input sheet: names rather than ids where the catalog knows them, so
/// the sheet is readable and plans to zero changes against the same tenant.
///
/// The columns are the attribute table's: every common attribute (left empty where the
/// backend cannot carry it, never `-`, so the sheet plans against the same backend without
/// capability errors) and the backend-specific ones this backend carries (PortSIP's
/// extension). A resource-account sheet (`kind`) holds the resource accounts, with their
/// `accountType` and the attributes resource accounts may hold.
pub(crate) fn export_rows(
    snap: &Snapshot,
    profile: &Profile,
    kind: JobKind,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let accounts = kind == JobKind::MsResourceAccounts;
    let attrs: Vec<Attr> = Attr::all()
        .filter(|a| a.info().common || profile.carries(*a))
        .filter(|a| !accounts || (a.info().resource_accounts && profile.carries(*a)))
        .collect();
    let mut header = vec!["upn"];
    if accounts {
        header.push("accountType");
    }
    header.extend(attrs.iter().map(|a| a.name()));
    let group_name = |id: &str| {
        let matches: Vec<_> = snap.catalogs.groups.iter().filter(|g| g.id == id).collect();
        match matches.first() {
            // Display names may be ambiguous; fall back to the id then.
            Some(g)
                if snap
                    .catalogs
                    .groups
                    .iter()
                    .filter(|o| o.display_name.eq_ignore_ascii_case(&g.display_name))
                    .count()
                    == 1 =>
            {
                g.display_name.clone()
            }
            _ => id.to_string(),
        }
    };
    let show = |attr: Attr, v: &AttrValue| match (attr.info().catalog, v) {
        (Some(Catalog::Groups), AttrValue::List(ids)) => ids
            .iter()
            .map(|g| group_name(g))
            .collect::<Vec<_>>()
            .join(";"),
        (Some(Catalog::Licenses), AttrValue::List(ids)) => {
            license_names(&snap.catalogs, ids).join(";")
        }
        _ => v.to_string(),
    };
    let cell = |u: &TenantUser, attr: Attr| -> String {
        // A backend's empty column, and an attribute that exists only for users with a
        // number (customer licenses in Fusion's draas object) on a user without one.
        if !profile.carries(attr) || (profile.need_number.contains(attr) && u.number.is_none()) {
            return String::new();
        }
        // A value the backend does not show (a Fusion resource account's VRP) is left
        // empty ("keep"), never `-`: the sheet must not clear what it could not read.
        let Some(value) = u.get(attr) else {
            return String::new();
        };
        let shown = value.map(|v| show(attr, &v)).unwrap_or_default();
        // An empty cell means "keep" to our reader, so an empty value is written as `-`
        // (clear) where the column can be cleared: the sheet then states the whole state,
        // and plans to zero changes against the same tenant. One that cannot be cleared
        // (a missing country) stays empty.
        if shown.is_empty() && attr.info().clearable {
            "-".to_string()
        } else {
            shown
        }
    };
    let rows = snap
        .users
        .iter()
        .filter(|u| u.account_type.is_some() == accounts)
        .map(|u| {
            let mut row = vec![u.upn.to_string()];
            if let Some(t) = u.account_type.filter(|_| accounts) {
                row.push(account_type_name(t).to_string());
            }
            row.extend(attrs.iter().map(|a| cell(u, *a)));
            row
        })
        .collect();
    (header, rows)
}

/// Every number the tenant shows in use, with its holder: users, resource accounts and
/// accounts no sheet can address.
fn numbers_in_use(snap: &Snapshot) -> Vec<(E164, String)> {
    let users = snap.users.iter().filter_map(|u| {
        let what = match u.account_type {
            Some(_) => "resource account ",
            None => "",
        };
        u.number.clone().map(|n| (n, format!("{what}{}", u.upn)))
    });
    let elsewhere = snap
        .held_elsewhere
        .iter()
        .map(|h| (h.number.clone(), h.holder.clone()));
    users.chain(elsewhere).collect()
}

/// The `accountType` cell of a resource account.
fn account_type_name(t: AccountType) -> &'static str {
    match t {
        AccountType::CallQueue => "call-queue",
        AccountType::AutoAttendant => "auto-attendant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrSet, GroupInfo, Upn, UserDetails};

    fn user(upn: &str, number: Option<&str>) -> TenantUser {
        TenantUser {
            display_name: "A".into(),
            voice_enabled: number.is_some(),
            number: number.map(|n| E164::parse_canonical(n).unwrap()),
            customer_licenses: vec!["CB".into()],
            details: Some(UserDetails {
                groups: vec!["g1".into()],
                vrp: None,
            }),
            extension: Some("0101".into()),
            ..TenantUser::new(upn.into(), Upn::parse(upn).unwrap())
        }
    }

    /// Columns come from the attribute table: common ones always (empty where the backend
    /// lacks them), backend-specific ones where the backend carries them.
    #[test]
    fn export_columns_follow_the_table_and_the_profile() {
        let snap = Snapshot {
            users: vec![user("a@x.com", Some("+3225405200")), user("b@x.com", None)],
            catalogs: Catalogs {
                groups: vec![GroupInfo {
                    id: "g1".into(),
                    display_name: "Sales".into(),
                }],
                ..Catalogs::default()
            },
            ..Snapshot::default()
        };
        let teams = Profile {
            attrs: AttrSet::ALL.without(Attr::Extension),
            need_number: AttrSet::of(&[Attr::CustomerLicenses]),
            ..Profile::read_only("teams")
        };
        let (header, rows) = export_rows(&snap, &teams, JobKind::MsUsers);
        assert_eq!(
            header.join(","),
            "upn,displayName,number,country,vrp,groups,licenses,customerLicenses"
        );
        assert_eq!(
            rows[0],
            ["a@x.com", "A", "+3225405200", "", "-", "Sales", "-", "CB"]
        );
        assert_eq!(rows[1][2], "-", "no number: cleared");
        assert_eq!(rows[1][7], "", "customer licenses need a number");
        let pbx = Profile {
            attrs: AttrSet::of(&[Attr::DisplayName, Attr::Number, Attr::Extension]),
            ..Profile::read_only("pbx")
        };
        let (header, rows) = export_rows(&snap, &pbx, JobKind::MsUsers);
        assert_eq!(header.last(), Some(&"extension"));
        assert_eq!(rows[0][8], "0101");
        assert_eq!(rows[0][5], "", "groups are not carried: empty, never -");
    }
}
