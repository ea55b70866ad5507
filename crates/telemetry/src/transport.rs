//! OTLP/HTTP delivery shared by both signals: one export request, encoded as the
//! configured protocol, posted with the configured headers; and the rule for
//! reporting a receiver that fails (once per outage, not once per export).

use std::{thread::JoinHandle, time::Duration};

use crate::settings::OtlpProtocol;

/// One signal's receiver.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The signal's full URL (`…/v1/traces`, `…/v1/metrics`).
    pub(crate) url: String,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: Vec<(String, String)>,
    /// Bound on one export's HTTP exchange.
    pub(crate) timeout: Duration,
}

impl Endpoint {
    /// A blocking client of the export thread's own: no async runtime is needed,
    /// and none is disturbed.
    pub(crate) fn client(&self) -> Result<reqwest::blocking::Client, String> {
        reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|error| error.to_string())
    }

    /// Posts one encoded export request; `Err` says why it was not accepted
    /// (or, from [`encode`], why it could not be encoded).
    pub(crate) fn post(
        &self,
        client: &reqwest::blocking::Client,
        body: Body,
    ) -> Result<(), String> {
        let (content_type, body) = body?;
        let mut post = client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in &self.headers {
            post = post.header(name.as_str(), value.as_str());
        }
        match post.send() {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("refused with {}", response.status())),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// One export request as posted: its content type and bytes, or why it could
/// not be encoded.
pub(crate) type Body = Result<(&'static str, Vec<u8>), String>;

/// The content type of OTLP/HTTP protobuf bodies.
pub(crate) const PROTOBUF: &str = "application/x-protobuf";

/// `request` encoded as `protocol` asks.
pub(crate) fn encode<M>(protocol: OtlpProtocol, request: &M) -> Body
where
    M: prost::Message + serde::Serialize,
{
    match protocol {
        OtlpProtocol::HttpProtobuf => Ok((PROTOBUF, request.encode_to_vec())),
        OtlpProtocol::HttpJson => match serde_json::to_vec(request) {
            Ok(body) => Ok(("application/json", body)),
            Err(error) => Err(format!("cannot encode: {error}")),
        },
    }
}

/// Logs a receiver's failures once per outage, and its recovery.
#[derive(Debug)]
struct Outage {
    /// What is exported, for the log lines ("OTLP metrics", "OTLP spans").
    signal: &'static str,
    /// What becomes of what was not delivered, for the warning.
    then: &'static str,
    failing: bool,
}

impl Outage {
    fn new(signal: &'static str, then: &'static str) -> Outage {
        Outage {
            signal,
            then,
            failing: false,
        }
    }

    /// Reports the outcome of one export; `last` (the final flush) always logs a
    /// failure, since nothing will retry it.
    fn report(&mut self, endpoint: &Endpoint, result: Result<(), String>, last: bool) {
        let (signal, then) = (self.signal, self.then);
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!(endpoint = %endpoint.url, "{signal} delivered again");
            }
            Ok(()) => {}
            Err(why) if !self.failing || last => {
                self.failing = true;
                tracing::warn!(endpoint = %endpoint.url, %why, "{signal} not delivered ({then})");
            }
            Err(_) => {}
        }
    }
}

/// Starts the export thread of one signal: it builds its HTTP client (there: a
/// blocking client must not be dropped on an async runtime's thread, which the
/// caller may be), then posts the request bodies `next` yields until `next` says
/// they were the last. `signal` and `then` word the outage warnings.
pub(crate) fn spawn_exporter<F>(
    endpoint: Endpoint,
    signal: &'static str,
    then: &'static str,
    mut next: F,
) -> Result<JoinHandle<()>, String>
where
    F: FnMut() -> (Vec<Body>, bool) + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("{signal} export"))
        .spawn(move || {
            let client = match endpoint.client() {
                Ok(client) => client,
                Err(error) => {
                    tracing::warn!(%error, "{signal}: no HTTP client; nothing is exported");
                    return;
                }
            };
            let mut outage = Outage::new(signal, then);
            loop {
                let (requests, last) = next();
                for body in requests {
                    outage.report(&endpoint, endpoint.post(&client, body), last);
                }
                if last {
                    return;
                }
            }
        })
        .map_err(|err| format!("cannot start the {signal} thread: {err}"))
}
