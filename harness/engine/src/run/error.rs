//! Why a step did not pass: an expectation that did not hold, or an operation that could
//! not be carried out. Shared by the step kinds, the matchers and the processes code.

use harness_scenario::Span;

/// Why a step did not pass.
#[derive(Clone, Debug, PartialEq)]
pub enum StepError {
    /// An expectation did not hold.
    Failed {
        message: String,
        expected: Option<String>,
        actual: Option<String>,
        span: Option<Span>,
    },
    /// The step could not be carried out.
    Error { message: String, span: Option<Span> },
}

impl StepError {
    pub fn error(message: impl Into<String>) -> Self {
        StepError::Error {
            message: message.into(),
            span: None,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        StepError::Failed {
            message: message.into(),
            expected: None,
            actual: None,
            span: None,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            StepError::Failed { message, .. } | StepError::Error { message, .. } => message,
        }
    }
    /// The same error with its message rewritten (context added in front or behind).
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        let (StepError::Failed { message, .. } | StepError::Error { message, .. }) = &mut self;
        *message = f(std::mem::take(message));
        self
    }
    /// The same error, pointing at `at` unless it points somewhere more precise already.
    pub fn at(mut self, at: Span) -> Self {
        let (StepError::Failed { span, .. } | StepError::Error { span, .. }) = &mut self;
        span.get_or_insert(at);
        self
    }
    pub fn span(&self) -> Option<Span> {
        match self {
            StepError::Failed { span, .. } | StepError::Error { span, .. } => *span,
        }
    }
}
