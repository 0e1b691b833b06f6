//! The SRE group filter: `POST groups` replaces it ("delete and recreate"), `GET groups`
//! marks its groups with `filter: true` and lists its entries whose group no longer exists as
//! orphans, and once it holds anything the users list shows only users of its groups.
//!
//! Our readings: posted entries are stored as sent (id and displayName), without checking
//! that the group exists — the document's own example posts ids that are not even UUIDs, and
//! an entry whose group is gone is exactly what it calls an orphan; ids are compared
//! case-insensitively and a repeated id is kept once; an empty list removes the filter. The
//! filter narrows the users list only (not the single-user GET, the bulk or any write), and
//! orphan entries match no user, so a filter of orphans only lists nobody. Orphans come after
//! the tenant's groups, in filter order.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;

use super::error::{ApiError, Code};
use super::extract::{query_params, Body};
use super::state::{Tenant, User};
use super::wire::{GroupEntry, GroupRef, GroupsAnswer, PostGroupFilter};
use super::Shared;

impl Tenant {
    pub fn in_group_filter(&self, group_id: &str) -> bool {
        self.group_filter
            .iter()
            .any(|f| f.id.eq_ignore_ascii_case(group_id))
    }

    /// Whether the users list may show `u`: always without a filter, else only a member of
    /// one of its groups.
    pub fn passes_group_filter(&self, u: &User) -> bool {
        self.group_filter.is_empty() || u.groups.iter().any(|g| self.in_group_filter(g))
    }
}

/// `GET groups`.
pub async fn list(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<GroupsAnswer>, ApiError> {
    query_params(uri.query(), &[])?;
    Ok(Json(sh.read(|t| {
        let mut groups: Vec<GroupEntry> = t
            .groups
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.filter = t.in_group_filter(&g.id);
                GroupEntry::Group(g)
            })
            .collect();
        groups.extend(
            t.group_filter
                .iter()
                .filter(|f| t.group(&f.id).is_none())
                .map(|f| GroupEntry::Orphan {
                    display_name: f.display_name.clone(),
                    id: f.id.clone(),
                    orphan: true,
                }),
        );
        GroupsAnswer { groups }
    })))
}

/// `POST groups`: 204; the posted list becomes the whole filter.
pub async fn post(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
    Body(b): Body<PostGroupFilter>,
) -> Result<StatusCode, ApiError> {
    query_params(uri.query(), &[])?;
    let mut filter: Vec<GroupRef> = Vec::new();
    for (i, g) in b.groups.into_iter().enumerate() {
        let id = g.id.trim();
        let name = g.display_name.trim();
        if id.is_empty() || id.len() > 128 || name.is_empty() || name.chars().count() > 256 {
            return Err(ApiError::bad(
                Code::BadValue,
                format!(
                    "groups[{i}]: id (1 to 128 characters) and displayName (1 to 256) are required"
                ),
            ));
        }
        if !filter.iter().any(|f| f.id.eq_ignore_ascii_case(id)) {
            filter.push(GroupRef {
                display_name: name.to_string(),
                id: id.to_string(),
            });
        }
    }
    sh.write(|_, change| {
        change.group_filter = Some(filter);
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
