//! The long-running fleet roles, wired from settings: `worker` and `notify` (and,
//! as they land, the producer and orchestrator commands).

use gate_bus::VerdictKey;

use crate::exit::{CliError, Exit};
use crate::runtime;
use crate::settings::Settings;

/// `deploy-gate worker`: consume merge events, decide, publish, until SIGTERM.
pub fn worker(settings: &Settings) -> Result<Exit, CliError> {
    let (analyzers, notices) = crate::check::model_analyzers(settings)?;
    for notice in &notices {
        eprintln!("deploy-gate: {notice}");
    }
    // A silent rules-only fleet would surprise its operators; `check` in a laptop
    // shell may run rules-only, a worker may not.
    if analyzers.len() < settings.models.enabled.len() {
        return Err(CliError::usage(
            "a fleet worker does not start without the keys of every enabled model provider (set them, or remove the provider from models.enabled)",
        ));
    }
    let setup = gate_models::ProviderSetup::new(
        settings.bands,
        &settings.models.prompt,
        settings.models.price_table(),
    )
    .map_err(CliError::usage)?;
    // Everything that changes a verdict without changing the diff: the static prompt
    // (bands, org policy, incidents) and the model settings (ids, max_tokens, …).
    let model_settings = toml::to_string(&settings.models).unwrap_or_default();
    let policy_version = VerdictKey::from_parts([
        setup.system.joined().into_bytes(),
        model_settings.into_bytes(),
    ])
    .as_str()
    .to_string();
    let deps = gate_worker::WorkerDeps {
        amqp_url: settings.amqp.url.expose().to_string(),
        bus: settings.bus_for("deploy-gate-worker"),
        redis_url: settings.redis.url.expose().to_string(),
        redis: settings.stores.clone(),
        analyzers,
        bands: settings.bands,
        consensus: settings.consensus.clone(),
        policy_version,
        policy: settings.loaded_policy.clone(),
        stats: gate_worker::WorkerStats::new(),
    };
    let worker_settings = settings.worker.clone();
    runtime::init_logging(settings.log_json());
    match runtime::block_on(runtime::with_metrics(
        &settings.telemetry,
        gate_worker::run(worker_settings, deps, runtime::shutdown_signal()),
    ))?? {
        Ok(()) => Ok(Exit::Proceed),
        Err(err) if err.is_configuration() => Err(CliError::usage(chain(&err))),
        Err(err) => Err(CliError::failed(chain(&err))),
    }
}

/// `deploy-gate notify`: deliver notifications to Slack and webhooks, until SIGTERM.
pub fn notify(settings: &Settings) -> Result<Exit, CliError> {
    let deps = gate_notifier::NotifierDeps {
        amqp_url: settings.amqp.url.expose().to_string(),
        bus: settings.bus_for("deploy-gate-notify"),
        redis_url: settings.redis.url.expose().to_string(),
        redis: settings.stores.clone(),
        env: gate_notifier::Env::process(),
        stats: gate_notifier::NotifierStats::default(),
    };
    runtime::init_logging(settings.log_json());
    match runtime::block_on(runtime::with_metrics(
        &settings.telemetry,
        gate_notifier::run(settings.notify.clone(), deps, runtime::shutdown_signal()),
    ))?? {
        Ok(()) => Ok(Exit::Proceed),
        Err(err) => match err.remedy() {
            gate_notifier::Remedy::FixConfiguration => Err(CliError::usage(chain(&err))),
            _ => Err(CliError::failed(chain(&err))),
        },
    }
}

/// The whole cause chain of an error, on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sees nothing: `enqueue` only packs the context; the worker analyses it.
struct NoVisitor;

impl gate_core::DiffVisitor for NoVisitor {
    fn line(&mut self, _: &gate_core::ChangedFile, _: gate_core::LineKind, _: u32, _: &str) {}
}

/// What `enqueue` was asked to do.
#[derive(Debug)]
pub struct EnqueueRequest {
    /// Repository to read.
    pub repo: std::path::PathBuf,
    /// Base revision.
    pub base: Option<String>,
    /// Head revision.
    pub head: Option<String>,
    /// Repository name in the event.
    pub repo_name: Option<String>,
    /// The event id, when the caller has one.
    pub event_id: Option<String>,
    /// The ref the merge landed on.
    pub git_ref: Option<String>,
}

