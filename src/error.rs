//! One error type for the whole library: every failure names what it was about
//! (a file, a tensor, an option) so the CLI can print it as is.

use std::fmt;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A model file is malformed; `context` names the file and, where known, the tensor.
    Format { context: String, message: String },
    /// An audio file could not be decoded or is unusable.
    Audio { path: String, message: String },
    /// Fetching or converting a model failed.
    Convert(String),
    /// A caller passed an option or argument that cannot work.
    Invalid(String),
    /// The transcription was stopped through its [`crate::Abort`] handle.
    Aborted,
    /// The GPU failed: no usable adapter, out of device memory, a lost device.
    Device(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn format(context: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Format {
            context: context.into(),
            message: message.into(),
        }
    }
    pub fn audio(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Audio {
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Format { context, message } => {
                write!(f, "invalid model file: {context}: {message}")
            }
            Error::Audio { path, message } => write!(f, "cannot read audio {path}: {message}"),
            Error::Convert(m) => write!(f, "model conversion failed: {m}"),
            Error::Invalid(m) => write!(f, "{m}"),
            Error::Aborted => write!(f, "transcription aborted"),
            Error::Device(m) => write!(f, "GPU: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
