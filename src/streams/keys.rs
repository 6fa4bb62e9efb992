//! Stream keys: the secret a streamer pastes into OBS.
//!
//! A key reads `sk_<selector>_<secret>`: 8 random bytes of selector (hex) that find the row,
//! 32 random bytes of secret (base64url) of which only the SHA-256 is stored and compared in
//! constant time. A key is shown once, when created or rotated; afterwards only a masked form
//! (`sk_1a2b…`). Keys never appear in logs, URLs or HLS paths.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use subtle::ConstantTimeEq;
use uuid::Uuid;

const PREFIX: &str = "sk_";
const SELECTOR_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A freshly generated key, to be shown once.
pub struct NewStreamKey {
    pub key: String,
    selector: String,
    secret_hash: Vec<u8>,
}

impl fmt::Debug for NewStreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewStreamKey")
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl NewStreamKey {
    #[must_use]
    pub fn generate() -> Self {
        let mut selector = [0u8; SELECTOR_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut selector);
        rand::rng().fill_bytes(&mut secret);
        let selector = hex::encode(selector);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        Self {
            key: format!("{PREFIX}{selector}_{secret}"),
            secret_hash: hash(&secret),
            selector,
        }
    }

    /// Stores the key as the user's only one (replacing any earlier key).
    pub async fn save(
        &self,
        db: impl PgExecutor<'_>,
        user_id: Uuid,
    ) -> sqlx::Result<DateTime<Utc>> {
        super::db::save_key(db, user_id, &self.selector, &self.secret_hash).await
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The key as shown after creation: the prefix and the start of the selector.
#[must_use]
pub fn masked(selector: &str) -> String {
    format!("{PREFIX}{}…", &selector[..selector.len().min(4)])
}

/// A key as presented by a publisher, split into its parts.
struct PresentedKey<'a> {
    selector: &'a str,
    secret: &'a str,
}

impl<'a> PresentedKey<'a> {
    fn parse(key: &'a str) -> Option<Self> {
        let (selector, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
        let well_formed = selector.len() == SELECTOR_BYTES * 2
            && selector
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && !secret.is_empty()
            && secret.len() <= 64;
        well_formed.then_some(Self { selector, secret })
    }
}

/// Whose key this is, if it is a valid one.
pub async fn owner(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<Option<Uuid>> {
    let Some(presented) = PresentedKey::parse(key) else {
        return Ok(None);
    };
    let row = super::db::key_by_selector(db, presented.selector).await?;
    Ok(row.and_then(|(user_id, stored)| {
        bool::from(hash(presented.secret).ct_eq(&stored)).then_some(user_id)
    }))
}

/// The masked key and when it was made, if the user has one.
pub async fn current(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Option<(String, DateTime<Utc>)>> {
    let row = super::db::key_of(db, user_id).await?;
    Ok(row.map(|(selector, created_at)| (masked(&selector), created_at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = NewStreamKey::generate();
        let b = NewStreamKey::generate();
        assert_ne!(a.key, b.key);
        let parsed = PresentedKey::parse(&a.key).expect("parses");
        assert_eq!(parsed.selector, a.selector);
        assert_eq!(hash(parsed.secret), a.secret_hash);
        assert!(
            !format!("{a:?}").contains(&a.key[20..]),
            "Debug hides the secret"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in [
            "",
            "sk_",
            "sk_zz_secret",
            "sk_0123456789abcdef",
            "live_0123456789abcdef_x",
        ] {
            assert!(PresentedKey::parse(key).is_none(), "{key}");
        }
    }
}
