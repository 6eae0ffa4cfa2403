//! File modes accepted as an integer (`420`) or an octal string (`"0644"`, `"644"`, `"0o644"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Permission bits of a file, at most `0o7777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Parses an octal string such as `"0644"` or `"0o755"`.
    pub fn parse_octal(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let bits = u32::from_str_radix(digits, 8)
            .map_err(|_| format!("mode {text:?} is not an octal number like \"0644\""))?;
        Self::checked(bits)
    }

    fn checked(bits: u32) -> Result<Self, String> {
        if bits > 0o7777 {
            return Err(format!("mode {bits:#o} has bits beyond 0o7777"));
        }
        Ok(Self(bits))
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Int(n) => u32::try_from(n)
                .map_err(|_| format!("mode {n} is out of range"))
                .and_then(FileMode::checked),
            Raw::Text(t) => FileMode::parse_octal(&t),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::FileMode;

    fn parse(json: &str) -> Result<FileMode, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_octal_strings_agree() {
        assert_eq!(parse("420").unwrap(), FileMode(0o644));
        assert_eq!(parse("\"0644\"").unwrap(), FileMode(0o644));
        assert_eq!(parse("\"644\"").unwrap(), FileMode(0o644));
        assert_eq!(parse("\"0o755\"").unwrap(), FileMode(0o755));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(parse("-1").is_err());
        assert!(parse("\"0999\"").is_err());
        assert!(parse("\"rwx\"").is_err());
        assert!(parse("65536").is_err());
    }

    #[test]
    fn serialises_as_four_octal_digits() {
        assert_eq!(serde_json::to_string(&FileMode(0o755)).unwrap(), "\"0755\"");
    }
}
