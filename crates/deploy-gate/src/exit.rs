//! Exit codes of `check` and `wait`, as the design fixes them, and errors that know
//! which one they mean.

use std::fmt::Display;
use std::process::ExitCode;

/// The process outcome a CI step branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Deploy (or hold without `--fail-on hold`).
    Proceed = 0,
    /// Block.
    Block = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// No decision could be made: never reported as success.
    NoDecision = 3,
    /// Hold with `--fail-on hold`.
    Hold = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// An error on its way to the top: one line for the person, and the exit code.
#[derive(Debug)]
pub struct CliError {
    exit: Exit,
    message: String,
}

impl CliError {
    /// A usage or configuration error (exit 2).
    pub fn usage(err: impl Display) -> Self {
        CliError {
            exit: Exit::Usage,
            message: err.to_string(),
        }
    }

    /// A long-running role failed in a way a restart may fix (exit 1, so a supervisor
    /// restarts it).
    pub fn failed(err: impl Display) -> Self {
        CliError {
            exit: Exit::Block,
            message: err.to_string(),
        }
    }

    /// Analysis could not finish (exit 3).
    pub fn no_decision(err: impl Display) -> Self {
        CliError {
            exit: Exit::NoDecision,
            message: err.to_string(),
        }
    }

    /// The exit code this error means.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The whole message, on one line.
    pub fn message(&self) -> String {
        self.message
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
