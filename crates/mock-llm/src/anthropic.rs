//! `POST /v1/messages`, as Anthropic's Messages API.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::script::Fault;
use crate::{count_tokens, json_reply, CacheKey, LimitReport, Outcome, Reply, Shared};

const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "service_tier",
];

/// The smallest prefix Anthropic caches for a model.
fn min_cacheable(model: &str) -> u64 {
    if model.starts_with("claude-opus-4-5")
        || model.starts_with("claude-opus-4-6")
        || model.starts_with("claude-haiku-4-5")
    {
        4_096
    } else if model.starts_with("claude-sonnet-4-6") || model.contains("haiku") {
        2_048
    } else {
        1_024
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn invalid(message: impl AsRef<str>) -> Outcome {
    Outcome::Reply(error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message.as_ref(),
    ))
}

pub(crate) fn add_limit_headers(reply: &mut Reply, report: &LimitReport) {
    let reset_at = |reset_in: Duration| {
        let at = time::OffsetDateTime::now_utc() + reset_in;
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let headers = reply.headers_mut();
    let mut put = |name: String, value: String| {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    };
    for (kind, window) in [
        ("requests", report.requests),
        ("input-tokens", report.tokens),
        ("tokens", report.tokens),
    ] {
        if let Some((limit, remaining, reset_in)) = window {
            put(
                format!("anthropic-ratelimit-{kind}-limit"),
                limit.to_string(),
            );
            put(
                format!("anthropic-ratelimit-{kind}-remaining"),
                remaining.to_string(),
            );
            put(
                format!("anthropic-ratelimit-{kind}-reset"),
                reset_at(reset_in),
            );
        }
    }
}

fn rate_limited(retry_after: Duration, report: &LimitReport) -> Reply {
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "This request would exceed your organization's rate limit. Please try again later.",
    );
    add_limit_headers(&mut reply, report);
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        reply.headers_mut().insert("retry-after", value);
    }
    reply
}

fn check_cache_control(value: &Value, at: &str, ttls: &mut Vec<Duration>) -> Result<(), String> {
    let Some(cache_control) = value.get("cache_control") else {
        return Ok(());
    };
    if cache_control.get("type").and_then(Value::as_str) != Some("ephemeral") {
        return Err(format!(
            "{at}.cache_control.type: Input should be 'ephemeral'"
        ));
    }
    for key in cache_control
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if key != "type" && key != "ttl" {
            return Err(format!(
                "{at}.cache_control.{key}: Extra inputs are not permitted"
            ));
        }
    }
    let ttl = match cache_control.get("ttl").map(|t| t.as_str()) {
        None | Some(Some("5m")) => Duration::from_secs(300),
        Some(Some("1h")) => Duration::from_secs(3_600),
        _ => {
            return Err(format!(
                "{at}.cache_control.ttl: Input should be '5m' or '1h'"
            ))
        }
    };
    ttls.push(ttl);
    Ok(())
}

