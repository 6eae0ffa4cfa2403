//! The admin token and the signing key: created once in the daemon's secret store
//! (`HOME/token` and `HOME/signing-key`, mode 0600, on one machine), compared in
//! constant time.

use std::io;

use subtle::ConstantTimeEq;

use crate::secrets::{SecretStore, create, new_secret};

/// A secret bearer token.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// True when `candidate` is this token; time does not depend on where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }

    /// The secret's bytes, as a key (signed URLs use a token file of their own).
    pub fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The secret stored as `name`, or a new one (32 random bytes in hex) stored there.
pub fn load_or_create(store: &dyn SecretStore, name: &str) -> io::Result<Token> {
    let held = create(store, name, new_secret()?.as_bytes())?;
    let text = String::from_utf8(held).map_err(io::Error::other)?;
    Ok(Token(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let store = crate::secrets::HomeSecrets::new(dir.path());
        let first = load_or_create(&store, "token").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create(&store, "token").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(first.matches(&text) && again.matches(&text));
        assert!(!first.matches("") && !first.matches(&text[..10]));
        assert_eq!(format!("{first:?}"), "Token(<redacted>)");
    }
}
