//! Deciding whether an unclassified handler error is transient or permanent.

use std::{error::Error as StdError, fmt, sync::Arc};

use crate::ErrorKind;

/// An error type that knows how it should be treated.
///
/// ```
/// use cmdbus::{Classify, ErrorKind};
///
/// #[derive(Debug, thiserror::Error)]
/// enum PartnerError {
///     #[error("partner timed out")]
///     Timeout,
///     #[error("partner rejected the account")]
///     Rejected,
/// }
///
/// impl Classify for PartnerError {
///     fn kind(&self) -> ErrorKind {
///         match self {
///             Self::Timeout => ErrorKind::Transient,
///             Self::Rejected => ErrorKind::Permanent,
///         }
///     }
/// }
/// ```
pub trait Classify {
    /// How this error should be treated.
    fn kind(&self) -> ErrorKind;
}

type Rule = Arc<dyn Fn(&(dyn StdError + 'static)) -> Option<ErrorKind> + Send + Sync>;

/// Maps errors that handlers returned through `?` to an [`ErrorKind`].
///
/// Rules are tried in order on the error and then on each of its sources;
/// the first that answers wins. Errors no rule recognises are transient.
///
/// ```
/// use cmdbus::{Classifier, ErrorKind};
///
/// let classifier = Classifier::new().on::<std::num::ParseIntError>(|_| ErrorKind::Permanent);
/// let error = "x".parse::<i32>().unwrap_err();
/// assert_eq!(classifier.classify(&error), ErrorKind::Permanent);
/// assert_eq!(classifier.classify(&std::io::Error::other("reset")), ErrorKind::Transient);
/// ```
#[derive(Clone, Default)]
pub struct Classifier {
    // Shared: every handler run clones the classifier.
    rules: Arc<Vec<Rule>>,
}

impl Classifier {
    /// A classifier with no rules: everything is transient.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies errors of type `E` with `rule`.
    #[must_use]
    pub fn on<E: StdError + 'static>(
        mut self,
        rule: impl Fn(&E) -> ErrorKind + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.rules)
            .push(Arc::new(move |error| error.downcast_ref::<E>().map(&rule)));
        self
    }

    /// Classifies errors of type `E` by their own [`Classify`] impl.
    #[must_use]
    pub fn classify_type<E: Classify + StdError + 'static>(self) -> Self {
        self.on::<E>(Classify::kind)
    }

    /// Adds a free-form rule; `None` means "not mine".
    #[must_use]
    pub fn rule(
        mut self,
        rule: impl Fn(&(dyn StdError + 'static)) -> Option<ErrorKind> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.rules).push(Arc::new(rule));
        self
    }

    /// The kind of `error`: the first rule that recognises it or one of its sources.
    pub fn classify(&self, error: &(dyn StdError + 'static)) -> ErrorKind {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(kind) = self.rules.iter().find_map(|rule| rule(error)) {
                return kind;
            }
            current = error.source();
        }
        ErrorKind::Transient
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier").field("rules", &self.rules.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Rejected);

    #[derive(Debug, thiserror::Error)]
    #[error("rejected")]
    struct Rejected;

    impl Classify for Rejected {
        fn kind(&self) -> ErrorKind {
            ErrorKind::BusinessRule
        }
    }

    #[test]
    fn rules_apply_to_sources_in_order() {
        let classifier = Classifier::new()
            .rule(|e| (e.to_string() == "io-permanent").then_some(ErrorKind::Permanent))
            .classify_type::<Rejected>();
        assert_eq!(classifier.classify(&Wrapper(Rejected)), ErrorKind::BusinessRule);
        assert_eq!(
            classifier.classify(&std::io::Error::other("io-permanent")),
            ErrorKind::Permanent
        );
        assert_eq!(classifier.classify(&std::io::Error::other("other")), ErrorKind::Transient);
        assert_eq!(format!("{classifier:?}"), "Classifier { rules: 2 }");
    }
}
