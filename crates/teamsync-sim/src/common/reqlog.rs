//! The log of every API request the simulator received, for tests: they count the writes a
//! job sent and check that none arrived before a `Retry-After` expired.

use std::collections::VecDeque;

use serde::Serialize;

/// Entries kept at most; the oldest go first. Tests clear the log between phases.
pub const LOG_CAP: usize = 200_000;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub method: String,
    pub path: String,
    /// Raw query string, None when the URL has none.
    pub query: Option<String>,
    /// Arrival time, UTC RFC 3339 with milliseconds.
    pub time: String,
    /// The status sent; None when the connection was closed without an answer.
    pub status: Option<u16>,
    /// Whether the answer was an injected fault (500, 503, drop or lost answer).
    pub fault: bool,
    /// `"500"`, `"503"`, `"drop"` or `"lost_answer"` for faults; None otherwise.
    pub fault_kind: Option<String>,
    /// The `Retry-After` seconds of a 429, so tests can check that nothing arrived before
    /// it expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<Entry>,
}

impl RequestLog {
    pub fn push(&mut self, e: Entry) {
        if self.entries.len() >= LOG_CAP {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
    }
    pub fn snapshot(&self) -> Vec<Entry> {
        self.entries.iter().cloned().collect()
    }
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
