//! Account fields parsed once at the edge: a value of these types is valid by construction.

use email_address::EmailAddress;

use crate::error::FieldError;
use crate::text;

/// 3–30 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let len = value.chars().count();
        if len < 3 {
            return Err(FieldError::new(
                "username",
                "too_short",
                "Username must be at least 3 characters.",
            ));
        }
        if len > 30 {
            return Err(FieldError::new(
                "username",
                "too_long",
                "Username must be at most 30 characters.",
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(FieldError::new(
                "username",
                "invalid_characters",
                "Username may contain only letters, digits, '_', '.' and '-'.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid email address of at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new("email", "required", "Email is required."));
        }
        // Display names ("Bob <bob@x>") parse as valid addresses but are not what we store.
        if value.len() > 254 || value.contains(['<', '>', ' ']) || !EmailAddress::is_valid(value) {
            return Err(FieldError::new(
                "email",
                "invalid",
                "Enter a valid email address.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that satisfies the policy: 8–128 characters, not only digits, not the username
/// or the email address.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// Checks the policy. `username` and `email` are the raw values the user typed, so the
    /// comparison still applies when those fields are themselves invalid.
    pub fn parse(raw: &str, username: &str, email: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(FieldError::new(
                "password",
                "too_short",
                "Password must be at least 8 characters.",
            ));
        }
        if len > 128 {
            return Err(FieldError::new(
                "password",
                "too_long",
                "Password must be at most 128 characters.",
            ));
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(FieldError::new(
                "password",
                "entirely_numeric",
                "Password cannot be entirely numeric.",
            ));
        }
        let lowered = raw.to_lowercase();
        if lowered == username.trim().to_lowercase() || lowered == email.trim().to_lowercase() {
            return Err(FieldError::new(
                "password",
                "too_similar",
                "Password cannot be the same as your username or email.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A first or last name: at most 150 characters, trimmed, with no control characters and no
/// invisible ones that could disguise it (bidi controls, zero-width characters: see
/// [`crate::text`]).
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, FieldError> {
    let value = raw.trim();
    if value.chars().count() > 150 {
        return Err(FieldError::new(
            field,
            "too_long",
            "Names must be at most 150 characters.",
        ));
    }
    if text::has_control(value, false) || text::find_invisible(value).is_some() {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "Names cannot contain control characters or invisible formatting characters.",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("bob_the.builder-1").is_ok());
        assert_eq!(Username::parse("ab").unwrap_err().code, "too_short");
        assert_eq!(
            Username::parse(&"a".repeat(31)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            Username::parse("bob smith").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            Username::parse("bøb").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn emails() {
        assert!(Email::parse("bob@example.com").is_ok());
        assert_eq!(Email::parse("").unwrap_err().code, "required");
        for bad in ["bob", "bob@", "@example.com", "Bob <bob@example.com>"] {
            assert_eq!(Email::parse(bad).unwrap_err().code, "invalid", "{bad}");
        }
    }

    #[test]
    fn names_refuse_invisible_and_control_characters() {
        assert_eq!(parse_name("first_name", "  Budi  ").unwrap(), "Budi");
        assert_eq!(parse_name("first_name", "Siti 👋").unwrap(), "Siti 👋");
        for sneaky in ["Bu\u{202E}di", "Bu\u{200B}di", "Budi\u{0}", "\u{3164}"] {
            assert_eq!(
                parse_name("first_name", sneaky).unwrap_err().code,
                "invalid_characters",
                "{sneaky:?}"
            );
        }
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("s3cret-enough", "bob", "bob@example.com").is_ok());
        assert_eq!(
            Password::parse("short", "bob", "b@x.io").unwrap_err().code,
            "too_short"
        );
        assert_eq!(
            Password::parse(&"x".repeat(129), "bob", "b@x.io")
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            Password::parse("1234567890", "bob", "b@x.io")
                .unwrap_err()
                .code,
            "entirely_numeric"
        );
        assert_eq!(
            Password::parse("BobTheBuilder", "bobthebuilder", "b@x.io")
                .unwrap_err()
                .code,
            "too_similar"
        );
        assert_eq!(
            Password::parse("bob@example.com", "bob", "bob@example.com")
                .unwrap_err()
                .code,
            "too_similar"
        );
    }
}
