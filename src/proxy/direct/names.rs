//! Response header names, read the cheap way when they are spelled as upstreams usually spell
//! them. `HeaderName::from_bytes` lower-cases every name into a buffer and then looks it up (about
//! 117 instructions a name, 5 names in a typical response); the names most responses carry, in
//! their two usual spellings (`Content-Type`, `content-type`), are matched here byte for byte
//! first, the length telling most of them apart. Every other spelling and name goes to
//! `HeaderName::from_bytes`, so what a name reads as never depends on this table.

use http::header::{HeaderName, InvalidHeaderName};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, DATE,
    ETAG, EXPIRES, LAST_MODIFIED, LOCATION, SERVER, SET_COOKIE, TRANSFER_ENCODING, VARY,
};

/// The name of a response header field, as `HeaderName::from_bytes` reads it.
pub fn header_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    match known(bytes) {
        Some(name) => Ok(name),
        None => HeaderName::from_bytes(bytes),
    }
}

/// The names in [`header_name`]'s table: a spelling, and what it reads as.
fn known(bytes: &[u8]) -> Option<HeaderName> {
    let (a, b, name) = match bytes.len() {
        4 => match bytes[0] {
            b'D' | b'd' => (&b"Date"[..], &b"date"[..], DATE),
            b'V' | b'v' => (&b"Vary"[..], &b"vary"[..], VARY),
            b'E' | b'e' => (&b"ETag"[..], &b"etag"[..], ETAG),
            _ => return None,
        },
        6 => (&b"Server"[..], &b"server"[..], SERVER),
        7 => (&b"Expires"[..], &b"expires"[..], EXPIRES),
        8 => (&b"Location"[..], &b"location"[..], LOCATION),
        10 => match bytes[0] {
            b'C' | b'c' => (&b"Connection"[..], &b"connection"[..], CONNECTION),
            b'S' | b's' => (&b"Set-Cookie"[..], &b"set-cookie"[..], SET_COOKIE),
            _ => return None,
        },
        12 => (&b"Content-Type"[..], &b"content-type"[..], CONTENT_TYPE),
        13 => match bytes[0] {
            b'C' | b'c' => (&b"Cache-Control"[..], &b"cache-control"[..], CACHE_CONTROL),
            b'L' | b'l' => (&b"Last-Modified"[..], &b"last-modified"[..], LAST_MODIFIED),
            b'A' | b'a' => (&b"Accept-Ranges"[..], &b"accept-ranges"[..], ACCEPT_RANGES),
            _ => return None,
        },
        14 => (
            &b"Content-Length"[..],
            &b"content-length"[..],
            CONTENT_LENGTH,
        ),
        16 => (
            &b"Content-Encoding"[..],
            &b"content-encoding"[..],
            CONTENT_ENCODING,
        ),
        17 => (
            &b"Transfer-Encoding"[..],
            &b"transfer-encoding"[..],
            TRANSFER_ENCODING,
        ),
        _ => return None,
    };
    (bytes == a || bytes == b).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling in the table reads as `HeaderName::from_bytes` reads it, and so do its
    /// near misses (another case, one byte changed, one byte more or less).
    #[test]
    fn the_table_reads_each_name_as_from_bytes_does() {
        let spellings: [&[u8]; 30] = [
            b"Date",
            b"date",
            b"Vary",
            b"vary",
            b"ETag",
            b"etag",
            b"Server",
            b"server",
            b"Expires",
            b"expires",
            b"Location",
            b"location",
            b"Connection",
            b"connection",
            b"Set-Cookie",
            b"set-cookie",
            b"Content-Type",
            b"content-type",
            b"Cache-Control",
            b"cache-control",
            b"Last-Modified",
            b"last-modified",
            b"Accept-Ranges",
            b"accept-ranges",
            b"Content-Length",
            b"content-length",
            b"Content-Encoding",
            b"content-encoding",
            b"Transfer-Encoding",
            b"transfer-encoding",
        ];
        for spelling in spellings {
            let expected = HeaderName::from_bytes(spelling).expect("a valid name");
            assert_eq!(known(spelling), Some(expected.clone()), "{spelling:?}");
            assert_eq!(header_name(spelling).expect("valid"), expected);
            let mut near = vec![spelling.to_ascii_uppercase(), spelling[1..].to_vec()];
            for i in 0..spelling.len() {
                let mut changed = spelling.to_vec();
                changed[i] = if changed[i] == b'x' { b'y' } else { b'x' };
                near.push(changed);
                let mut longer = spelling.to_vec();
                longer.insert(i, b'x');
                near.push(longer);
            }
            for other in near {
                let read = header_name(&other).ok();
                assert_eq!(read, HeaderName::from_bytes(&other).ok(), "{other:?}");
                if let Some(name) = known(&other) {
                    assert_eq!(Some(name), read, "{other:?}");
                }
            }
        }
    }

    #[test]
    fn names_outside_the_table_and_invalid_names_go_to_from_bytes() {
        for name in [
            &b"X-Request-Id"[..],
            b"x-echo",
            b"Strict-Transport-Security",
        ] {
            assert_eq!(known(name), None);
            assert_eq!(
                header_name(name).expect("valid"),
                HeaderName::from_bytes(name).expect("valid")
            );
        }
        for bad in [&b""[..], b"Bad Name", b"Date:", b"Dat\0"] {
            assert!(header_name(bad).is_err(), "{bad:?}");
        }
    }
}
