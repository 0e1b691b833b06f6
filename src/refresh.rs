//! Incremental refresh (`--refresh incremental`, the tenant key `refresh`): which users'
//! details (groups, VRP: only the single-user read returns them on Fusion, Graph and UMP)
//! a snapshot may take from the history instead of reading them again.
//!
//! A nightly run of a large tenant otherwise reads every user whose row touches a detail
//! attribute, one request each, to plan a handful of changes. Terraform's
//! `-refresh=false` trusts its state without limit; this trusts the last verified read
//! (`user_reads`, written after a snapshot's detail read and after a read-back that proved
//! the user matches) only while it is bounded:
//! - the user's listed fields (as tonight's list shows them) and desired row are the ones
//!   the read was made with;
//! - the read is at most [`MAX_AGE_DAYS`] old;
//! - the user is not in tonight's rotating share ([`in_rotation`]), so an edit made
//!   outside teamsync is found within a cycle (7 nights by default) even when nothing else
//!   changed;
//! - the plan made from trusted details has nothing to do for the user: a user the plan
//!   would change is read again and planned from that read (`crate::run::tenant`), so a
//!   write is never based on a stored read.

use crate::history::UserRead;
use crate::model::{TenantUser, UserDetails, UserSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A stored read older than this is never trusted, whatever the rotation says.
pub const MAX_AGE_DAYS: i64 = 7;

/// The default share of the tenant read again every night: one seventh, so every user is
/// read within a week.
pub const DEFAULT_SHARE: f64 = 1.0 / 7.0;

/// How a snapshot gets the users' details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RefreshMode {
    /// Read every user the plan needs details of (the default).
    #[default]
    Full,
    /// Trust the history's last verified read where it is still valid.
    Incremental,
}

impl RefreshMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshMode::Full => "full",
            RefreshMode::Incremental => "incremental",
        }
    }
}

/// What a plan's refresh did, shown in its header (human and JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshReport {
    pub mode: RefreshMode,
    /// Users whose details the plan needed.
    pub users: u64,
    /// Of those, the ones whose details came from the history.
    pub trusted: u64,
    /// Of those, the ones read tonight (single-user reads).
    pub read: u64,
}

/// The length, in nights, of the rotation for `share` (a fraction of the tenant read
/// every night): every user is read once per cycle. `share` is checked to be in (0, 1]
/// by the config; anything else reads everyone every night.
pub fn cycle_nights(share: f64) -> u64 {
    if share.is_finite() && share > 0.0 && share < 1.0 {
        // At most a year: a share that small is a mistake, not a schedule.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 1..=366 first"
        )]
        let n = (1.0 / share).ceil().clamp(1.0, 366.0) as u64;
        n
    } else {
        1
    }
}

