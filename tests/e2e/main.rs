//! End-to-end tests: the real `deploy-gate` binary against real git repositories
//! (and, as the fleet lands, the local RabbitMQ and Redis).

// Helpers here are test code too: a panic with its location is the failure report.
#![allow(clippy::unwrap_used)]

mod canary;
mod chaos;
mod check;
mod compose;
mod config;
mod consensus;
mod dashboard;
mod fleet;
mod fleet_harness;
mod harness;
mod k8s;
mod models;
mod policy;
mod secrets;
mod security;
mod telemetry;
