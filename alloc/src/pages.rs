//! Start-up code pages given back once start-up is over.
//!
//! Start-up (arguments, configuration, TOML, certificate roots, tracing, metrics) runs code
//! spread over the whole binary, and the kernel maps every file page it touches with up to 15
//! neighbours (64 KiB fault-around). Those pages stay in the process's resident set although
//! the data path never runs most of them again: 5 MiB of the binary's code, measured. Once the
//! proxy serves, [`StartUp::release`] unmaps the read-only file pages of the executable and of
//! the libraries loaded with it (`madvise(MADV_DONTNEED)`): they stay in the page cache, and the
//! data path maps back what it runs on its next use (a minor fault per 64 KiB window).
//!
//! Only mappings that cannot hold a byte the process wrote are released: not writable, backed by
//! a file, private, and with no anonymous (copied-on-write) page, which rules out the
//! relocated read-only data (RELRO). And only files mapped before `main`, noted by
//! [`StartUp::note`] while the process had one thread: the executable and its `DT_NEEDED`
//! libraries, which are never unmapped, so an address noted is still the same file when it is
//! released. A library loaded later (`dlopen`) is left alone.

extern crate std;

use std::collections::BTreeSet;
use std::string::String;
use std::vec::Vec;

/// The files mapped before `main`.
#[derive(Debug, Default)]
pub struct StartUp {
    files: BTreeSet<String>,
}

/// What [`StartUp::release`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Mappings released.
    pub mappings: usize,
    /// Their resident bytes before the release.
    pub resident_bytes: u64,
}

/// One mapping of `/proc/self/smaps`.
struct Mapping {
    start: usize,
    end: usize,
    perms: [u8; 4],
    path: String,
    anonymous_kb: u64,
    rss_kb: u64,
}

impl StartUp {
    /// Notes the files mapped now: call it first thing in `main`, before any thread starts.
    pub fn note() -> StartUp {
        let files = mappings()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.path.starts_with('/'))
            .map(|m| m.path)
            .collect();
        StartUp { files }
    }

    /// Unmaps the resident read-only pages of the files noted (see the module's documentation).
    pub fn release(&self) -> std::io::Result<Released> {
        let mut released = Released::default();
        for m in mappings()? {
            let releasable = m.perms[0] == b'r'
                && m.perms[1] == b'-'
                && m.perms[3] == b'p'
                && m.anonymous_kb == 0
                && m.rss_kb > 0
                && self.files.contains(&m.path);
            if !releasable {
                continue;
            }
            unmap(&m)?;
            released.mappings += 1;
            released.resident_bytes += m.rss_kb * 1024;
        }
        Ok(released)
    }
}

#[cfg(unix)]
fn unmap(m: &Mapping) -> std::io::Result<()> {
    // SAFETY: the range is a whole mapping of a file the process cannot have written (read-only,
    // private, no anonymous page): MADV_DONTNEED drops its page-table entries only, and the
    // next access maps the same bytes of the file again. No reference into it is invalidated.
    let rc = unsafe {
        libc::madvise(
            m.start as *mut libc::c_void,
            m.end - m.start,
            libc::MADV_DONTNEED,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn unmap(_: &Mapping) -> std::io::Result<()> {
    Ok(())
}

/// The process's mappings; none where there is no `/proc/self/smaps` (not Linux).
fn mappings() -> std::io::Result<Vec<Mapping>> {
    let text = match std::fs::read_to_string("/proc/self/smaps") {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(m) = header(line) {
            out.push(m);
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if let Some(kb) = field_kb(line, "Anonymous:") {
            last.anonymous_kb = kb;
        } else if let Some(kb) = field_kb(line, "Rss:") {
            last.rss_kb = kb;
        }
    }
    Ok(out)
}

/// `start-end perms offset dev inode [path]`.
fn header(line: &str) -> Option<Mapping> {
    let mut parts = line.splitn(6, ' ');
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms: [u8; 4] = parts.next()?.as_bytes().try_into().ok()?;
    let _offset = parts.next()?;
    let _dev = parts.next()?;
    let _inode = parts.next()?;
    let path = parts.next().unwrap_or("").trim_start();
    Some(Mapping {
        start,
        end,
        perms,
        path: path.into(),
        anonymous_kb: 0,
        rss_kb: 0,
    })
}

fn field_kb(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?;
    rest.trim().strip_suffix("kB")?.trim().parse().ok()
}