/// A stable number for `upn` (SHA-256, so it is the same on every machine and build).
fn upn_hash(upn: &str) -> u64 {
    let d = Sha256::digest(upn.to_lowercase().as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Whether `upn` is in the share read again on `day` (days since 1970-01-01, UTC): the
/// users whose hash falls on the day's place in the cycle. Over any `cycle_nights(share)`
/// consecutive days, every user is in exactly one night's share.
pub fn in_rotation(upn: &str, day: i64, share: f64) -> bool {
    let n = cycle_nights(share);
    let place = u64::try_from(day.rem_euclid(i64::try_from(n).unwrap_or(1))).unwrap_or(0);
    upn_hash(upn) % n == place
}

/// Days since 1970-01-01 of `t` (UTC).
pub fn day_number(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// Whether a read made at `read_on` (RFC 3339) may still be trusted at `now`: not in the
/// future (a clock that went back) and at most [`MAX_AGE_DAYS`] old. An unreadable time is
/// not trusted.
pub fn fresh_enough(read_on: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(read_on) else {
        return false;
    };
    let age = now.signed_duration_since(t.with_timezone(&chrono::Utc));
    age >= chrono::Duration::zero() && age <= chrono::Duration::days(MAX_AGE_DAYS)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Fingerprint of what the tenant's list shows of a user (name, location, licenses,
/// number, and the rest of what the list carries): when it differs from the stored read's,
/// the user changed since and is read again. Lists are sorted, so an order the backend
/// does not keep changes nothing.
pub fn listed_fingerprint(u: &TenantUser) -> String {
    let mut licenses = u.licenses.clone();
    licenses.sort();
    let mut customer = u.customer_licenses.clone();
    customer.sort();
    let v = serde_json::json!({
        "id": u.id,
        "name": u.display_name,
        "country": u.country,
        "voice": u.voice_enabled,
        "number": u.number,
        "licenses": licenses,
        "customerLicenses": customer,
        "accountType": u.account_type,
        "extension": u.extension,
    });
    sha(v.to_string().as_bytes())
}

/// Fingerprint of the row (after templates) a user is planned from: a changed row is read
/// again, since what it asks may depend on details the stored read did not compare.
pub fn desired_fingerprint(s: &UserSpec) -> String {
    let mut s = s.clone();
    // Where the row came from is not what it asks for.
    s.origin = None;
    sha(serde_json::to_string(&s).unwrap_or_default().as_bytes())
}

/// The record of a verified read of `user` (which must carry its details), planned from
/// `desired`. `None` when the read had no details.
pub fn record(
    user: &TenantUser,
    desired: Option<&UserSpec>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<UserRead> {
    let details = user.details.as_ref()?;
    Some(UserRead {
        upn: user.upn.as_str().to_string(),
        listed: listed_fingerprint(user),
        desired: desired.map(desired_fingerprint),
        details: serde_json::to_string(details).ok()?,
        read_on: crate::history::rfc3339(now),
    })
}

/// Tonight's rule for one user: the stored details when `stored` may be trusted for
/// `listed` (tonight's list entry) and `desired` at `now`, else `None` (read it).
pub fn trusted(
    stored: Option<&UserRead>,
    listed: &TenantUser,
    desired: &UserSpec,
    now: chrono::DateTime<chrono::Utc>,
    share: f64,
) -> Option<UserDetails> {
    let r = stored?;
    if in_rotation(listed.upn.as_str(), day_number(now), share)
        || !fresh_enough(&r.read_on, now)
        || r.listed != listed_fingerprint(listed)
        || r.desired.as_deref() != Some(desired_fingerprint(desired).as_str())
    {
        return None;
    }
    serde_json::from_str(&r.details).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Upn;
    use chrono::TimeZone;

    fn at(day: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.timestamp_opt(day * 86_400 + 3600, 0).unwrap()
    }

    #[test]
    fn every_user_is_read_once_within_a_cycle() {
        let upns: Vec<String> = (0..2000).map(|i| format!("user{i}@contoso.com")).collect();
        for share in [DEFAULT_SHARE, 0.5, 0.25, 1.0] {
            let n = cycle_nights(share);
            for start in [0_i64, 20_000, 20_426] {
                for u in &upns {
                    let nights = (start..start + i64::try_from(n).unwrap())
                        .filter(|d| in_rotation(u, *d, share))
                        .count();
                    assert_eq!(nights, 1, "{u} share {share} from day {start}");
                }
            }
        }
        assert_eq!(cycle_nights(DEFAULT_SHARE), 7);
        // About a seventh each night, not everyone on one night.
        let tonight = upns
            .iter()
            .filter(|u| in_rotation(u, 20_426, DEFAULT_SHARE))
            .count();
        assert!((200..=380).contains(&tonight), "{tonight}");
        // Case does not move a user to another night.
        assert_eq!(
            in_rotation("Ann@X.com", 5, DEFAULT_SHARE),
            in_rotation("ann@x.com", 5, DEFAULT_SHARE)
        );
    }

    #[test]
    fn staleness_is_bounded_to_seven_days() {
        let read = crate::history::rfc3339(at(100));
        assert!(fresh_enough(&read, at(100)));
        assert!(fresh_enough(&read, at(107)));
        assert!(!fresh_enough(&read, at(108)));
        // A read from the future (the clock went back) or unreadable is not trusted.
        assert!(!fresh_enough(&read, at(99)));
        assert!(!fresh_enough("yesterday", at(100)));
    }

    #[test]
    fn trust_needs_the_same_list_row_and_a_fresh_read_off_rotation() {
        let upn = Upn::parse("ann@contoso.com").unwrap();
        let mut user = TenantUser::new("1".into(), upn.clone());
        user.details = Some(UserDetails {
            groups: vec!["g".into()],
            vrp: Some("Intl".into()),
        });
        let spec = UserSpec::new(upn.clone());
        // A night off the user's rotation.
        let day = (0..7)
            .find(|d| !in_rotation(upn.as_str(), 100 + d, DEFAULT_SHARE))
            .unwrap()
            + 100;
        let stored = record(&user, Some(&spec), at(day - 1)).unwrap();
        let listed = TenantUser {
            details: None,
            ..user.clone()
        };
        let t =
            |l: &TenantUser, s: &UserSpec, now| trusted(Some(&stored), l, s, now, DEFAULT_SHARE);
        assert_eq!(t(&listed, &spec, at(day)), user.details.clone());
        // A listed field changed, the row changed, the read is too old, or it is the
        // user's night: read again.
        let renamed = TenantUser {
            display_name: "Ann B".into(),
            ..listed.clone()
        };
        assert_eq!(t(&renamed, &spec, at(day)), None);
        let mut other = spec.clone();
        other.display_name = crate::model::Field::Set("Ann".into());
        assert_eq!(t(&listed, &other, at(day)), None);
        let rotation = (day..day + 7)
            .find(|d| in_rotation(upn.as_str(), *d, DEFAULT_SHARE))
            .unwrap();
        assert_eq!(t(&listed, &spec, at(rotation)), None);
        assert_eq!(trusted(None, &listed, &spec, at(day), DEFAULT_SHARE), None);
        let old = record(&user, Some(&spec), at(day - 8)).unwrap();
        assert_eq!(
            trusted(Some(&old), &listed, &spec, at(day), DEFAULT_SHARE),
            None
        );
        // A read without details is nothing to trust.
        assert!(record(&listed, Some(&spec), at(day)).is_none());
    }
}
