//! Test support for deploy-gate: real git repositories built in temporary directories,
//! so every crate's tests (and the end-to-end tests of the binary) exercise the same
//! git the production code runs against.
//!
//! This is test code: helpers panic with a message naming the command and git's
//! output instead of returning errors, so a failing setup reads like a failed
//! assertion.
//!
//! Isolation: every git command run here ignores the machine's system and global git
//! configuration (`GIT_CONFIG_NOSYSTEM=1`, `HOME` and `XDG_CONFIG_HOME` point into the
//! temporary directory) and uses fixed, increasing commit dates, so the same script
//! builds the same commit ids on any machine.

pub mod github;
pub mod otlp;
pub mod proxy;
mod repo;
pub mod slack;
pub mod tls;

pub use repo::TestRepo;
