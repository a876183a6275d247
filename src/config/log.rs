//! `[log]`: how the proxy's own log lines look and how many there are.

use super::raw;
use super::validate::Problems;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    /// One info line per request (method, route class, status, latency, session fingerprint).
    pub access_log: bool,
}

pub(super) fn log(r: raw::Log, p: &mut Problems) -> LogConfig {
    LogConfig {
        format: p.one_of(
            "log.format",
            r.format,
            LogFormat::Text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        ),
        level: r.level.unwrap_or_else(|| "info".to_string()),
        access_log: r.access_log.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn defaults_are_text_at_info_without_access_lines() {
        let c = valid(|p| log(raw::Log::default(), p));
        assert_eq!(c.format, LogFormat::Text);
        assert_eq!(c.level, "info");
        assert!(!c.access_log);
    }

    #[test]
    fn formats_are_named_in_any_case_and_others_refused() {
        let r = raw::Log {
            format: Some("JSON".into()),
            level: Some("token_handler=debug".into()),
            access_log: Some(true),
        };
        let c = valid(|p| log(r, p));
        assert_eq!(c.format, LogFormat::Json);
        assert_eq!(
            c.level, "token_handler=debug",
            "a filter, passed on as written"
        );
        assert!(c.access_log);

        let r = raw::Log {
            format: Some("yaml".into()),
            ..raw::Log::default()
        };
        let (c, problems) = checked(|p| log(r, p));
        assert_eq!(c.format, LogFormat::Text);
        assert_eq!(problems, ["log.format: `yaml` is not one of text, json"]);
    }
}