fn validate(body: &Value) -> Result<Vec<Duration>, String> {
    let object = body
        .as_object()
        .ok_or("Request body must be a JSON object")?;
    for key in object.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return Err(format!("{key}: Extra inputs are not permitted"));
        }
    }
    match body.get("model").and_then(Value::as_str) {
        Some(model) if !model.is_empty() => {}
        _ => return Err("model: Field required".into()),
    }
    match body.get("max_tokens").and_then(Value::as_u64) {
        Some(n) if n >= 1 => {}
        Some(_) => return Err("max_tokens: Input should be greater than or equal to 1".into()),
        None => return Err("max_tokens: Field required".into()),
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("stream: this mock does not stream".into());
    }
    let mut ttls = Vec::new();
    let mut tool_names = Vec::new();
    if let Some(tools) = body.get("tools") {
        let tools = tools
            .as_array()
            .ok_or("tools: Input should be a valid list")?;
        for (idx, tool) in tools.iter().enumerate() {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or(format!("tools.{idx}.name: Field required"))?;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "tools.{idx}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                ));
            }
            let schema = tool
                .get("input_schema")
                .ok_or(format!("tools.{idx}.input_schema: Field required"))?;
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(format!(
                    "tools.{idx}.input_schema.type: Input should be 'object'"
                ));
            }
            check_cache_control(tool, &format!("tools.{idx}"), &mut ttls)?;
            tool_names.push(name.to_string());
        }
    }
    if let Some(choice) = body.get("tool_choice") {
        let kind = choice
            .get("type")
            .and_then(Value::as_str)
            .ok_or("tool_choice.type: Field required")?;
        match kind {
            "auto" | "any" | "none" => {}
            "tool" => {
                let name = choice.get("name").and_then(Value::as_str).ok_or("tool_choice.tool.name: Field required")?;
                if !tool_names.iter().any(|t| t == name) {
                    return Err(format!("tool_choice: Tool '{name}' not found in tools"));
                }
            }
            other => return Err(format!("tool_choice: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")),
        }
        if kind != "none" && tool_names.is_empty() {
            return Err("tool_choice may only be specified while providing tools.".into());
        }
    }
    match body.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (idx, block) in blocks.iter().enumerate() {
                if block.get("type").and_then(Value::as_str) != Some("text")
                    || !block.get("text").is_some_and(Value::is_string)
                {
                    return Err(format!(
                        "system.{idx}: system blocks must be text blocks with a `text` string"
                    ));
                }
                check_cache_control(block, &format!("system.{idx}"), &mut ttls)?;
            }
        }
        Some(_) => {
            return Err("system: Input should be a valid string or list of text blocks".into())
        }
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut last_tool_use_ids: Vec<String> = Vec::new();
    for (idx, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or(format!("messages.{idx}.role: Field required"))?;
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{idx}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if idx == 0 && role != "user" {
            return Err("messages: first message must use the \"user\" role".into());
        }
        match message.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                let mut tool_use_ids = Vec::new();
                for (b, block) in blocks.iter().enumerate() {
                    let at = format!("messages.{idx}.content.{b}");
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") if block.get("text").is_some_and(Value::is_string) => {}
                        Some("tool_use") if role == "assistant" => {
                            tool_use_ids.push(
                                block
                                    .get("id")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string(),
                            );
                        }
                        Some("tool_result") if role == "user" => {
                            let id = block
                                .get("tool_use_id")
                                .and_then(Value::as_str)
                                .ok_or(format!("{at}.tool_use_id: Field required"))?;
                            if !last_tool_use_ids.iter().any(|known| known == id) {
                                return Err(format!("{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."));
                            }
                        }
                        Some(other) => {
                            return Err(format!("{at}: block type '{other}' is not valid here"))
                        }
                        None => return Err(format!("{at}.type: Field required")),
                    }
                    check_cache_control(block, &at, &mut ttls)?;
                }
                last_tool_use_ids = tool_use_ids;
            }
            _ => return Err(format!("messages.{idx}.content: Field required")),
        }
    }
    if ttls.len() > 4 {
        return Err(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {}.",
            ttls.len()
        ));
    }
    if ttls.windows(2).any(|pair| pair[0] < pair[1]) {
        return Err(
            "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"
                .into(),
        );
    }
    Ok(ttls)
}

/// The prompt as Anthropic caches it: tools, then system, then messages, each block a
/// segment; the token count at every breakpoint, keyed by the hash of the model
/// and the prefix text up to it (hashed as it goes: no copy of the prefix).
fn breakpoints(body: &Value) -> (u64, Vec<(CacheKey, u64, Duration)>) {
    let mut prefix = xxhash_rust::xxh3::Xxh3::new();
    prefix.update(body["model"].to_string().as_bytes());
    prefix.update(&[0]);
    let mut tokens = 0;
    let mut points = Vec::new();
    let mut segment = |value: &Value, text: &str| {
        tokens += count_tokens(text);
        prefix.update(text.as_bytes());
        prefix.update(&[0]);
        if let Some(cache_control) = value.get("cache_control") {
            let ttl = if cache_control.get("ttl").and_then(Value::as_str) == Some("1h") {
                3_600
            } else {
                300
            };
            points.push((prefix.digest128(), tokens, Duration::from_secs(ttl)));
        }
    };
    for tool in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut bare = tool.clone();
        if let Some(obj) = bare.as_object_mut() {
            obj.remove("cache_control");
        }
        segment(tool, &bare.to_string());
    }
    match body.get("system") {
        Some(Value::String(text)) => segment(&Value::Null, text),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                segment(block, block["text"].as_str().unwrap_or_default());
            }
        }
        _ => {}
    }
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(text) => segment(&Value::Null, text),
            Value::Array(blocks) => {
                for block in blocks {
                    match block["type"].as_str() {
                        Some("text") => segment(block, block["text"].as_str().unwrap_or_default()),
                        Some("tool_use") => segment(block, &block["input"].to_string()),
                        _ => segment(block, &block["content"].to_string()),
                    }
                }
            }
            _ => {}
        }
    }
    (tokens, points)
}