/// `deploy-gate enqueue`: build the context like `check`, publish the event with
/// confirms, print its id. Exit 0 only when the broker confirmed it.
pub fn enqueue(settings: &Settings, request: &EnqueueRequest) -> Result<Exit, CliError> {
    let options = settings.context_options(request.repo_name.clone());
    let range = gate_git::Range {
        base: request.base.clone(),
        head: request.head.clone(),
    };
    let context = gate_git::build_context(
        &request.repo,
        &range,
        &options,
        &gate_core::Redactor::new(),
        &mut NoVisitor,
    )
    .map_err(crate::check::git_error)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let event_id = request
        .event_id
        .clone()
        .or_else(|| gate_producer::ci_event_id(&env, &context.head));
    let event = gate_producer::merge_event(context, event_id, request.git_ref.clone(), "cli");
    let bus_settings = finite_connect(settings.bus_for("deploy-gate-enqueue"));
    let published = runtime::block_on(async {
        let bus = gate_bus::Bus::connect(settings.amqp.url.expose(), bus_settings)
            .await
            .map_err(|err| {
                CliError::no_decision(format!("cannot reach the broker: {}", chain(&err)))
            })?;
        let result = gate_producer::enqueue(&bus, &event).await;
        let _ = bus.close().await;
        result.map_err(|err| {
            let message = format!("event {} was not enqueued: {}", event.event_id, chain(&err));
            if err.is_retryable() {
                CliError::no_decision(message)
            } else {
                CliError::usage(message)
            }
        })
    })?;
    published?;
    println!("{}", event.event_id);
    Ok(Exit::Proceed)
}

/// A one-shot command must give up on an unreachable broker instead of waiting
/// forever (fleet settings may say 0 = retry forever).
fn finite_connect(mut bus: gate_bus::BusSettings) -> gate_bus::BusSettings {
    if bus.connect_attempts == 0 {
        bus.connect_attempts = 5;
    }
    bus
}

/// `deploy-gate declare-topology`: declare exchanges, queues and bindings once
/// (as the admin user), for roles that run without `configure` permission.
pub fn declare_topology(settings: &Settings) -> Result<Exit, CliError> {
    let mut bus_settings = finite_connect(settings.bus_for("deploy-gate-declare-topology"));
    bus_settings.declare_topology = true;
    runtime::block_on(async {
        let bus = gate_bus::Bus::connect(settings.amqp.url.expose(), bus_settings)
            .await
            .map_err(|err| CliError::failed(format!("declaring the topology: {}", chain(&err))))?;
        let _ = bus.close().await;
        Ok::<_, CliError>(())
    })??;
    println!("topology declared");
    Ok(Exit::Proceed)
}

/// `deploy-gate webhook`: receive GitHub and signed JSON webhooks, until SIGTERM.
pub fn webhook(settings: &Settings, listen: Option<String>) -> Result<Exit, CliError> {
    runtime::init_logging(settings.log_json());
    let env = |name: &str| std::env::var(name).ok();
    let secrets = gate_producer::WebhookSecrets::from_env(&settings.webhook, &env)
        .map_err(|err| CliError::usage(chain(&err)))?;
    let listen = listen.unwrap_or_else(|| settings.webhook.listen.clone());
    let served = runtime::block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|err| CliError::usage(format!("cannot listen on {listen}: {err}")))?;
        let producer = gate_producer::Producer::connect(
            settings.amqp.url.expose(),
            settings.bus_for("deploy-gate-webhook"),
        )
        .await
        .map_err(|err| CliError::failed(chain(&err)))?;
        let deps = gate_producer::WebhookDeps {
            producer,
            secrets,
            context: settings.context_options(None),
            // Replay protection shares delivery ids through Redis; a bad URL leaves
            // it to this process (the receiver says so when a claim fails).
            replay_store: gate_bus::Redis::open(
                settings.redis.url.expose(),
                settings.stores.clone(),
            )
            .ok(),
        };
        tracing::info!(%listen, "webhook receiver listening");
        runtime::with_metrics(
            &settings.telemetry,
            gate_producer::serve(
                settings.webhook.clone(),
                deps,
                listener,
                runtime::shutdown_signal(),
            ),
        )
        .await?
        .map_err(|err| CliError::failed(chain(&err)))
    })?;
    served?;
    Ok(Exit::Proceed)
}

