//! Problems found in a scenario file, with the spans they point at, rendered through miette.
//!
//! Every problem in a file is collected before anything is reported, so a user fixes a file
//! in one pass instead of one error at a time. Most problems are errors (the file is
//! invalid); the lint pass ([`crate::lint`]) adds warnings about valid but risky files.

use std::{fmt, sync::Arc};

pub use miette::Severity;
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

/// A byte range in a scenario file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub const fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
    /// The span from the start of `self` to the end of `other`.
    pub fn to(self, other: Span) -> Span {
        let end = (other.offset + other.len).max(self.offset + self.len);
        Span::new(self.offset, end - self.offset)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.offset, s.len).into()
    }
}

/// A scenario file's name and text, shared by everything that points into it.
///
/// A scenario that inherits a folder's shared defaults (`_defaults.yaml`) is one text made of
/// both files, the scenario first; each [`Part`] after the first names where another file
/// starts, so a span is reported in the file it came from.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
    /// Other files appended to the text, in order of their start.
    pub parts: Vec<Part>,
}

/// A file appended to a [`Source`]'s text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// Byte offset in the combined text where this file starts.
    pub start: usize,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
            parts: Vec::new(),
        }
    }

    /// This source with `name` appended at byte `start` of the text.
    pub fn with_part(mut self, name: impl Into<String>, start: usize) -> Self {
        self.parts.push(Part {
            name: name.into(),
            start,
        });
        self
    }

    /// The file a span lies in: its name, its own text, and the span within that text.
    pub fn locate(&self, span: Span) -> (&str, &str, Span) {
        let mut name = self.name.as_str();
        let mut start = 0;
        let mut end = self.text.len();
        for (i, part) in self.parts.iter().enumerate() {
            if span.offset >= part.start {
                name = &part.name;
                start = part.start;
                end = self.parts.get(i + 1).map_or(self.text.len(), |p| p.start);
            } else {
                end = end.min(part.start.saturating_sub(1));
                break;
            }
        }
        let text = self.text.get(start..end).unwrap_or("");
        let local = Span::new(
            span.offset - start,
            span.len.min(end.saturating_sub(span.offset)),
        );
        (name, text, local)
    }

    /// The file a span lies in, the 1-based line and column of its start there, and the span
    /// within that file.
    pub fn position(&self, span: Span) -> (&str, usize, usize, Span) {
        let (name, text, local) = self.locate(span);
        let (line, col) = line_col(text, local.offset);
        (name, line, col, local)
    }

    /// 1-based line and column (in characters) of a byte offset, in the file it lies in.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let (_, text, local) = self.locate(Span::new(offset, 0));
        line_col(text, local.offset)
    }

    /// `file:line:column` of a span.
    pub fn location(&self, span: Span) -> String {
        let (name, text, local) = self.locate(span);
        let (line, col) = line_col(text, local.offset);
        format!("{name}:{line}:{col}")
    }

    fn named(&self) -> NamedSource<String> {
        let (name, text, _) = self.locate(Span::new(0, 0));
        NamedSource::new(name, text.to_owned()).with_language("yaml")
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.bytes().enumerate().take(offset) {
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let col = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line, col)
}

/// One thing wrong with a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// [`Severity::Error`] (the default) makes the file invalid; a warning does not.
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    pub label: Option<String>,
    pub help: Option<String>,
    /// Other places that explain this one ("first defined here").
    pub also: Vec<(Span, String)>,
}

impl Problem {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            help: None,
            also: Vec::new(),
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.also.push((span, label.into()));
        self
    }
    /// Makes this a warning: worth fixing, but the file is still valid.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Everything wrong with one file; a miette diagnostic with one related entry per problem.
#[derive(Debug)]
pub struct Diagnostics {
    pub source: Source,
    pub problems: Vec<Problem>,
    named: NamedSource<String>,
}

impl Diagnostics {
    pub fn new(source: Source, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| p.span.offset);
        problems.dedup();
        let named = source.named();
        Diagnostics {
            source,
            problems,
            named,
        }
    }

    /// Whether any problem is an error (otherwise they are all warnings).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    /// A lint report: some problems, none of them an error.
    fn only_warnings(&self) -> bool {
        !self.problems.is_empty() && !self.has_errors()
    }

    /// `file:line:col: message` lines, one per problem, for logs and plain output.
    /// Warnings read `file:line:col: warning: message`.
    pub fn to_plain(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            out.push_str(&format!(
                "{}: {}{}\n",
                self.source.location(p.span),
                if p.is_error() { "" } else { "warning: " },
                p.message
            ));
            if let Some(help) = &p.help {
                out.push_str(&format!("  help: {help}\n"));
            }
        }
        out
    }

    /// The full report with source excerpts and no colours (used by snapshots): each
    /// problem on its own, as [`Diagnostics::reports`] gives them.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
        for (i, report) in self.reports().iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            // Rendering into a String cannot fail.
            let _ = handler.render_report(&mut out, report);
        }
        out
    }

    /// Each problem as a report of its own, with the file's text for its excerpt: what a
    /// terminal shows, one `×` (or `⚠`) line per problem and no frame around them.
    pub fn reports(&self) -> Vec<Located> {
        self.problems
            .iter()
            .map(|p| {
                if self.source.parts.is_empty() {
                    return Located {
                        problem: p.clone(),
                        source: self.named.clone(),
                    };
                }
                // Each excerpt comes from the problem's own file; notes that point into
                // another file are left out of it.
                let (name, text, span) = self.source.locate(p.span);
                let mut problem = p.clone();
                problem.span = span;
                problem.also = p
                    .also
                    .iter()
                    .filter_map(|(s, label)| {
                        let (other, _, local) = self.source.locate(*s);
                        (other == name).then(|| (local, label.clone()))
                    })
                    .collect();
                Located {
                    problem,
                    source: NamedSource::new(name, text.to_owned()).with_language("yaml"),
                }
            })
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        if self.only_warnings() {
            return write!(
                f,
                "{} has {n} warning{}",
                self.source.name,
                if n == 1 { "" } else { "s" }
            );
        }
        write!(
            f,
            "{} is not a valid scenario ({n} problem{})",
            self.source.name,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.only_warnings() {
            Some(Box::new("harness::scenario::lint"))
        } else {
            Some(Box::new("harness::scenario::invalid"))
        }
    }
    fn severity(&self) -> Option<Severity> {
        // Errors keep miette's default (`None`), so their reports render as they always did.
        self.only_warnings().then_some(Severity::Warning)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.named)
    }
}

/// One problem with the text of its file.
#[derive(Debug)]
pub struct Located {
    problem: Problem,
    source: NamedSource<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for Located {}

impl Diagnostic for Located {
    fn severity(&self) -> Option<Severity> {
        Diagnostic::severity(&self.problem)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Diagnostic::help(&self.problem)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Diagnostic::labels(&self.problem)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
}

// A problem is shown as a related diagnostic of its file, which lends it the source.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        (!self.is_error()).then_some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let main = LabeledSpan::new_primary_with_span(
            Some(self.label.clone().unwrap_or_else(|| "here".into())),
            self.span,
        );
        let also = self
            .also
            .iter()
            .map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), *s));
        Some(Box::new(std::iter::once(main).chain(also)))
    }
}
