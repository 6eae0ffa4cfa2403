//! The `Range` header, single byte ranges only (what download clients send).

use crate::sendfile::SendQueue;

/// A satisfiable range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// How many bytes.
    pub len: u64,
}

/// Parses `bytes=A-B`, `bytes=A-` or `bytes=-N` against a file of `size` bytes. Anything
/// malformed, multi-range or unsatisfiable is an error (answered 416).
pub fn parse_range(value: &str, size: u64) -> Result<ByteRange, ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(drop);
    let (start, end) = match (first.trim(), last.trim()) {
        ("", "") => return Err(()),
        ("", suffix) => {
            let n = number(suffix)?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (number(a)?, size.checked_sub(1).ok_or(())?),
        (a, b) => (number(a)?, number(b)?.min(size.saturating_sub(1))),
    };
    if start >= size || end < start {
        return Err(());
    }
    Ok(ByteRange {
        start,
        len: end - start + 1,
    })
}

/// A file's body for a `Range` header (or the whole file without one): the window's
/// bytes and the range answered, or `Err(())` when the range cannot be satisfied. On a
/// connection that sends files itself (`queue`), a streamed window goes by `sendfile`.
pub fn ranged_body(
    content: airlock_service::FileBody,
    size: u64,
    range: Option<&str>,
    queue: Option<&SendQueue>,
) -> Result<(axum::body::Body, Option<ByteRange>), ()> {
    let range = match range.map(|text| parse_range(text, size)) {
        Some(Ok(range)) => Some(range),
        Some(Err(())) => return Err(()),
        None => None,
    };
    let ByteRange { start, len } = range.unwrap_or(ByteRange {
        start: 0,
        len: size,
    });
    let send = queue.map(|q| q as &dyn airlock_service::SendsFiles);
    let body = match content.window_sent_by(start, len, send) {
        airlock_service::FileWindow::Bytes(bytes) => axum::body::Body::from(bytes),
        airlock_service::FileWindow::Stream(chunks) => axum::body::Body::from_stream(chunks),
    };
    Ok((body, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Ok(ByteRange { start: 0, len: 10 })
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Ok(ByteRange { start: 90, len: 10 })
        );
        assert_eq!(
            parse_range("bytes=-5", 100),
            Ok(ByteRange { start: 95, len: 5 })
        );
        assert_eq!(
            parse_range("bytes=-500", 100),
            Ok(ByteRange { start: 0, len: 100 })
        );
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Ok(ByteRange { start: 50, len: 50 })
        );
        for bad in [
            "bytes=100-",
            "bytes=5-2",
            "bytes=-0",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-",
            "bytes=-18446744073709551616",
        ] {
            assert!(parse_range(bad, 100).is_err(), "{bad}");
        }
        assert!(
            parse_range("bytes=0-", 0).is_err(),
            "nothing to give from an empty file"
        );
    }
}
