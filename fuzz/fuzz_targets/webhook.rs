//! The webhook receiver over real HTTP: GitHub `push`/`pull_request`/`ping`
//! deliveries and signed MergeEvents on `/events`, each signed well, signed with
//! bytes from the input, or not signed; the GitHub compare API it then calls is a
//! loopback server answering with bytes from the input; events it enqueues go to
//! the local RabbitMQ (a topology of its own, `fuzz-webhook-*`, drained as it
//! fills). Needs RabbitMQ at 127.0.0.1:5672 (guest/guest), like the tests.
//!
//! Input: a byte choosing the route, a byte choosing how it is signed, then fields
//! separated by `\n%%\n`: the request body, the compare answer, a signature header,
//! a delivery id.
//!
//! Properties beyond "no panic" (a panic anywhere in the receiver aborts the
//! process): a delivery not signed with the secret is answered 401, whatever its
//! body; no answer is a 500 (which would mean a task panicked or the context could
//! not be built); everything enqueued decodes as a MergeEvent a worker accepts and
//! holds no planted secret.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use deploy_gate_fuzz::{runtime, Fields, Stub};
use gate_bus::{decode_event, Bus, BusSettings, Topology};
use gate_git::ContextOptions;
use gate_producer::{serve, Producer, WebhookDeps, WebhookSecrets, WebhookSettings};
use gate_testkit::github::sign;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const GITHUB_SECRET: &str = "gh-hook-secret-for-fuzzing";
const EVENTS_SECRET: &str = "gate-events-secret-for-fuzzing";
/// A fake AWS key id, split so the source holds no key for scanners.
const PLANTED: &str = concat!("AKIA", "Q3VZ7N2PLK4TXW8R");

struct Receiver {
    addr: std::net::SocketAddr,
    github: Stub,
}

fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let runtime = runtime();
        let github = Stub::start();
        let bus_settings = BusSettings {
            topology: Topology::default().with_prefix("fuzz-webhook-"),
            connection_name: "fuzz-webhook".to_owned(),
            connect_attempts: 3,
            ..BusSettings::default()
        };
        let (producer, listener) = runtime.block_on(async {
            let bus = Bus::connect(AMQP_URL, bus_settings.clone())
                .await
                .expect("the webhook target needs RabbitMQ at 127.0.0.1:5672 (guest/guest)");
            bus.declare_topology()
                .await
                .expect("declaring the fuzz topology");
            // Drain what gets enqueued, checking each event as a worker would.
            let mut events = bus
                .consume(&bus_settings.topology.events_queue, 50)
                .await
                .expect("consuming the fuzz events queue");
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = events.next().await {
                    let payload = delivery.payload().to_vec();
                    let event = decode_event(&payload, usize::MAX)
                        .expect("the receiver enqueued an event a worker rejects");
                    assert!(
                        !String::from_utf8_lossy(&payload).contains(PLANTED),
                        "a planted key reached the queue in event {}",
                        event.event_id
                    );
                    let _ = delivery.ack().await;
                }
            });
            let producer = Producer::new(&bus).await.expect("a producer");
            // Keep the connection open for the life of the process.
            std::mem::forget(bus);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            (producer, listener)
        });
        let addr = listener.local_addr().expect("an address");
        let settings = WebhookSettings {
            api_base_url: github.url(),
            api_timeout_ms: 2_000,
            read_timeout_ms: 2_000,
            ..WebhookSettings::default()
        };
        let env = |name: &str| match name {
            "GITHUB_WEBHOOK_SECRET" => Some(GITHUB_SECRET.to_owned()),
            "DEPLOY_GATE_WEBHOOK_SECRET" => Some(EVENTS_SECRET.to_owned()),
            _ => None,
        };
        let deps = WebhookDeps {
            producer,
            secrets: WebhookSecrets::from_env(&settings, &env).expect("secrets"),
            context: ContextOptions::default(),
            // Replay protection in memory only: this target is not about Redis.
            replay_store: None,
        };
        runtime.spawn(async move {
            serve(settings, deps, listener, std::future::pending())
                .await
                .expect("serving");
        });
        Receiver { addr, github }
    })
}

/// Sends one request and returns the status code.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> u16 {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connecting to the receiver");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("sending");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("the receiver answers within 30 s")
        .expect("reading the answer");
    let status = response.get(9..12).unwrap_or_default();
    std::str::from_utf8(status)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A header value of visible ASCII, spaces and tabs (what any HTTP stack passes
/// on), else `None`.
fn header_safe(value: &[u8]) -> Option<&[u8]> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then_some(value)
}

fuzz_target!(|data: &[u8]| {
    let mut fields = Fields::new(data);
    let route = fields.byte() % 5;
    let signing = fields.byte() % 3;
    let body = fields.field();
    let compare = fields.field();
    let signature_field = fields.field();
    let delivery_field = fields.field();
    let receiver = receiver();
    receiver.github.answer(200, compare);

    let (path, secret, signature_header, event) = match route {
        0 => ("/github", GITHUB_SECRET, "x-hub-signature-256", "push"),
        1 => (
            "/github",
            GITHUB_SECRET,
            "x-hub-signature-256",
            "pull_request",
        ),
        2 => ("/github", GITHUB_SECRET, "x-hub-signature-256", "ping"),
        3 => ("/github", GITHUB_SECRET, "x-hub-signature-256", "release"),
        _ => ("/events", EVENTS_SECRET, "x-gate-signature-256", ""),
    };
    let good = sign(secret, body);
    let (signature, well_signed): (Option<&[u8]>, bool) = match signing {
        0 => (Some(good.as_bytes()), true),
        1 => match header_safe(signature_field) {
            Some(value) => (Some(value), value.trim_ascii() == good.as_bytes()),
            None => (None, false),
        },
        _ => (None, false),
    };
    // A fresh delivery id unless the input names one: replay protection would
    // otherwise answer every later delivery of a seed "duplicate" before parsing it.
    static N_DELIVERIES: AtomicU64 = AtomicU64::new(0);
    let fresh = format!(
        "72d3162e-cc78-11e3-81ab-{:012x}",
        N_DELIVERIES.fetch_add(1, Ordering::Relaxed)
    );
    let delivery = header_safe(delivery_field)
        .filter(|d| !d.is_empty())
        .unwrap_or(fresh.as_bytes());
    let mut headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    if path == "/github" {
        headers.push(("x-github-event", event.as_bytes()));
        headers.push(("x-github-delivery", delivery));
    }
    if let Some(signature) = signature {
        headers.push((signature_header, signature));
    }

    let status = runtime().block_on(post(receiver.addr, path, &headers, body));
    assert_ne!(status, 0, "no HTTP answer");
    assert_ne!(status, 500, "the receiver answered 500");
    if !well_signed && signing != 1 {
        assert_eq!(status, 401, "an unsigned delivery was not refused");
    }
    if signing == 1 && status != 401 {
        // Accepted only with the right signature (any case of hex).
        assert!(
            signature_field
                .trim_ascii()
                .eq_ignore_ascii_case(good.as_bytes()),
            "a wrong signature was accepted"
        );
    }
});
