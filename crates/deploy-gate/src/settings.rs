//! Typed settings, layered by the `config` crate: the embedded `config/default.toml`,
//! then `$DEPLOY_GATE_CONFIG_DIR/default.toml`, `$DEPLOY_GATE_CONFIG_DIR/$DEPLOY_GATE_ENV.toml`,
//! `--config FILE`, and `DEPLOY_GATE__SECTION__KEY` environment variables.
//!
//! Every file layer is first parsed on its own against the typed settings with unknown
//! keys denied, so a typo is reported with the file, line and key before anything merges.

use std::fmt;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use gate_core::{Bands, ConsensusPolicy, Recommendation};
use gate_models::{AnthropicSettings, Deprecation, OpenAiSettings, Price, PromptSettings};
use serde::{Deserialize, Serialize, Serializer};

/// The defaults compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.toml");

/// The default policy compiled into the binary, used when `policy.file` is unset.
pub const EMBEDDED_POLICY: &str = include_str!("../../../config/policy.toml");

/// How the embedded policy is named in errors and in `policy explain`.
pub const EMBEDDED_POLICY_ORIGIN: &str = "the built-in config/policy.toml";

/// Prefix of environment overrides: `DEPLOY_GATE__BANDS__HOLD_FROM=60`.
const ENV_PREFIX: &str = "DEPLOY_GATE";
const ENV_SEPARATOR: &str = "__";

/// All settings of every role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Score thresholds of the bands.
    pub bands: Bands,
    /// How much of a change the analyzers see.
    pub context: ContextSettings,
    /// Defaults of `check`.
    pub check: CheckSettings,
    /// Model providers asked besides the rules analyzer.
    pub models: ModelsSettings,
    /// How the rules verdict and the model verdicts combine.
    pub consensus: ConsensusPolicy,
    /// RabbitMQ connection of the fleet roles.
    pub amqp: AmqpSettings,
    /// Redis connection of the fleet roles.
    pub redis: RedisSettings,
    /// Topology names and arguments, payload limit, confirms, connecting.
    pub bus: gate_bus::BusSettings,
    /// How the decision store and verdict cache use Redis (prefix, timeouts).
    pub stores: gate_bus::RedisSettings,
    /// The worker role.
    pub worker: gate_worker::WorkerSettings,
    /// The notifier role: channels and delivery.
    pub notify: gate_notifier::NotifierSettings,
    /// The webhook receiver.
    pub webhook: gate_producer::WebhookSettings,
    /// `wait`, `watch` and `approve`.
    pub orchestrator: gate_orchestrator::OrchestratorSettings,
    /// Who may `approve`/`override`, and the key their decisions are signed with.
    pub approvals: gate_orchestrator::ApprovalSettings,
    /// Logging of the long-running roles.
    pub log: LogSettings,
    /// Where metrics and traces leave the process (`/metrics`, OTLP); nothing by
    /// default.
    pub telemetry: gate_telemetry::TelemetrySettings,
    /// The live status page (`deploy-gate dashboard`).
    pub dashboard: gate_dashboard::DashboardSettings,
    /// Canary analysis: the judge's thresholds, `canary serve` and `canary watch`.
    pub canary: gate_canary::CanarySettings,
    /// Where the policy (`config/policy.toml`) is read from.
    pub policy: PolicySettings,
    /// The policy itself, read and validated by [`Settings::load`] (not a key of
    /// the configuration: its file is).
    #[serde(skip)]
    pub loaded_policy: gate_core::Policy,
}

/// Where the policy is read from (`[policy]`). The policy is a file of its own so
/// that it can be reviewed, versioned and checked (`deploy-gate policy check`)
/// apart from the deployment's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// The policy file; relative paths are read from the working directory.
    /// Unset: the built-in `config/policy.toml`.
    pub file: Option<PathBuf>,
}

/// Logging of the long-running roles (`DEPLOY_GATE_LOG` sets the level).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json` lines.
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How much of a change the analyzers see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextSettings {
    /// Characters of diff packed for analysis.
    pub budget_chars: usize,
    /// Commit messages kept.
    pub max_commits: usize,
    /// Omitted files listed by name.
    pub max_listed_omissions: usize,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            budget_chars: 12_000,
            max_commits: 10,
            max_listed_omissions: 200,
        }
    }
}