/// The text of the first user message: where the change and its markers are.
fn user_text(body: &Value) -> String {
    let first = &body["messages"][0]["content"];
    match first {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(crate) async fn handle(shared: &Shared, headers: &HeaderMap, bytes: &[u8]) -> Outcome {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (header("x-api-key"), shared.api_key()) {
        (None, _) | (Some(""), _) => {
            return Outcome::Reply(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            ))
        }
        (Some(got), Some(want)) if got != want => {
            return Outcome::Reply(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            ))
        }
        _ => {}
    }
    match header("anthropic-version") {
        None => return invalid("anthropic-version: header is required"),
        Some("2023-06-01") => {}
        Some(other) => return invalid(format!("anthropic-version: unknown version {other}")),
    }
    if !header("content-type").is_some_and(|ct| ct.starts_with("application/json")) {
        return invalid("content-type: must be application/json");
    }
    let body: Value = match serde_json::from_slice(bytes) {
        Ok(body) => body,
        Err(err) => {
            return invalid(format!(
                "There was an issue with your request body: invalid JSON: {err}"
            ))
        }
    };
    if let Err(message) = validate(&body) {
        return invalid(message);
    }
    let text = user_text(&body);
    let fault = shared.take_fault(&text);
    match fault {
        Some(Fault::Unauthorized) => return Outcome::Reply(error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key")),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let report = LimitReport { requests: Some((50, 0, Duration::from_secs(retry_after_secs))), tokens: None };
            return Outcome::Reply(rate_limited(Duration::from_secs(retry_after_secs), &report));
        }
        Some(Fault::Overloaded) => return Outcome::Reply(error(StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "overloaded_error", "Overloaded")),
        Some(Fault::ServerError) => return Outcome::Reply(error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "Internal server error")),
        Some(Fault::GatewayTimeout) => return Outcome::Reply(error(StatusCode::GATEWAY_TIMEOUT, "timeout_error", "Request timed out")),
        Some(Fault::InsufficientQuota) => return invalid("Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."),
        Some(Fault::Hang) => return Outcome::Hang,
        _ => {}
    }
    let (total_tokens, points) = breakpoints(&body);
    let report = match shared.admit(total_tokens) {
        Ok(report) => report,
        Err((wait, report)) => return Outcome::Reply(rate_limited(wait, &report)),
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let (read, written_5m, written_1h) = shared.anthropic_cache(&points, min_cacheable(&model));
    let input_tokens = total_tokens - read - written_5m - written_1h;
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(1);
    let id = shared.next_id();
    let forced_tool = body["tool_choice"]["name"].as_str().map(str::to_string);
    let verdict = shared.verdict(&text, fault.as_ref());
    let (content, stop_reason, output_tokens) = match fault {
        Some(Fault::MalformedJson) => {
            let mut reply = json_reply(StatusCode::OK, &Value::Null);
            *reply.body_mut() = http_body_util::Full::new(hyper::body::Bytes::from_static(
                b"{\"id\": \"msg_mock\", \"type\": \"message\", \"content\": [{\"type\": \"tool_u",
            ));
            return Outcome::Reply(reply);
        }
        Some(Fault::MaxTokens) => (
            json!([{"type": "text", "text": "Let me look at the migration first"}]),
            "max_tokens",
            max_tokens,
        ),
        Some(Fault::Refusal) => (json!([]), "refusal", 0),
        Some(Fault::EndTurnWithoutTool) => (
            json!([{"type": "text", "text": "This change looks fine."}]),
            "end_turn",
            6,
        ),
        _ => match forced_tool {
            Some(name) => {
                let output = count_tokens(&verdict.to_string()) + 20;
                (
                    json!([{"type": "tool_use", "id": format!("toolu_mock_{id:06}"), "name": name, "input": verdict}]),
                    "tool_use",
                    output,
                )
            }
            None => (
                json!([{"type": "text", "text": verdict.to_string()}]),
                "end_turn",
                count_tokens(&verdict.to_string()),
            ),
        },
    };
    let response = json!({
        "id": format!("msg_mock_{id:06}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": written_5m + written_1h,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written_5m, "ephemeral_1h_input_tokens": written_1h},
            "output_tokens": output_tokens.min(max_tokens),
        }
    });
    let mut reply = json_reply(StatusCode::OK, &response);
    add_limit_headers(&mut reply, &report);
    Outcome::Reply(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "tools": [{"name": "record_verdict", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "record_verdict"},
            "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "diff"}]}]
        })
    }

    #[test]
    fn a_well_formed_request_passes() {
        assert!(validate(&body()).is_ok());
    }

    #[test]
    fn malformed_requests_are_refused_with_the_field_named() {
        let mut no_max = body();
        no_max.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(validate(&no_max).unwrap_err(), "max_tokens: Field required");
        let mut wrong_tool = body();
        wrong_tool["tool_choice"] = json!({"type": "tool", "name": "other"});
        assert!(validate(&wrong_tool).unwrap_err().contains("not found"));
        let mut no_name = body();
        no_name["tool_choice"] = json!({"type": "tool"});
        assert!(validate(&no_name)
            .unwrap_err()
            .contains("name: Field required"));
        let mut extra = body();
        extra["foo"] = json!(1);
        assert!(validate(&extra).unwrap_err().contains("Extra inputs"));
        let mut bad_ttl = body();
        bad_ttl["system"][0]["cache_control"]["ttl"] = json!("10m");
        assert!(validate(&bad_ttl).unwrap_err().contains("ttl"));
    }

    #[test]
    fn more_than_four_breakpoints_are_refused() {
        let mut many = body();
        let block = json!({"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}});
        many["system"] = json!([block, block, block, block, block]);
        assert!(validate(&many).unwrap_err().contains("maximum of 4"));
    }

    #[test]
    fn one_hour_breakpoints_must_come_first() {
        let mut mixed = body();
        mixed["system"] = json!([
            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "y", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ]);
        assert!(validate(&mixed).unwrap_err().contains("1h"));
    }
}
