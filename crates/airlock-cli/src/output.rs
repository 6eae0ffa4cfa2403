//! Small shared pieces of the client verbs: JSON printing, tables, argument parsing.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Parses repeated `K=V` arguments.
pub fn key_values(pairs: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{what} {pair:?} should look like KEY=VALUE"),
        })
        .collect()
}

/// Parses a size such as `512m`, `2g`, `1.5G` or a bare number of MiB, into MiB.
pub fn size_mb(text: &str, what: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches("ib").trim_end_matches('b');
    let (number, factor) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1.0 / 1024.0),
        Some('m') => (&lower[..lower.len() - 1], 1.0),
        Some('g') => (&lower[..lower.len() - 1], 1024.0),
        Some('t') => (&lower[..lower.len() - 1], 1024.0 * 1024.0),
        _ => (lower, 1.0),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{what} {text:?} is not a size like 512m or 2g"))?;
    if !value.is_finite() || value <= 0.0 {
        bail!("{what} {text:?} must be positive");
    }
    Ok((value * factor).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_mb("512m", "x").unwrap(), 512);
        assert_eq!(size_mb("2G", "x").unwrap(), 2048);
        assert_eq!(size_mb("1.5gib", "x").unwrap(), 1536);
        assert_eq!(size_mb("300", "x").unwrap(), 300);
        assert!(size_mb("-1g", "x").is_err());
        assert!(size_mb("lots", "x").is_err());
    }

    #[test]
    fn pairs() {
        let parsed = key_values(&["A=1".into(), "B=x=y".into()], "env").unwrap();
        assert_eq!(parsed["B"], "x=y");
        assert!(key_values(&["=1".into()], "env").is_err());
        assert!(key_values(&["A".into()], "env").is_err());
    }
}
