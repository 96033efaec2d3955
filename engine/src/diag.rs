//! Diagnostics: every problem found while loading a policy folder or its fixtures.
//!
//! Each stage (source reading, TOML parsing, role checks, Cedar parsing, validation, fixtures)
//! pushes [`Diagnostic`]s into a [`Diagnostics`] list instead of stopping at the first error,
//! so one `portcullis check` shows everything wrong with an edit. Locations are resolved to
//! `line:col` here, against the text of the file they point into; the CLI and the server render
//! them as human text or JSON.

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The folder cannot be served.
    Error,
    /// The folder loads, but something is probably not what the author meant.
    Warning,
}

/// A place in a file of the policy folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Path relative to the policy folder, with `/` separators.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte range in the file.
    #[serde(skip)]
    pub span: Range<usize>,
    /// The text of the line the span starts on, for rendering.
    #[serde(skip)]
    pub source_line: String,
}

/// Where each line of a text starts, so many spans resolve without rescanning the text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes a text.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    /// The location of a byte span of `text`, the text this index was built from.
    pub fn location(&self, file: &str, text: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= start);
        let line_start = self.starts.get(line.saturating_sub(1)).copied().unwrap_or(0);
        Location::at(file, text, span, start, line, line_start)
    }
}

impl Location {
    /// Resolves a byte span of `text` (the contents of `file`) to a line and column.
    pub fn new(file: &str, text: &str, span: Range<usize>) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self::at(file, text, span, start, line, line_start)
    }

    fn at(file: &str, text: &str, span: Range<usize>, start: usize, line: usize, line_start: usize) -> Self {
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let column = text[line_start..start].chars().count() + 1;
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        Self {
            file: file.to_owned(),
            line,
            column,
            span: start..end,
            source_line: text[line_start..line_end].trim_end_matches('\r').to_owned(),
        }
    }

    /// A location naming only a file.
    pub fn file_only(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            line: 1,
            column: 1,
            span: 0..0,
            source_line: String::new(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem, with where it is and what would fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code such as `roles::unknown-role`.
    pub code: String,
    /// What is wrong, in Cedar's message style: lowercase, no final period.
    pub message: String,
    /// Where, when known.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub location: Option<Location>,
    /// What would fix it ("did you mean `admin`?").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code: code.to_owned(),
            message: message.into(),
            location: None,
            help: None,
        }
    }

    /// A new warning.
    pub fn warning(code: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    /// Sets the location.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets the location from a file, its text and a byte span.
    pub fn at_span(self, file: &str, text: &str, span: Range<usize>) -> Self {
        self.at(Location::new(file, text, span))
    }

    /// Sets the help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `X`?" when one of `candidates` is close to `word`.
    pub fn suggest<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match did_you_mean(word, candidates) {
            Some(close) => self.with_help(format!("did you mean `{close}`?")),
            None => self,
        }
    }
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::normalized_damerau_levenshtein(&word_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" becomes a "did you mean".
pub(crate) fn suggest_field(d: Diagnostic, message: &str) -> Diagnostic {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return d;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return d;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    d.suggest(field, candidates)
}

/// All diagnostics of one load, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
#[error("{}", self.summary())]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl miette::Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .first()
            .map(|d| Box::new(d.code.clone()) as Box<dyn fmt::Display>)
    }
}

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over them.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    fn summary(&self) -> String {
        match self.0.iter().find(|d| d.severity == Severity::Error) {
            Some(first) => {
                let more = self.error_count().saturating_sub(1);
                let at = first
                    .location
                    .as_ref()
                    .map(|l| format!("{l}: "))
                    .unwrap_or_default();
                if more == 0 {
                    format!("{at}{}", first.message)
                } else {
                    format!("{at}{} (and {more} more errors)", first.message)
                }
            }
            None => "no errors".to_owned(),
        }
    }

    /// Renders for a terminal: `file:line:col`, the line with a caret, and help.
    ///
    /// `root` is prefixed to every file name (the folder as the user named it).
    pub fn render_human(&self, root: &str) -> String {
        let mut out = String::new();
        for d in &self.0 {
            render_one(&mut out, d, root);
        }
        let errors = self.error_count();
        let warnings = self.0.len() - errors;
        if errors > 0 || warnings > 0 {
            let _ = writeln!(out, "{}", plural_summary(errors, warnings));
        }
        out
    }

    /// Renders as a JSON array, each entry with `severity`, `code`, `message`, `file`, `line`,
    /// `column` and `help`; `root` is prefixed to file names.
    pub fn render_json(&self, root: &str) -> String {
        let rooted: Vec<Diagnostic> = self
            .0
            .iter()
            .cloned()
            .map(|mut d| {
                if let Some(l) = d.location.as_mut() {
                    l.file = join_root(root, &l.file);
                }
                d
            })
            .collect();
        serde_json::to_string_pretty(&rooted).unwrap_or_else(|_| "[]".to_owned())
    }
}

fn plural_summary(errors: usize, warnings: usize) -> String {
    let e = if errors == 1 {
        "1 error".to_owned()
    } else {
        format!("{errors} errors")
    };
    let w = if warnings == 1 {
        "1 warning".to_owned()
    } else {
        format!("{warnings} warnings")
    };
    match (errors, warnings) {
        (_, 0) => e,
        (0, _) => w,
        _ => format!("{e}, {w}"),
    }
}

/// Joins the folder name the user gave and a path inside it.
pub fn join_root(root: &str, file: &str) -> String {
    if root.is_empty() || root == "." {
        file.to_owned()
    } else {
        format!("{}/{file}", root.trim_end_matches('/'))
    }
}

fn render_one(out: &mut String, d: &Diagnostic, root: &str) {
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{sev}[{}]: {}", d.code, d.message);
    // The gutter is as wide as the line number, as in rustc's and Cedar's output.
    let pad = " ".repeat(d.location.as_ref().map_or(1, |l| l.line.to_string().len()));
    if let Some(l) = &d.location {
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            join_root(root, &l.file),
            l.line,
            l.column
        );
        if !l.source_line.is_empty() {
            let width = {
                let rest: String = l.source_line.chars().skip(l.column - 1).collect();
                let len = l.span.len().max(1);
                rest.char_indices().take_while(|(i, _)| *i < len).count().max(1)
            };
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", l.line, l.source_line);
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat(l.column - 1), "^".repeat(width));
        }
    }
    if let Some(h) = &d.help {
        let _ = writeln!(out, "{pad} = help: {h}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_chars() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = text.find("\"x\"").unwrap();
        let l = Location::new("f.toml", text, at..at + 3);
        assert_eq!((l.line, l.column), (2, 6));
        assert_eq!(l.source_line, "bé = \"x\"");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("admn", ["admin", "owner"]), Some("admin"));
        assert_eq!(did_you_mean("zzzz", ["admin", "owner"]), None);
    }
}
