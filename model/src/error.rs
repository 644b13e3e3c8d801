//! What a handler (or a pipeline step before it) raises, before it is
//! encoded as PVE's formatter does (§6).

use std::collections::BTreeMap;

/// A PVE exception: a status, a message with the trailing newline that
/// `die "…\n"` leaves in it, and the `errors` map of a parameter exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// A plain `die "…\n"`: 500 with the text as message.
    pub fn die(message: impl Into<String>) -> ApiError {
        ApiError::status(500, message)
    }

    /// A `die` with another status (`PVE::Exception` with a `code`).
    pub fn status(status: u16, message: impl Into<String>) -> ApiError {
        let mut message = message.into();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        ApiError {
            status,
            message,
            errors: None,
        }
    }

    /// `raise_param_exc({key => text})`.
    pub fn param(key: &str, text: &str) -> ApiError {
        ApiError::params(BTreeMap::from([(key.to_string(), text.to_string())]))
    }

    /// `raise_param_exc` with several keys: 400 `Parameter verification failed.`
    pub fn params(errors: BTreeMap<String, String>) -> ApiError {
        ApiError {
            status: 400,
            message: "Parameter verification failed.\n".into(),
            errors: Some(errors),
        }
    }
}
