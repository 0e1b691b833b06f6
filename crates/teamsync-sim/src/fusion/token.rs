//! Continuation tokens of `GET users`.
//!
//! The document warns that a `next` token is only valid with the `page_size` and `search` of
//! the query that returned it. To make a client that ignores this fail here as it would on
//! the real server, the token carries (HMAC-SHA256 signed) the position and every parameter
//! it was issued for: `page_size`, `search`, `group` and `filters`; a token used with any other
//! value, or altered, is a 400. The key is kept in the state store, so tokens survive a restart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token is bound to, plus where the next page starts (after this user id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub after: String,
    pub page_size: u32,
    pub search: Option<String>,
    pub group: Option<String>,
    pub filters: Option<String>,
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

pub fn issue(key: &[u8], c: &Cursor) -> String {
    let payload = serde_json::to_vec(c).unwrap_or_default();
    let mut out = hmac(key, &payload).to_vec();
    out.extend_from_slice(&payload);
    URL_SAFE_NO_PAD.encode(out)
}

/// The cursor of a genuine token; None for anything forged, truncated or foreign.
pub fn open(key: &[u8], token: &str) -> Option<Cursor> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    if raw.len() < 32 {
        return None;
    }
    let (mac, payload) = raw.split_at(32);
    let want = hmac(key, payload);
    // Constant-time comparison: no early exit on the first differing byte.
    let diff = mac
        .iter()
        .zip(want.iter())
        .fold(0u8, |a, (x, y)| a | (x ^ y));
    if diff != 0 {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let c = Cursor {
            after: "abc".into(),
            page_size: 10,
            search: Some("al".into()),
            group: None,
            filters: None,
        };
        let t = issue(b"k1", &c);
        assert_eq!(open(b"k1", &t), Some(c));
        assert_eq!(open(b"k2", &t), None);
        let mut bad = t.into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(b"k1", &String::from_utf8(bad).unwrap()), None);
        assert_eq!(open(b"k1", "not a token"), None);
    }
}
