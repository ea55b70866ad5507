//! `deploy-gate dashboard`: the live status page, wired from settings.

use crate::exit::{CliError, Exit};
use crate::fleet::chain;
use crate::runtime;
use crate::settings::Settings;

/// Serves the status page on `listen` (default `dashboard.listen`) until SIGTERM.
/// Exit 2 for settings that cannot work or an address that cannot be bound; 3
/// when the broker refuses the page for good.
pub fn run(settings: &Settings, listen: Option<String>) -> Result<Exit, CliError> {
    runtime::init_logging(settings.log_json());
    let listen = listen.unwrap_or_else(|| settings.dashboard.listen.clone());
    let deps = gate_dashboard::DashboardDeps {
        amqp_url: settings.amqp.url.expose().to_string(),
        bus: settings.bus_for("deploy-gate-dashboard"),
        orchestrator: settings.orchestrator.clone(),
    };
    let served = runtime::block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|err| {
                CliError::usage(format!(
                    "cannot serve the status page on {listen} (dashboard.listen / --listen): {err}"
                ))
            })?;
        runtime::with_metrics(
            &settings.telemetry,
            gate_dashboard::serve(
                settings.dashboard.clone(),
                deps,
                listener,
                runtime::shutdown_signal(),
            ),
        )
        .await
    })??;
    match served {
        Ok(()) => Ok(Exit::Proceed),
        Err(err) if err.is_configuration() => Err(CliError::usage(chain(&err))),
        Err(err) => Err(CliError::no_decision(chain(&err))),
    }
}
