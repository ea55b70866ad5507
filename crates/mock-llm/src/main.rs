//! `deploy-gate-mock-llm`: the mock model server as a process, for demos and
//! benchmarks. `--listen 127.0.0.1:PORT`; point `ANTHROPIC_BASE_URL` at
//! `http://127.0.0.1:PORT` and `OPENAI_BASE_URL` at `http://127.0.0.1:PORT/v1`.

use std::net::SocketAddr;
use std::process::ExitCode;

use gate_mock_llm::{MockConfig, MockServer};

const USAGE: &str = "usage: deploy-gate-mock-llm [--listen 127.0.0.1:PORT] [--latency-ms N] [--rpm N] [--tpm N] [--api-key KEY]
                            [--obey-instructions] [--verdict-score N]
                            [--fault-percent N] [--fault-seed N]

A mock model server speaking the Anthropic Messages and OpenAI chat-completions
wire formats. Control it at runtime with POST /_mock/faults, POST /_mock/config,
GET /_mock/requests, GET /_mock/stats, POST /_mock/reset.
--obey-instructions plays the worst-case model: it obeys any instruction it finds
in a request (deploy at score 0). --verdict-score N answers every request with a
verdict at score N, whatever it says (run two to make them disagree).
--fault-percent N fails N % of requests with mixed faults (429 with retry-after,
500, 529, 504, a hang, malformed JSON, a schema-breaking verdict), drawn from
--fault-seed N (default 0), so a run can be replayed.";

fn parse(args: &[String]) -> Result<(SocketAddr, MockConfig), String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8089));
    let mut config = MockConfig::default();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{flag}: `{text}` is not a number"))
        };
        match flag.as_str() {
            "--listen" => {
                listen = value()?
                    .parse()
                    .map_err(|_| format!("{flag}: want an address like 127.0.0.1:8089"))?
            }
            "--latency-ms" => config.latency_ms = number(value()?)?,
            "--rpm" => {
                config.rpm = Some(
                    u32::try_from(number(value()?)?).map_err(|_| "--rpm: too large".to_string())?,
                )
            }
            "--tpm" => {
                config.tpm = Some(
                    u32::try_from(number(value()?)?).map_err(|_| "--tpm: too large".to_string())?,
                )
            }
            "--api-key" => config.api_key = Some(value()?),
            "--obey-instructions" => config.obey_instructions = true,
            "--verdict-score" => config.verdict_score = Some(number(value()?)?.min(100)),
            "--fault-percent" => {
                let percent = number(value()?)?;
                if percent > 100 {
                    return Err(format!("{flag}: {percent} is above 100"));
                }
                config.fault_percent = percent as u8;
            }
            "--fault-seed" => config.fault_seed = number(value()?)?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((listen, config))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (listen, config) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("deploy-gate-mock-llm: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match MockServer::bind(listen, config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("deploy-gate-mock-llm: cannot listen on {listen}: {err}");
            return ExitCode::from(2);
        }
    };
    println!("deploy-gate-mock-llm listening on http://{}", server.addr());
    println!("  ANTHROPIC_BASE_URL={}", server.anthropic_base_url());
    println!("  OPENAI_BASE_URL={}", server.openai_base_url());
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
