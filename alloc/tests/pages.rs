//! `pages::StartUp` in a real process: the executable's resident code goes down, and what the
//! process wrote (its writable data, the relocated read-only data) is untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use token_handler_alloc::pages::StartUp;

/// In writable data: a release that took writable mappings would put back the file's 7.
static WRITTEN: AtomicU64 = AtomicU64::new(7);

/// Pointers, so in the relocated read-only data (RELRO): the file holds them unrelocated, and a
/// release that took that mapping would send the reads below astray.
static WORDS: &[&str] = &["relocated", "read-only", "data"];

/// Resident kB of the executable's code mappings.
fn code_resident_kb() -> u64 {
    let exe = std::fs::read_link("/proc/self/exe").expect("exe");
    let exe = exe.to_str().expect("utf-8 path");
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let (mut in_code, mut kb) = (false, 0);
    for line in smaps.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            if in_code {
                kb += rss
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .expect("kB");
            }
        } else if line
            .split(' ')
            .next()
            .is_some_and(|r| r.contains('-') && !r.ends_with(':'))
        {
            in_code = line.contains(" r-xp ") && line.ends_with(exe);
        }
    }
    kb
}

#[test]
fn the_code_pages_go_and_the_process_runs_on() {
    let start_up = StartUp::note();
    WRITTEN.store(42, Ordering::SeqCst);
    let before = code_resident_kb();
    let released = start_up.release().expect("released");
    let after = code_resident_kb();
    assert!(released.mappings > 0, "{released:?}");
    assert!(released.resident_bytes > 0, "{released:?}");
    assert!(
        after < before,
        "resident code: {before} kB before, {after} kB after ({released:?})"
    );
    // What the process wrote is still there, and its code runs.
    assert_eq!(WRITTEN.load(Ordering::SeqCst), 42);
    assert_eq!(WORDS.join(" "), "relocated read-only data");
    let squares: u64 = (0..1000u64).map(|i| i * i).sum();
    assert_eq!(squares, 332_833_500);
    assert_eq!(format!("{:?}", vec![1, 2]), "[1, 2]");
}

#[test]
fn nothing_noted_nothing_released() {
    let released = StartUp::default().release().expect("released");
    assert_eq!(released.mappings, 0);
}
