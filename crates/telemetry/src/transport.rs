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

    /// Posts one export request; `Err` says why it was not accepted.
    pub(crate) fn post<M>(
        &self,
        client: &reqwest::blocking::Client,
        request: &M,
    ) -> Result<(), String>
    where
        M: prost::Message + serde::Serialize,
    {
        let (content_type, body) = match self.protocol {
            OtlpProtocol::HttpProtobuf => ("application/x-protobuf", request.encode_to_vec()),
            OtlpProtocol::HttpJson => match serde_json::to_vec(request) {
                Ok(body) => ("application/json", body),
                Err(error) => return Err(format!("cannot encode: {error}")),
            },
        };
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
/// caller may be), then posts the requests `next` yields until `next` says they
/// were the last. `signal` and `then` word the outage warnings.
pub(crate) fn spawn_exporter<M, F>(
    endpoint: Endpoint,
    signal: &'static str,
    then: &'static str,
    mut next: F,
) -> Result<JoinHandle<()>, String>
where
    M: prost::Message + serde::Serialize,
    F: FnMut() -> (Vec<M>, bool) + Send + 'static,
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
                for request in &requests {
                    outage.report(&endpoint, endpoint.post(&client, request), last);
                }
                if last {
                    return;
                }
            }
        })
        .map_err(|err| format!("cannot start the {signal} thread: {err}"))
}
