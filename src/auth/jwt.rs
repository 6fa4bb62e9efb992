//! Short-lived access tokens: HS256 JWTs carrying the user id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ACCESS_TOKEN_TTL;

const ISSUER: &str = "siaran";
const AUDIENCE: &str = "siaran-api";

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

/// Signing and verification keys, derived once from the configured secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Issues an access token for the user, valid for [`ACCESS_TOKEN_TTL`].
    #[must_use]
    pub fn issue(&self, user_id: Uuid) -> String {
        self.issue_at(user_id, SystemTime::now(), ACCESS_TOKEN_TTL)
    }

    /// Issues a token as if at `now`, valid for `ttl` (tests use it to mint expired tokens).
    #[must_use]
    pub fn issue_at(&self, user_id: Uuid, now: SystemTime, ttl: Duration) -> String {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            sub: user_id,
            iat,
            exp: iat + ttl.as_secs(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        // Encoding HS256 claims made of plain fields cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = JwtKeys::new(&[7; 32]);
        let id = Uuid::new_v4();
        assert_eq!(keys.verify(&keys.issue(id)).map(|c| c.sub), Ok(id));
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = JwtKeys::new(&[7; 32]);
        let old = SystemTime::now() - Duration::from_secs(3600);
        let expired = keys.issue_at(Uuid::new_v4(), old, Duration::from_secs(60));
        assert_eq!(
            keys.verify(&expired).map(|c| c.sub),
            Err(TokenError::Expired)
        );
        let foreign = JwtKeys::new(&[8; 32]).issue(Uuid::new_v4());
        assert_eq!(
            keys.verify(&foreign).map(|c| c.sub),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify("not.a.token").map(|c| c.sub),
            Err(TokenError::Invalid)
        );
    }
}
