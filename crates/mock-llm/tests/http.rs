//! The mock over real HTTP: wrong requests get the providers' 400 bodies, and the
//! control API queues faults.

use gate_mock_llm::{MockConfig, MockServer};
use serde_json::{json, Value};

async fn start() -> MockServer {
    MockServer::start(MockConfig::default())
        .await
        .expect("mock server on loopback")
}

#[tokio::test]
async fn a_request_without_anthropic_version_gets_anthropics_error_body() {
    let mock = start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.anthropic_base_url()))
        .header("x-api-key", "k")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
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
