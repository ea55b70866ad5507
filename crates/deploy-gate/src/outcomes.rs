//! The feedback loop: `outcome` reports what happened to a decided change (the
//! workers store it next to the decision), and `calibrate` relates every stored
//! decision to what happened, per category and band.

use gate_core::{Outcome, OutcomeResult};

use crate::exit::{CliError, Exit};
use crate::fleet::chain;
use crate::runtime;
use crate::settings::Settings;

/// Bound on each Redis round trip of `calibrate`: one reads up to 500 decisions,
/// more than the fleet's per-event timeout is meant for.
const CALIBRATE_OP_TIMEOUT_MS: u64 = 10_000;

/// `deploy-gate outcome EVENT --result … --note …`: publish an outcome report with
/// confirms; exit 0 only when the broker confirmed and routed it.
///
/// When the decision store answers and has no decision for the event, the report
/// is refused (exit 2): a typo'd id would otherwise be stored where nothing reads
/// it. When Redis cannot say, the report is published anyway, with a warning.
pub fn outcome(
    settings: &Settings,
    event_id: &str,
    result: OutcomeResult,
    note: &str,
) -> Result<Exit, CliError> {
    let outcome = Outcome::new(event_id, result, note, time::OffsetDateTime::now_utc())
        .map_err(CliError::usage)?;
    runtime::block_on(async {
        match gate_bus::Redis::open(settings.redis.url.expose(), settings.stores.clone()) {
            Ok(redis) => match redis.decision_store().get(&outcome.event_id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(CliError::usage(format!(
                        "no decision is stored for event {}: check the id (the report was not sent)",
                        outcome.event_id
                    )))
                }
                Err(err) => eprintln!(
                    "deploy-gate: warning: cannot check that event {} has a decision ({}); reporting anyway",
                    outcome.event_id,
                    chain(&err)
                ),
            },
            Err(err) => eprintln!(
                "deploy-gate: warning: cannot check that event {} has a decision ({}); reporting anyway",
                outcome.event_id,
                chain(&err)
            ),
        }
        let mut bus_settings = settings.bus_for("deploy-gate-outcome");
        if bus_settings.connect_attempts == 0 {
            bus_settings.connect_attempts = 5;
        }
        let bus = gate_bus::Bus::connect(settings.amqp.url.expose(), bus_settings)
            .await
            .map_err(|err| {
                CliError::no_decision(format!("cannot reach the broker: {}", chain(&err)))
            })?;
        let published: Result<(), gate_bus::BusError> =
            async { bus.publisher().await?.publish_outcome(&outcome).await }.await;
        let _ = bus.close().await;
        published.map_err(|err| {
            let message = format!(
                "the outcome of {} was not reported: {}",
                outcome.event_id,
                chain(&err)
            );
            if err.action() == gate_bus::Action::Fail {
                CliError::usage(message)
            } else {
                CliError::no_decision(format!("{message} (retrying is safe)"))
            }
        })
    })??;
    println!("{} {}", outcome.event_id, outcome.result);
    Ok(Exit::Proceed)
}

/// `deploy-gate calibrate [--json]`: read every decision and its outcomes under
/// the key prefix and print how they relate, per category and band.
pub fn calibrate(settings: &Settings, json: bool) -> Result<Exit, CliError> {
    let mut stores = settings.stores.clone();
    stores.op_timeout_ms = stores.op_timeout_ms.max(CALIBRATE_OP_TIMEOUT_MS);
    let mut calibration = gate_calibrate::Calibration::new(settings.bands);
    let summary = runtime::block_on(async {
        let redis = gate_bus::Redis::open(settings.redis.url.expose(), stores)
            .map_err(|err| CliError::usage(chain(&err)))?;
        redis
            .outcome_store()
            .for_each_decision(|read| {
                calibration.add(&read.decision, read.automatic.as_ref(), &read.outcomes);
            })
            .await
            .map_err(|err| {
                CliError::no_decision(format!("cannot read the decisions: {}", chain(&err)))
            })
    })??;
    calibration.add_unreadable(summary.n_unreadable);
    let report = calibration.report();
    let rendered = if json { report.json() } else { report.table() };
    print!("{rendered}");
    Ok(Exit::Proceed)
}
