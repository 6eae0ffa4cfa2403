//! `ID:PATH` (a sandbox path) versus a local path, as `cp`, `sync`, `fs` and `watch` take.

use anyhow::bail;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path on this machine.
    Local(String),
    /// A path inside a sandbox.
    Remote { id: String, path: String },
}

impl Target {
    /// `ID:/abs/path` is remote; anything else (including `./a:b`) is local.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some((id, path))
                if !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Self::Remote {
                    id: id.to_owned(),
                    path: path.to_owned(),
                }
            }
            _ => Self::Local(text.to_owned()),
        }
    }
}

/// Parses `ID:PATH` where only a sandbox path makes sense.
pub fn remote(text: &str) -> anyhow::Result<(String, String)> {
    match Target::parse(text) {
        Target::Remote { id, path } if path.starts_with('/') => Ok((id, path)),
        Target::Remote { .. } => bail!("{text:?}: the path after ID: must be absolute"),
        Target::Local(_) => bail!("{text:?} should look like ID:/path/in/sandbox"),
    }
}

/// `a/b/` → `b`, `/` → ``.
pub fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// `dir` + `name`, with one slash between.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_remote_from_local() {
        assert_eq!(
            Target::parse("ab12:/workspace"),
            Target::Remote {
                id: "ab12".into(),
                path: "/workspace".into()
            }
        );
        assert_eq!(Target::parse("./a:b"), Target::Local("./a:b".into()));
        assert_eq!(Target::parse("/tmp/x"), Target::Local("/tmp/x".into()));
        assert!(remote("ab12:relative").is_err());
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(join("/a/", "b"), "/a/b");
    }
}
