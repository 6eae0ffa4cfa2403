//! Where the daemon keeps its own secrets: the admin token, the signing key and the
//! minted tokens' records. On one machine they are files under the home, readable by
//! root alone ([`HomeSecrets`]); gateways that share a cluster keep them in one
//! Kubernetes Secret, so every replica answers the same tokens and signs alike.

use std::fmt::Debug;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A change to a stored secret: what is stored now (if anything) in, what to store out.
pub type SecretChange<'a> = dyn FnMut(Option<&[u8]>) -> io::Result<Vec<u8>> + 'a;

/// A small store of named secrets.
pub trait SecretStore: Send + Sync + Debug {
    /// The bytes stored under `name`, if any.
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Stores `change(what is stored now)` under `name` and answers it. Daemons sharing
    /// the store never lose each other's changes: a store that others write retries the
    /// change on what another stored meanwhile.
    fn update(&self, name: &str, change: &mut SecretChange<'_>) -> io::Result<Vec<u8>>;
}

/// What is stored under `name`, or `bytes`, stored there now: of two daemons creating
/// at once, both end with the same secret.
pub(crate) fn create(store: &dyn SecretStore, name: &str, bytes: &[u8]) -> io::Result<Vec<u8>> {
    store.update(name, &mut |held| {
        Ok(match held {
            Some(held) if !held.trim_ascii().is_empty() => held.to_vec(),
            // Nothing, or an empty file (a crash between creating and writing it).
            _ => bytes.to_vec(),
        })
    })
}

/// Secrets as files under the daemon's home (mode 0600). One daemon owns a home, so a
/// change needs no retry.
#[derive(Debug)]
pub struct HomeSecrets {
    home: PathBuf,
}

impl HomeSecrets {
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_owned(),
        }
    }
}

impl SecretStore for HomeSecrets {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.home.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn update(&self, name: &str, change: &mut SecretChange<'_>) -> io::Result<Vec<u8>> {
        let held = self.load(name)?;
        let next = change(held.as_deref())?;
        if held.as_deref() != Some(&next[..]) {
            let temp = self.home.join(format!("{name}.tmp"));
            write_private(&temp, &next)?;
            std::fs::rename(temp, self.home.join(name))?;
        }
        Ok(next)
    }
}

/// Writes a file only root can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// 32 random bytes as hex: a new token or key.
pub fn new_secret() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(airlock_fs::hex(&bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn home_secrets_are_private_and_created_once() {
        let home = tempfile::tempdir().unwrap();
        let store = HomeSecrets::new(home.path());
        assert_eq!(store.load("token").unwrap(), None);
        assert_eq!(create(&store, "token", b"first").unwrap(), b"first");
        assert_eq!(create(&store, "token", b"second").unwrap(), b"first");
        store
            .update("tokens.json", &mut |_| Ok(b"[]".to_vec()))
            .unwrap();
        for name in ["token", "tokens.json"] {
            let mode = std::fs::metadata(home.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
}
