//! What goes wrong, for the operator (a page saying so in plain words) and
//! for whoever sets the console up.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// Setting the console up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The users file cannot be read or has a bad line.
    #[error("users file {path}{}: {reason}", if *line > 0 { format!(", line {line}") } else { String::new() })]
    Users {
        /// The file.
        path: String,
        /// The 1-based line; 0 for the whole file.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The system gave no randomness (for a salt or a token).
    #[error("no randomness available: {0}")]
    Random(String),
    /// The listener failed.
    #[error("serving the console: {0}")]
    Serve(#[from] std::io::Error),
}

/// A request the console refuses or cannot answer; rendered as a page.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<cmdbus::Error> for Refusal {
    fn from(error: cmdbus::Error) -> Self {
        use cmdbus::Error as E;
        let status = match &error {
            E::NotFound { .. } | E::UnknownCommandId { .. } => StatusCode::NOT_FOUND,
            E::NotInTroubleshootingQueue { .. } | E::NotPending { .. } | E::EditRefused { .. } => {
                StatusCode::CONFLICT
            }
            E::Backend { .. } => {
                // Details go to the server's log, not to the browser.
                tracing::error!(%error, "console request failed");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database did not answer as expected; the server log has the details",
                );
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = maud::html! { p role="alert" class="error" { (self.message) } };
        (self.status, crate::html::document("refused", None, false, body)).into_response()
    }
}
