//! The mock over real HTTP: wrong requests get the providers' 400 bodies, and the
//! control API queues faults.

use gate_mock_llm::{MockConfig, MockServer};
use serde_json::{json, Value};

async fn start() -> MockServer {
    MockServer::start(MockConfig::default())
        .await
        .expect("mock server on loopback")
}

/// A Messages API request without the `anthropic-version` header (refused).
async fn unversioned_message(mock: &MockServer) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.anthropic_base_url()))
        .header("x-api-key", "k")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("the mock answers")
}

#[tokio::test]
async fn a_request_without_anthropic_version_gets_anthropics_error_body() {
    let mock = start().await;
    let response = unversioned_message(&mock).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
}

#[tokio::test]
async fn a_non_strict_schema_gets_openais_error_body() {
    let mock = start().await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": []});
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .bearer_auth("k")
        .json(&json!({
            "model": "gpt-4.1-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "v", "strict": true, "schema": schema}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "response_format");
    assert!(body["error"].get("code").is_some());
}

#[tokio::test]
async fn faults_queued_over_the_control_api_apply_to_the_next_requests() {
    let mock = start().await;
    let client = reqwest::Client::new();
    let queued = client
        .post(format!("{}/_mock/faults", mock.anthropic_base_url()))
        .json(&json!({"fault": "overloaded", "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 200);
    let request = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(format!("{}/v1/messages", mock.anthropic_base_url()))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .json(&request)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [529, 529, 200]);
    assert_eq!(mock.stats().n_requests, 3);
}

#[tokio::test]
async fn the_mocks_own_limit_answers_429_with_retry_after_and_headers() {
    let mock = MockServer::start(MockConfig {
        rpm: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let request = json!({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            client
                .post(format!("{}/chat/completions", mock.openai_base_url()))
                .bearer_auth("k")
                .json(&request)
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    assert!(last.headers().contains_key("retry-after"));
    assert_eq!(last.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(last.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(mock.stats().n_rate_limited, 1);
}

/// Statuses of `n` OpenAI requests in a row; 0 for one the mock never answered.
async fn statuses_of(mock: &MockServer, n: usize) -> Vec<u16> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .expect("an HTTP client");
    let request = json!({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = client
            .post(format!("{}/chat/completions", mock.openai_base_url()))
            .bearer_auth("k")
            .json(&request)
            .send()
            .await;
        let status = match sent {
            Err(error) if error.is_timeout() => 0,
            Err(error) => panic!("{error}"),
            Ok(response) => {
                let status = response.status().as_u16();
                // A 200 whose body is not a chat completion is a malformed answer.
                let text = response.text().await.expect("a body");
                // 200 with a body that is not a chat completion (1), or with a
                // verdict that breaks the schema (2), is a fault too.
                let verdict = |body: &Value| -> Option<Value> {
                    serde_json::from_str(body["choices"][0]["message"]["content"].as_str()?).ok()
                };
                match serde_json::from_str::<Value>(&text) {
                    _ if status != 200 => status,
                    Ok(body) => match verdict(&body) {
                        Some(v) if v["risk_score"].as_u64().is_some_and(|s| s <= 100) => 200,
                        _ => 2,
                    },
                    Err(_) => 1,
                }
            }
        };
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn a_fault_percent_fails_about_that_share_of_requests_with_mixed_faults_replayable_by_seed() {
    let config = MockConfig {
        fault_percent: 20,
        fault_seed: 7,
        ..Default::default()
    };
    let mock = MockServer::start(config.clone()).await.unwrap();
    let first = statuses_of(&mock, 200).await;
    let n_failed = first.iter().filter(|&&status| status != 200).count();
    assert_eq!(mock.stats().n_faults, n_failed as u64, "{first:?}");
    assert!(
        (20..=60).contains(&n_failed),
        "{n_failed} of 200 requests failed at 20 %: {first:?}"
    );
    let kinds: std::collections::BTreeSet<u16> =
        first.iter().copied().filter(|&s| s != 200).collect();
    assert!(kinds.len() >= 4, "mixed faults: {kinds:?}");
    let again = statuses_of(&MockServer::start(config).await.unwrap(), 200).await;
    assert_eq!(first, again, "the same seed fails the same requests");
    let healthy = statuses_of(&start().await, 20).await;
    assert!(healthy.iter().all(|&status| status == 200), "{healthy:?}");
}

#[tokio::test]
async fn forget_bodies_keeps_the_request_but_not_its_body() {
    for forget_bodies in [false, true] {
        let mock = MockServer::start(MockConfig {
            forget_bodies,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let status = unversioned_message(&mock).await.status();
        assert_eq!(status, 400, "no anthropic-version: refused, and recorded");
        let requests = mock.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].status, 400);
        assert_eq!(
            requests[0].headers.get("x-api-key").map(String::as_str),
            Some("****")
        );
        assert_eq!(
            requests[0].body.is_null(),
            forget_bodies,
            "{:?}",
            requests[0].body
        );
    }
}
