//! Captures every log line of one test (TRACE, all crates, `log` records of reqwest and rustls
//! included) for leak scans and checks of what was logged.
//!
//! The integration tests share one process, so the capturing subscriber is the default of the
//! calling thread only, never the process's: another test's lines (legitimate upstream WARNs,
//! say) cannot land in this test's buffer, and the other tests do not pay for TRACE
//! formatting. A capturing test therefore runs on a current-thread runtime (`#[tokio::test]`'s
//! default flavor, checked here): every task that the in-process proxy, the emulator and the
//! echo upstream spawn then runs on the test's thread, under its subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use tracing::subscriber::DefaultGuard;

/// A log writer into a shared buffer.
#[derive(Clone)]
pub struct Sink(pub Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The capture of one test; capturing stops when it is dropped.
pub struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _default: DefaultGuard,
}

/// Starts capturing what this thread logs from now on. Call it first thing in a
/// `#[tokio::test]` (current-thread) test and keep the result alive until the end.
pub fn capture() -> Capture {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "logs::capture() sees only its own thread: on a multi-thread runtime it would miss \
         what the proxy's tasks log on the other workers"
    );
    process_defaults();
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    Capture {
        buffer,
        _default: tracing::subscriber::set_default(subscriber),
    }
}

/// What every thread-own subscriber of this test binary needs of the whole process (see
/// [`capture`]); done once.
pub fn process_defaults() {
    static PROCESS: Once = Once::new();
    PROCESS.call_once(|| {
        // A global default that records nothing. Without one, tracing-core computes the
        // interest of a callsite first hit while a single dispatcher is registered from the
        // hitting thread's default alone: another test's thread (no subscriber) would cache
        // "never" for the proxy's callsites, and this capture would miss them (it did: spans
        // and INFO lines went missing when other tests ran alongside). With this one
        // registered too, every callsite's interest is combined over all live dispatchers.
        tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new())
            .expect("the only global subscriber of the test binary");
        // `log` records reach the tracing dispatcher of the thread that logs them, so they
        // land in the capture of that thread's test and nowhere else.
        tracing_log::LogTracer::init().expect("the only `log` logger");
    });
}

impl Capture {
    /// Everything this test logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn a_callsite_first_hit_on_another_thread_is_still_captured() {
    fn hit(thread: &str) {
        tracing::info!(thread, "capture check");
    }
    let capture = capture();
    std::thread::spawn(|| hit("other"))
        .join()
        .expect("other thread");
    hit("test");
    let text = capture.text();
    assert!(text.contains("capture check thread=\"test\""), "{text:?}");
    assert!(!text.contains("thread=\"other\""), "{text:?}");
}