fn orchestrator_deps(settings: &Settings, role: &str) -> gate_orchestrator::OrchestratorDeps {
    let redis = gate_bus::Redis::open(settings.redis.url.expose(), settings.stores.clone()).ok();
    gate_orchestrator::OrchestratorDeps::new(
        settings.amqp.url.expose(),
        finite_connect(settings.bus_for(role)),
        redis,
        settings.orchestrator.clone(),
    )
}

/// `deploy-gate wait`: block until the decision exists; exit like `check`.
pub fn wait(
    settings: &Settings,
    target: gate_orchestrator::WaitTarget,
    timeout: std::time::Duration,
    fail_on: crate::settings::FailOn,
    json: bool,
) -> Result<Exit, CliError> {
    let decision = runtime::block_on(async {
        let deps = orchestrator_deps(settings, "deploy-gate-wait");
        gate_orchestrator::wait(&deps, target, timeout).await
    })?
    .map_err(|err| match err {
        gate_orchestrator::WaitError::InvalidTarget(_) => CliError::usage(chain(&err)),
        other => CliError::no_decision(format!("no decision: {}", chain(&other))),
    })?;
    let rendered = if json {
        crate::report::json(&decision)
    } else {
        crate::report::text(&decision)
    };
    print!("{}", gate_core::Redactor::new().redact(&rendered).text);
    Ok(crate::check::exit_for(decision.recommendation, fail_on))
}

/// `deploy-gate watch`: stream decisions as JSON lines, until SIGTERM.
pub fn watch(
    settings: &Settings,
    repo: Option<String>,
    from: gate_orchestrator::WatchFrom,
) -> Result<Exit, CliError> {
    use std::io::Write;
    let filter = gate_orchestrator::WatchFilter { repo };
    let ended = runtime::block_on(async {
        let deps = orchestrator_deps(settings, "deploy-gate-watch");
        gate_orchestrator::watch(
            &deps,
            filter,
            from,
            |watched: gate_orchestrator::Watched| {
                let mut stdout = std::io::stdout().lock();
                let line = serde_json::to_string(&watched.decision).unwrap_or_default();
                if writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            },
            runtime::shutdown_signal(),
        )
        .await
    })?
    .map_err(|err| CliError::usage(chain(&err)))?;
    if let Some(offset) = ended.next_offset {
        eprintln!("deploy-gate: watch stopped; resume with --from {offset}");
    }
    Ok(Exit::Proceed)
}

/// `deploy-gate approve|override`: publish a person's decision that supersedes the
/// automatic one.
pub fn approve(
    settings: &Settings,
    event_id: &str,
    by: &str,
    reason: &str,
    recommendation: gate_core::Recommendation,
) -> Result<Exit, CliError> {
    // The person's decision is signed with the shared key and applied only when
    // it verifies and names a configured approver (`[approvals]`).
    let signed = gate_orchestrator::ApprovalRequest {
        event_id: event_id.to_string(),
        recommendation,
        by: by.trim().to_string(),
        reason: reason.trim().to_string(),
        signed_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    }
    .sign(&settings.approvals.signing_key)
    .map_err(|err| CliError::usage(chain(&err)))?;
    let decision = runtime::block_on(async {
        let deps = orchestrator_deps(settings, "deploy-gate-approve");
        gate_orchestrator::approve_signed(&deps, &settings.approvals, &signed).await
    })?
    .map_err(|err| {
        if err.is_retryable() {
            CliError::no_decision(format!("{} (retrying is safe)", chain(&err)))
        } else {
            CliError::usage(chain(&err))
        }
    })?;
    print!("{}", crate::report::json(&decision));
    Ok(Exit::Proceed)
}
