//! HTTP/2 frames written by hand, for clients no library would be: ones that never read,
//! never answer a PING, or stop after the preface.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The preface, a SETTINGS frame advertising the largest stream window, and a connection
/// WINDOW_UPDATE to the largest window: the server may send as much as it likes.
pub fn preface_with_huge_windows() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 2^31 - 1.
    out.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    let increment: u32 = 0x7fff_ffff - 65_535;
    out.extend(frame(0x8, 0, 0, &increment.to_be_bytes()));
    out
}

/// The preface and an empty SETTINGS frame, nothing else.
pub fn preface_and_settings() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out
}

/// A HEADERS frame for `GET path` (END_STREAM, END_HEADERS), HPACK literals without indexing.
pub fn get(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
    ] {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    frame(0x1, 0x1 | 0x4, stream, &block)
}
