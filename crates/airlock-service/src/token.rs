//! The admin token: created once in `HOME/token` (mode 0600), compared in constant time.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use subtle::ConstantTimeEq;

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

/// Reads the token file, or creates it with 32 random bytes in hex.
pub fn load_or_create(path: &Path) -> io::Result<Token> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(Token(text.trim().to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    let text = airlock_fs::hex(&bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(Token(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(first.matches(&text) && again.matches(&text));
        assert!(!first.matches("") && !first.matches(&text[..10]));
        assert_eq!(format!("{first:?}"), "Token(<redacted>)");
    }
}
