//! Validation of paths that clients name inside a sandbox.
//!
//! This is hygiene, not confinement: confinement comes from resolving by handle in
//! [`crate::Root`]. Refusing `..` and relative paths here gives clients a clear 400 instead
//! of a surprising but harmless answer.

use crate::{FsError, FsResult};

/// Linux's PATH_MAX, counting the terminating NUL.
pub(crate) const PATH_MAX: usize = 4096;

/// An absolute path inside a sandbox, free of NUL bytes and `..`, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPath {
    text: String,
}

impl SandboxPath {
    /// Checks and normalises a client-supplied path (`//a/./b/` becomes `/a/b`).
    pub fn parse(raw: &str) -> FsResult<Self> {
        let bad = |reason| FsError::BadPath {
            path: raw.to_owned(),
            reason,
        };
        if raw.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if !raw.starts_with('/') {
            return Err(bad("must be absolute"));
        }
        if raw.len() >= PATH_MAX {
            return Err(bad("longer than PATH_MAX"));
        }
        // Built in one allocation: every file request parses a path, and a list of
        // parts joined and then formatted took three.
        let mut text = String::with_capacity(raw.len());
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(bad("must not contain '..'")),
                name if name.len() > 255 => {
                    return Err(bad("has a component longer than 255 bytes"));
                }
                name => {
                    text.push('/');
                    text.push_str(name);
                }
            }
        }
        if text.is_empty() {
            text.push('/');
        }
        Ok(Self { text })
    }

    /// The normalised absolute path.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for `/` itself.
    pub fn is_root(&self) -> bool {
        self.text == "/"
    }

    /// The path relative to the root (`a/b` for `/a/b`, `.` for `/`).
    pub fn relative(&self) -> &str {
        match &self.text[1..] {
            "" => ".",
            rest => rest,
        }
    }

    /// The parent directory and the final name; `None` for `/`.
    pub fn split_parent(&self) -> Option<(SandboxPath, &str)> {
        let cut = self.text.rfind('/')?;
        let name = &self.text[cut + 1..];
        if name.is_empty() {
            return None;
        }
        let parent = if cut == 0 {
            "/".to_owned()
        } else {
            self.text[..cut].to_owned()
        };
        Some((SandboxPath { text: parent }, name))
    }

    /// The path of `rel` (raw bytes, relative to this directory) for messages and
    /// events; invalid UTF-8 is replaced.
    pub fn display_join(&self, rel: &[u8]) -> String {
        let rel = String::from_utf8_lossy(rel);
        match (self.is_root(), rel.is_empty()) {
            (_, true) => self.text.clone(),
            (true, false) => format!("/{rel}"),
            (false, false) => format!("{}/{rel}", self.text),
        }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SandboxPath) -> bool {
        other.is_root()
            || self.text == other.text
            || self
                .text
                .strip_prefix(&other.text)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl std::fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::SandboxPath;

    #[test]
    fn normalises_slashes_and_dots() {
        assert_eq!(SandboxPath::parse("//a/./b/").unwrap().as_str(), "/a/b");
        assert_eq!(SandboxPath::parse("/").unwrap().relative(), ".");
        assert_eq!(SandboxPath::parse("/a/b").unwrap().relative(), "a/b");
        for (raw, normal) in [
            ("/", "/"),
            ("//", "/"),
            ("/./.", "/"),
            ("/a", "/a"),
            ("/a/b/c", "/a/b/c"),
            ("/a//b/./c/.", "/a/b/c"),
            ("/.a/...", "/.a/..."),
            ("/a./b..", "/a./b.."),
        ] {
            assert_eq!(SandboxPath::parse(raw).unwrap().as_str(), normal, "{raw:?}");
        }
    }

    #[test]
    fn refuses_hostile_shapes() {
        for raw in ["a/b", "", "/a/../b", "/..", "/a\0b", "../etc/passwd"] {
            assert!(
                SandboxPath::parse(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
        assert!(SandboxPath::parse(&format!("/{}", "a".repeat(5000))).is_err());
        assert!(SandboxPath::parse(&format!("/{}", "a".repeat(256))).is_err());
    }

    #[test]
    fn splits_parent_and_name() {
        let path = SandboxPath::parse("/a/b/c").unwrap();
        let (parent, name) = path.split_parent().unwrap();
        assert_eq!((parent.as_str(), name), ("/a/b", "c"));
        let top = SandboxPath::parse("/x").unwrap();
        assert_eq!(top.split_parent().unwrap().0.as_str(), "/");
        assert!(SandboxPath::parse("/").unwrap().split_parent().is_none());
    }

    #[test]
    fn prefix_is_by_component() {
        let home = SandboxPath::parse("/home/user").unwrap();
        assert!(
            SandboxPath::parse("/home/user/x")
                .unwrap()
                .starts_with(&home)
        );
        assert!(SandboxPath::parse("/home/user").unwrap().starts_with(&home));
        assert!(
            !SandboxPath::parse("/home/username")
                .unwrap()
                .starts_with(&home)
        );
    }
}

/// On the wire a path is its text; reading one back checks it again, so a process that
/// receives a path never trusts the sender to have parsed it.
impl serde::Serialize for SandboxPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for SandboxPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod wire_tests {
    use super::SandboxPath;

    #[test]
    fn a_path_read_from_the_wire_is_checked_again() {
        let path = SandboxPath::parse("/workspace/a b/é").unwrap();
        let json = serde_json::to_string(&path).unwrap();
        assert_eq!(serde_json::from_str::<SandboxPath>(&json).unwrap(), path);
        for hostile in [
            r#""../etc/passwd""#,
            r#""/a/../../b""#,
            r#""relative""#,
            r#""/a\u0000b""#,
        ] {
            assert!(
                serde_json::from_str::<SandboxPath>(hostile).is_err(),
                "{hostile} was accepted"
            );
        }
    }
}
