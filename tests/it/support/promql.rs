//! Just enough PromQL and OpenMetrics for tests/it/monitoring.rs: the series selectors of an
//! expression (metric name and matcher label names) and the sample names and labels of an
//! exposition.

use std::collections::{BTreeMap, BTreeSet};

/// One `name{label="…", …}` of an expression: the metric name and its matchers' label names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    pub labels: Vec<String>,
}

/// Words of the language that are never metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Modifiers followed by a list of label names, `by (route, status)`.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// What an expression reads: its series selectors, and the label names of its `by (…)`,
/// `without (…)`, `on (…)`, ... lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub selectors: Vec<Selector>,
    pub grouping: Vec<String>,
}

/// Every series selector of a PromQL expression.
pub fn selectors(expr: &str) -> Vec<Selector> {
    parse(expr).selectors
}

/// Reads a PromQL expression. Strings, `[…]` ranges and Grafana variables (`$__rate_interval`)
/// are skipped; an identifier followed by `(` is a function. Panics on what it cannot read (an
/// unclosed brace or quote), which is a test failure.
pub fn parse(expr: &str) -> Query {
    let s: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut grouping = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i);
        } else if c == '[' {
            i = close(&s, i, '[', ']');
        } else if c == '{' {
            // A selector without a name: only `{__name__="…"}` names a metric.
            let (labels, names, end) = matchers(&s, i);
            if let Some(name) = names {
                out.push(Selector {
                    metric: name,
                    labels,
                });
            }
            i = end;
        } else if c == '$' {
            i += 1;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.99, 1e-3, 5m.
            i += 1;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_' || s[i] == ':') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let next = next_non_space(&s, i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if let Some(open) = next.filter(|&j| s[j] == '(') {
                    i = close(&s, open, '(', ')');
                    let list: String = s[open + 1..i - 1].iter().collect();
                    grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                }
            } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                || next.map(|j| s[j]) == Some('(')
            {
                // An operator or a function call: its arguments are read on.
            } else if next.map(|j| s[j]) == Some('{') {
                let (labels, _, end) = matchers(&s, next.expect("checked"));
                out.push(Selector {
                    metric: word,
                    labels,
                });
                i = end;
            } else {
                out.push(Selector {
                    metric: word,
                    labels: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    Query {
        selectors: out,
        grouping,
    }
}

/// The selectors of a Grafana query variable: `label_values(<selector>, label)` or
/// `query_result(<expr>)`; none for `label_values(label)` and `label_names()`.
pub fn variable_selectors(query: &str) -> Vec<Selector> {
    let q = query.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return match inner.rsplit_once(',') {
            Some((series, _label)) => selectors(series),
            None => Vec::new(),
        };
    }
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return selectors(inner);
    }
    assert!(
        q.starts_with("label_names(") || q.is_empty(),
        "unknown variable query {q:?}"
    );
    Vec::new()
}

fn next_non_space(s: &[char], mut i: usize) -> Option<usize> {
    while i < s.len() && s[i].is_whitespace() {
        i += 1;
    }
    (i < s.len()).then_some(i)
}

/// The index after the quote closing the string opened at `i`.
fn skip_string(s: &[char], i: usize) -> usize {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            '\\' if quote != '`' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    panic!("unclosed {quote} in {:?}", s.iter().collect::<String>());
}

/// The index after the bracket closing the one opened at `i` (strings inside skipped).
fn close(s: &[char], i: usize, open: char, closing: char) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < s.len() {
        let c = s[j];
        if c == '"' || c == '\'' || c == '`' {
            j = skip_string(s, j);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == closing {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
        j += 1;
    }
    panic!("unclosed {open} in {:?}", s.iter().collect::<String>());
}

/// The label names of the matchers `{…}` opened at `i`, the value of a `__name__` matcher, and
/// the index after `}`.
fn matchers(s: &[char], i: usize) -> (Vec<String>, Option<String>, usize) {
    let end = close(s, i, '{', '}');
    let mut labels = Vec::new();
    let mut name = None;
    let mut j = i + 1;
    while j < end - 1 {
        let c = s[j];
        if c.is_alphabetic() || c == '_' {
            let start = j;
            while s[j].is_alphanumeric() || s[j] == '_' {
                j += 1;
            }
            let label: String = s[start..j].iter().collect();
            let value_at = (j..end).find(|&k| s[k] == '"' || s[k] == '\'' || s[k] == '`');
            let value_at = value_at.unwrap_or_else(|| panic!("matcher {label} without a value"));
            let after = skip_string(s, value_at);
            if label == "__name__" {
                name = Some(s[value_at + 1..after - 1].iter().collect());
            } else {
                labels.push(label);
            }
            j = after;
        } else {
            j += 1;
        }
    }
    (labels, name, end)
}

/// Labels a Prometheus scrape adds (the Operator's included): never in the exposition.
const TARGET: &[&str] = &[
    "namespace",
    "job",
    "instance",
    "pod",
    "container",
    "service",
    "endpoint",
];

/// An exposition's samples: each sample name with the label names it carries, and the metric
/// families' types (`# TYPE name type`).
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: BTreeMap<String, BTreeSet<String>>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                e.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).expect("a sample line");
            let labels = e.samples.entry(line[..end].to_string()).or_default();
            if line[end..].starts_with('{') {
                let s: Vec<char> = line[end..].chars().collect();
                labels.extend(matchers(&s, 0).0);
            }
        }
        e
    }

    /// Why `query` cannot work on this exposition: [`Exposition::refuses`] for each selector,
    /// or a grouping label that none of its metrics carries.
    pub fn refuses_query(&self, query: &Query) -> Vec<String> {
        let mut out: Vec<String> = query
            .selectors
            .iter()
            .filter_map(|s| self.refuses(s))
            .collect();
        for label in &query.grouping {
            let carried = query.selectors.iter().any(|s| {
                self.samples
                    .get(&s.metric)
                    .is_some_and(|l| l.contains(label))
            });
            if !TARGET.contains(&label.as_str()) && !carried {
                out.push(format!("no metric of the expression has the label {label}"));
            }
        }
        out
    }

    /// Why `sel` does not select anything this exposition has, if it does not: an unknown name,
    /// a `_bucket`/`_sum`/`_count` of something that is no histogram, or an unknown label.
    pub fn refuses(&self, sel: &Selector) -> Option<String> {
        let Some(labels) = self.samples.get(&sel.metric) else {
            return Some(format!("no metric {}", sel.metric));
        };
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sel.metric.strip_suffix(suffix) {
                if self.types.get(base).map(String::as_str) != Some("histogram") {
                    return Some(format!("{} but {base} is no histogram", sel.metric));
                }
            }
        }
        let unknown: Vec<&String> = sel
            .labels
            .iter()
            .filter(|l| !TARGET.contains(&l.as_str()) && !labels.contains(*l))
            .collect();
        (!unknown.is_empty()).then(|| format!("{} has no label {unknown:?}", sel.metric))
    }
}