/// A model provider deploy-gate can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    /// Anthropic Messages API.
    Anthropic,
    /// An OpenAI-compatible chat-completions API.
    Openai,
}

/// Model providers and what they share.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSettings {
    /// Providers asked besides the rules analyzer. One whose API key is not in the
    /// environment is skipped, with one line saying so.
    pub enabled: Vec<ProviderName>,
    /// The Anthropic provider.
    pub anthropic: AnthropicSettings,
    /// The OpenAI-compatible provider.
    pub openai: OpenAiSettings,
    /// Organisation policy text and incident notes for the static prompt.
    pub prompt: PromptSettings,
    /// Prices in USD per million tokens, added to (or replacing entries of) the
    /// built-in table.
    pub prices: BTreeMap<String, Price>,
    /// Model retirements, added to the built-in table.
    pub deprecations: Vec<Deprecation>,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        ModelsSettings {
            enabled: vec![ProviderName::Anthropic],
            anthropic: AnthropicSettings::default(),
            openai: OpenAiSettings::default(),
            prompt: PromptSettings::default(),
            prices: BTreeMap::new(),
            deprecations: Vec::new(),
        }
    }
}

impl ModelsSettings {
    /// The built-in price table with the configured entries over it.
    pub fn price_table(&self) -> gate_models::PriceTable {
        let mut table = gate_models::PriceTable::default();
        table.0.extend(
            self.prices
                .iter()
                .map(|(model, price)| (model.clone(), *price)),
        );
        table
    }

    /// The built-in deprecation table with the configured entries added.
    pub fn deprecation_table(&self) -> gate_models::DeprecationTable {
        let mut table = gate_models::DeprecationTable::default();
        table.0.extend(self.deprecations.iter().cloned());
        table
    }
}

/// When `check` and `wait` fail the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Only a block fails (exit 1); hold passes with a warning.
    #[default]
    Block,
    /// A hold fails too (exit 4).
    Hold,
}

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// A human report, like a good CI log.
    #[default]
    Text,
    /// The Decision JSON.
    Json,
    /// The human report plus GitHub Actions annotations at file and line.
    Github,
}

/// Defaults of `check`; flags override them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSettings {
    /// Which recommendation fails the pipeline.
    pub fail_on: FailOn,
    /// Report format.
    pub format: OutputFormat,
}

/// RabbitMQ connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`; the password is masked when printed.
    pub url: SecretUrl,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        AmqpSettings {
            url: SecretUrl("amqp://guest:guest@127.0.0.1:5672/%2f".to_string()),
        }
    }
}

/// Redis connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`; the password is masked when printed.
    pub url: SecretUrl,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: SecretUrl("redis://127.0.0.1:6379/0".to_string()),
        }
    }
}

