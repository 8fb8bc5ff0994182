//! The library's error type: every variant says where (file, row, column, key) and what to do.

use std::path::PathBuf;

/// Everything that can stop a run. Row-level problems do not stop a run: they
/// quarantine the row (see `ingest::Quarantined`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration has one or more problems; each line names its key.
    #[error("{path}: {} problem(s) in the configuration:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config {
        path: PathBuf,
        problems: Vec<String>,
    },

    /// An input file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An input file is not a usable cost-and-usage file as a whole (bad header,
    /// missing required column, corrupt Parquet).
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// One or more inputs failed validation (from `billxfer validate` or the run's pre-checks).
    #[error("{} problem(s) found:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<String> },

    /// The run could not decide or use the billing period.
    #[error("{0}")]
    Period(String),

    /// A sum left the fixed-point range (more than 10^18 currency units).
    #[error("amount overflow while {0}: the figures exceed the supported range of ±10^18")]
    Overflow(String),

    /// A broken invariant inside billxfer (a bug, not bad input); nothing was written.
    #[error("internal error: {0} (a bug in billxfer, not in the input; nothing was written: please report it with the command that produced it)")]
    Internal(String),

    /// Writing an output failed; earlier outputs are left as they were.
    #[error("cannot write output {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Another run holds the output folder.
    #[error("{0}")]
    Locked(String),

    /// The output path holds something billxfer must not replace (a symbolic
    /// link, a file, a folder it did not write); nothing was written.
    #[error("{path} {reason}")]
    UnsafeOutput { path: PathBuf, reason: String },

    /// A distributed run failed in the engine (unreachable scheduler, lost
    /// executors, a failed job); nothing was published.
    #[error("cluster {address}: {message}")]
    Cluster { address: String, message: String },

    /// An invoice in another currency has no exchange rate for its month
    /// (docs/CURRENCY.md); nothing was written.
    #[error("org `{org}`: cannot invoice in {currency}: {message}")]
    MissingRate {
        org: String,
        currency: String,
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An input-level error.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Process exit code: 2 for configuration and usage problems, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::Period(_) => 2,
            _ => 1,
        }
    }
}

/// Shorthand for results in billxfer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
