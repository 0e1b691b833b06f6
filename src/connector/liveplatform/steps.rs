//! What Live Platform is sent: nothing. teamsync reads it to audit a sheet (`plan`), and
//! the profile says it cannot write, so `apply`, `sync` and `resume` refuse before any
//! request; a step reaching the connector anyway is refused again here.

use crate::connector::{ConnectorError, Step};
use crate::plan::model::UserPlan;

/// No operation has a request.
pub fn group(_user: &UserPlan) -> Vec<Step> {
    Vec::new()
}

/// The answer to any send.
pub fn refuse() -> ConnectorError {
    ConnectorError::Unsupported(
        "AudioCodes Live Platform is read-only in teamsync (audit with `teamsync plan`)".into(),
    )
}