/// A URL that may carry a password. `Debug`, `Display` and `Serialize` mask the
/// password; only [`SecretUrl::expose`] gives the real text, for building a client.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The real URL, password included. Never log it.
    #[allow(dead_code)] // used by the fleet roles
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn masked(&self) -> String {
        mask_url_password(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

/// Replaces the password of `scheme://user:password@host…` with `****`.
fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:****{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// Where one layer of configuration came from, for error messages.
#[derive(Debug, Clone)]
enum LayerOrigin {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for LayerOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerOrigin::Embedded => f.write_str("the built-in config/default.toml"),
            LayerOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why settings could not be loaded. Each message names the file (or variable) and key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A layer file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid config file {origin}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// An environment override names an unknown key or has a bad value.
    #[error("invalid configuration from environment variables {ENV_PREFIX}__*: {0}")]
    Environment(String),
    /// The policy file is not valid: the message starts with `file:line:column:`.
    #[error("{0}")]
    Policy(#[from] gate_core::PolicyError),
    /// The merged values break a rule that spans keys.
    #[error("invalid value for `{key}` (set in {origin}): {message}")]
    Rule {
        /// The key, dotted.
        key: String,
        /// The last layer that set it.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Where to look for configuration besides the embedded defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `$DEPLOY_GATE_CONFIG_DIR`.
    pub config_dir: Option<PathBuf>,
    /// `$DEPLOY_GATE_ENV`.
    pub environment: Option<String>,
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// The process environment (injected so tests do not touch the real one).
    pub env_vars: Vec<(String, String)>,
}

impl Sources {
    /// The sources named by this process's environment and the `--config` flag.
    pub fn from_process(config_file: Option<PathBuf>) -> Sources {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Sources {
            config_dir: non_empty("DEPLOY_GATE_CONFIG_DIR").map(PathBuf::from),
            environment: non_empty("DEPLOY_GATE_ENV"),
            config_file,
            env_vars: std::env::vars().collect(),
        }
    }
}

impl Settings {
    /// The bus settings for one role, naming its connections after it.
    pub fn bus_for(&self, role: &str) -> gate_bus::BusSettings {
        let mut bus = self.bus.clone();
        if bus.connection_name == gate_bus::BusSettings::default().connection_name {
            bus.connection_name = role.to_string();
        }
        bus
    }

    /// How `check`, `enqueue` and the webhook pack a change (`[context]`).
    pub fn context_options(&self, repo_name: Option<String>) -> gate_git::ContextOptions {
        gate_git::ContextOptions {
            budget_chars: self.context.budget_chars,
            max_commits: self.context.max_commits,
            max_listed_omissions: self.context.max_listed_omissions,
            repo_name,
        }
    }

    /// Log lines as JSON.
    pub fn log_json(&self) -> bool {
        self.log.format == LogFormat::Json
    }

    /// Loads and validates the layered settings.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
        let mut layers: Vec<(LayerOrigin, String)> =
            vec![(LayerOrigin::Embedded, EMBEDDED_DEFAULT.to_string())];
        if let Some(dir) = &sources.config_dir {
            let default = dir.join("default.toml");
            if default.exists() {
                layers.push((LayerOrigin::File(default.clone()), read(&default)?));
            }
            if let Some(env) = &sources.environment {
                let path = dir.join(format!("{env}.toml"));
                layers.push((LayerOrigin::File(path.clone()), read(&path)?));
            }
        }
        if let Some(path) = &sources.config_file {
            layers.push((LayerOrigin::File(path.clone()), read(path)?));
        }

        let mut builder = config::Config::builder();
        for (origin, text) in &layers {
            check_layer(origin, text)?;
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let env_overrides: config::Map<String, String> = sources
            .env_vars
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .source(Some(env_overrides.clone())),
        );
        let merged = builder
            .build()
            .map_err(|err| SettingsError::Environment(err.to_string()))?;
        let settings: Settings = merged.try_deserialize().map_err(|err| {
            let names: Vec<&str> = env_overrides.keys().map(String::as_str).collect();
            SettingsError::Environment(format!("{err} (variables set: {})", names.join(", ")))
        })?;

        settings.validate(|key| last_origin(&layers, &env_overrides, key))?;
        let mut settings = settings;
        settings.apply_policy_file()?;
        Ok(settings)
    }

    /// Reads and validates the policy file, and lets its top-level `[bands]` and
    /// `on_analysis_error` replace the main configuration's, so that every role
    /// (the rules analyzer, the prompt, the consensus) sees the same values.
    fn apply_policy_file(&mut self) -> Result<(), SettingsError> {
        let policy = match &self.policy.file {
            Some(path) => gate_core::Policy::parse(&read(path)?, &path.display().to_string())?,
            None => gate_core::Policy::parse(EMBEDDED_POLICY, EMBEDDED_POLICY_ORIGIN)?,
        };
        if let Some(channel) = policy
            .notify()
            .keys()
            .find(|channel| !self.notify.channels.contains_key(*channel))
        {
            return Err(SettingsError::Rule {
                key: format!("notify.{channel}"),
                origin: policy.origin().to_string(),
                message: format!(
                    "the policy notifies channel `{channel}`, which is not configured under [notify.channels]"
                ),
            });
        }
        if let Some(bands) = policy.bands() {
            self.bands = bands;
        }
        if let Some(on_error) = policy.on_analysis_error() {
            self.consensus.on_analysis_error = on_error;
        }
        self.loaded_policy = policy;
        Ok(())
    }

    /// Rules that span keys or that serde cannot express.
    fn validate(&self, origin_of: impl Fn(&str) -> String) -> Result<(), SettingsError> {
        if let Err(err) = self.bands.validate() {
            return Err(SettingsError::Rule {
                key: "bands".to_string(),
                origin: origin_of("bands"),
                message: err.to_string(),
            });
        }
        if self.consensus.on_analysis_error == Recommendation::Deploy {
            return Err(SettingsError::Rule {
                key: "consensus.on_analysis_error".to_string(),
                origin: origin_of("consensus.on_analysis_error"),
                message: "must be `hold` or `block`: a failed analysis never deploys".to_string(),
            });
        }
        let n_models = self.models.enabled.len() as u32;
        if self.consensus.quorum > n_models {
            return Err(SettingsError::Rule {
                key: "consensus.quorum".to_string(),
                origin: origin_of("consensus.quorum"),
                message: format!(
                    "{} is more than the {n_models} enabled model provider(s): no decision could ever reach it",
                    self.consensus.quorum
                ),
            });
        }
        if let Err(message) = self.canary.validate() {
            return Err(SettingsError::Rule {
                key: "canary".to_string(),
                origin: origin_of("canary"),
                message,
            });
        }
        if let Some(channel) = (self.canary.notify_channels.iter())
            .find(|channel| !self.notify.channels.contains_key(*channel))
        {
            return Err(SettingsError::Rule {
                key: "canary.notify_channels".to_string(),
                origin: origin_of("canary.notify_channels"),
                message: format!("channel `{channel}` is not configured under [notify.channels]"),
            });
        }
        let context = &self.context;
        let positive = [
            ("context.budget_chars", context.budget_chars),
            ("context.max_commits", context.max_commits),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(SettingsError::Rule {
                    key: key.to_string(),
                    origin: origin_of(key),
                    message: "must be greater than 0".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|err| format!("# cannot render settings: {err}\n"))
    }
}

fn read(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|source| SettingsError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses one layer alone against the typed settings, so its own errors carry its
/// own name, line and key.
fn check_layer(origin: &LayerOrigin, text: &str) -> Result<(), SettingsError> {
    toml::from_str::<Settings>(text).map(drop).map_err(|err| {
        let location = err.span().map(|span| {
            let start = span.start.min(text.len());
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
            let column = start - line_start + 1;
            match key_at(text, line_start) {
                Some(key) => format!("line {line}, column {column}, key `{key}`: "),
                None => format!("line {line}, column {column}: "),
            }
        });
        SettingsError::Invalid {
            origin: origin.to_string(),
            message: format!("{}{}", location.unwrap_or_default(), err.message().trim()),
        }
    })
}

/// The dotted key (`section.key`) defined on the line starting at `line_start`, if that
/// line is a `key = value` line.
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// The last layer that sets `key` (a section or a dotted key), for rule errors.
fn last_origin(
    layers: &[(LayerOrigin, String)],
    env_overrides: &config::Map<String, String>,
    key: &str,
) -> String {
    let env_name_prefix = format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR)
    )
    .to_ascii_uppercase();
    if let Some(name) = env_overrides
        .keys()
        .filter(|name| name.to_ascii_uppercase().starts_with(&env_name_prefix))
        .max()
    {
        return format!("environment variable {name}");
    }
    for (origin, text) in layers.iter().rev() {
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        let mut node: Option<&toml::Value> = None;
        let mut current = &table;
        let mut found = true;
        for part in key.split('.') {
            match current.get(part) {
                Some(value) => {
                    node = Some(value);
                    if let toml::Value::Table(inner) = value {
                        current = inner;
                    }
                }
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found && node.is_some() {
            return origin.to_string();
        }
    }
    LayerOrigin::Embedded.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources_with_file(text: &str) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.toml");
        std::fs::write(&path, text).unwrap();
        (
            dir,
            Sources {
                config_file: Some(path),
                ..Sources::default()
            },
        )
    }

    #[test]
    fn embedded_defaults_load_and_match_the_design_bands() {
        let settings = Settings::load(&Sources::default()).unwrap();
        assert_eq!(settings.bands, Bands::default());
        assert_eq!(settings.context.budget_chars, 12_000);
        assert_eq!(settings.context.max_commits, 10);
        assert_eq!(settings.check.fail_on, FailOn::Block);
    }

    #[test]
    fn unknown_key_names_the_key_the_file_and_the_line() {
        let (_dir, sources) = sources_with_file("[bands]\nreview_from = 20\nhold_frm = 60\n");
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(err.contains("gate.toml"), "{err}");
        assert!(err.contains("hold_frm"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_value_type_names_the_key_and_the_file() {
        let (_dir, sources) = sources_with_file("[context]\nbudget_chars = \"lots\"\n");
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(
            err.contains("gate.toml") && err.contains("budget_chars"),
            "{err}"
        );
    }

    #[test]
    fn unordered_bands_name_the_file_that_set_them() {
        let (_dir, sources) = sources_with_file("[bands]\nhold_from = 90\n");
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(
            err.contains("`bands`") && err.contains("gate.toml"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_files_and_bad_env_values_name_the_variable() {
        let (_dir, mut sources) = sources_with_file("[bands]\nhold_from = 60\n");
        sources.env_vars = vec![("DEPLOY_GATE__BANDS__HOLD_FROM".into(), "55".into())];
        assert_eq!(Settings::load(&sources).unwrap().bands.hold_from, 55);

        sources.env_vars = vec![("DEPLOY_GATE__BANDS__HOLD_FROM".into(), "ninety".into())];
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(err.contains("DEPLOY_GATE__BANDS__HOLD_FROM"), "{err}");

        sources.env_vars = vec![("DEPLOY_GATE__BANDS__BLOCK_FROM".into(), "40".into())];
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(
            err.contains("environment variable DEPLOY_GATE__BANDS__BLOCK_FROM"),
            "{err}"
        );
    }

    #[test]
    fn environment_file_layer_is_required_once_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("staging.toml"),
            "[bands]\nblock_from = 90\n",
        )
        .unwrap();
        let sources = Sources {
            config_dir: Some(dir.path().to_path_buf()),
            environment: Some("staging".into()),
            ..Sources::default()
        };
        assert_eq!(Settings::load(&sources).unwrap().bands.block_from, 90);
        let missing = Sources {
            environment: Some("prod".into()),
            ..sources
        };
        let err = Settings::load(&missing).unwrap_err().to_string();
        assert!(err.contains("prod.toml"), "{err}");
    }

    #[test]
    fn passwords_in_urls_are_masked_in_every_rendering() {
        let url = SecretUrl("amqp://gate:s3cr3t-pw@broker:5672/prod".into());
        for rendered in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!rendered.contains("s3cr3t-pw"), "{rendered}");
            assert!(rendered.contains("gate:****@broker:5672"), "{rendered}");
        }
        assert_eq!(
            mask_url_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            mask_url_password("redis://:pw@host/0"),
            "redis://:****@host/0"
        );
    }

    #[test]
    fn a_policy_file_with_a_typo_stops_loading_with_its_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            "skip_models_when_trivial = true\nalwys_hold = []\n",
        )
        .unwrap();
        let (_dir, sources) = sources_with_file(&format!(
            "[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ));
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{}:2:1: unknown field `alwys_hold`",
                policy.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn the_built_in_policy_loads_and_a_policy_may_set_the_bands() {
        let settings = Settings::load(&Sources::default()).unwrap();
        assert_eq!(settings.loaded_policy.origin(), EMBEDDED_POLICY_ORIGIN);
        assert_eq!(settings.loaded_policy.n_path_rules(), 2);

        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            "on_analysis_error = \"block\"\n[bands]\nreview_from = 20\nhold_from = 40\nblock_from = 70\n",
        )
        .unwrap();
        let (_dir, sources) = sources_with_file(&format!(
            "[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ));
        let settings = Settings::load(&sources).unwrap();
        assert_eq!(settings.bands.hold_from, 40);
        assert_eq!(settings.consensus.on_analysis_error, Recommendation::Block);
    }

    #[test]
    fn a_policy_notifying_an_unconfigured_channel_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "[notify]\nops = \"block\"\n").unwrap();
        let (_dir, sources) = sources_with_file(&format!(
            "[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ));
        let err = Settings::load(&sources).unwrap_err().to_string();
        assert!(
            err.contains("`notify.ops`") && err.contains("[notify.channels]"),
            "{err}"
        );
    }
}
