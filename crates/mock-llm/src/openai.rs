//! `POST /v1/chat/completions`, as OpenAI's chat-completions API.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::script::Fault;
use crate::{count_tokens, go_duration, json_reply, LimitReport, Outcome, Reply, Shared};

fn error(
    status: StatusCode,
    kind: &str,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    json_reply(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

fn invalid(message: impl AsRef<str>, param: Option<&str>) -> Outcome {
    Outcome::Reply(error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message.as_ref(),
        param,
        None,
    ))
}

fn add_limit_headers(reply: &mut Reply, report: &LimitReport) {
    let headers = reply.headers_mut();
    for (kind, window) in [("requests", report.requests), ("tokens", report.tokens)] {
        if let Some((limit, remaining, reset_in)) = window {
            for (name, value) in [
                (format!("x-ratelimit-limit-{kind}"), limit.to_string()),
                (
                    format!("x-ratelimit-remaining-{kind}"),
                    remaining.to_string(),
                ),
                (format!("x-ratelimit-reset-{kind}"), go_duration(reset_in)),
            ] {
                if let (Ok(name), Ok(value)) = (
                    hyper::header::HeaderName::try_from(name),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

fn rate_limited(retry_after: Duration, report: &LimitReport) -> Reply {
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "requests",
        "Rate limit reached for requests. Please try again later.",
        None,
        Some("rate_limit_exceeded"),
    );
    add_limit_headers(&mut reply, report);
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        reply.headers_mut().insert("retry-after", value);
    }
    reply
}

/// Checks a schema against the rules of `strict: true`: every object closes
/// `additionalProperties` and requires every property.
fn check_strict(node: &Value, at: &str) -> Result<(), String> {
    if node.get("type").is_some_and(|t| {
        t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object")))
    }) {
        if node.get("additionalProperties") != Some(&json!(false)) {
            return Err(format!("Invalid schema for response_format 'json_schema': In context=({at}), 'additionalProperties' is required to be supplied and to be false."));
        }
        let properties = node
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for name in properties.keys() {
            if !required.contains(&name.as_str()) {
                return Err(format!(
                    "Invalid schema for response_format 'json_schema': In context=({at}), 'required' is required to be supplied and to be an array including every key in properties. Missing '{name}'."
                ));
            }
        }
        for (name, child) in &properties {
            check_strict(child, &format!("{at}, 'properties', '{name}'"))?;
        }
    }
    if let Some(items) = node.get("items") {
        check_strict(items, &format!("{at}, 'items'"))?;
    }
    for key in ["anyOf", "$defs", "definitions"] {
        match node.get(key) {
            Some(Value::Array(list)) => {
                list.iter().try_for_each(|child| check_strict(child, at))?
            }
            Some(Value::Object(map)) => {
                map.values().try_for_each(|child| check_strict(child, at))?
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate(body: &Value) -> Result<(), (String, Option<&'static str>)> {
    let object = body.as_object().ok_or((
        "We could not parse the JSON body of your request.".to_string(),
        None,
    ))?;
    if object
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(("you must provide a model parameter".into(), Some("model")));
    }
    let messages = object.get("messages").and_then(Value::as_array).ok_or((
        "Missing required parameter: 'messages'.".to_string(),
        Some("messages"),
    ))?;
    if messages.is_empty() {
        return Err((
            "Invalid 'messages': empty array. Expected an array with minimum length 1.".into(),
            Some("messages"),
        ));
    }
    for (idx, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("system" | "developer" | "user" | "assistant" | "tool") => {}
            _ => {
                return Err((
                    format!("Invalid value for 'messages[{idx}].role'."),
                    Some("messages"),
                ))
            }
        }
        if !message
            .get("content")
            .is_some_and(|c| c.is_string() || c.is_array())
        {
            return Err((
                format!("Missing required parameter: 'messages[{idx}].content'."),
                Some("messages"),
            ));
        }
    }
    if object.contains_key("max_tokens") && object.contains_key("max_completion_tokens") {
        return Err((
            "Use either max_tokens or max_completion_tokens, not both.".into(),
            Some("max_tokens"),
        ));
    }
    if let Some(format) = object.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text" | "json_object") => {}
            Some("json_schema") => {
                let spec = format.get("json_schema").ok_or((
                    "Missing required parameter: 'response_format.json_schema'.".to_string(),
                    Some("response_format"),
                ))?;
                let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty()
                    || name.len() > 64
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(("Invalid 'response_format.json_schema.name': must match '^[a-zA-Z0-9_-]{1,64}$'.".into(), Some("response_format")));
                }
                let schema = spec.get("schema").ok_or((
                    "Missing required parameter: 'response_format.json_schema.schema'.".to_string(),
                    Some("response_format"),
                ))?;
                if spec.get("strict") == Some(&json!(true)) {
                    if schema.get("type") != Some(&json!("object")) {
                        return Err((
                            "Invalid schema for response_format: the root must be an object."
                                .into(),
                            Some("response_format"),
                        ));
                    }
                    check_strict(schema, "root")
                        .map_err(|message| (message, Some("response_format")))?;
                }
            }
            _ => {
                return Err((
                    "Invalid value for 'response_format.type'.".into(),
                    Some("response_format"),
                ))
            }
        }
    }
    Ok(())
}

fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(crate) async fn handle(shared: &Shared, headers: &HeaderMap, bytes: &[u8]) -> Outcome {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|k| !k.trim().is_empty());
    let unauthorized = || {
        Outcome::Reply(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            None,
            Some("invalid_api_key"),
        ))
    };
    match (key, shared.api_key()) {
        (None, _) => {
            return Outcome::Reply(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
                None,
                None,
            ))
        }
        (Some(got), Some(want)) if got != want => return unauthorized(),
        _ => {}
    }
    let body: Value = match serde_json::from_slice(bytes) {
        Ok(body) => body,
        Err(_) => return invalid("We could not parse the JSON body of your request.", None),
    };
    if let Err((message, param)) = validate(&body) {
        return invalid(message, param);
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let user = messages
        .iter()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let fault = shared.take_fault(&user);
    match fault {
        Some(Fault::Unauthorized) => return unauthorized(),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let report = LimitReport {
                requests: Some((500, 0, Duration::from_secs(retry_after_secs))),
                tokens: None,
            };
            return Outcome::Reply(rate_limited(Duration::from_secs(retry_after_secs), &report));
        }
        Some(Fault::InsufficientQuota) => {
            return Outcome::Reply(error(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details.",
                None,
                Some("insufficient_quota"),
            ))
        }
        Some(Fault::Overloaded) => {
            return Outcome::Reply(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "The engine is currently overloaded, please try again later",
                None,
                None,
            ))
        }
        Some(Fault::ServerError) => {
            return Outcome::Reply(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The server had an error while processing your request.",
                None,
                None,
            ))
        }
        Some(Fault::GatewayTimeout) => {
            return Outcome::Reply(error(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "Gateway timeout",
                None,
                None,
            ))
        }
        Some(Fault::Hang) => return Outcome::Hang,
        _ => {}
    }
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| count_tokens(&message_text(m)))
        .sum::<u64>()
        + count_tokens(&body["response_format"].to_string());
    let report = match shared.admit(prompt_tokens) {
        Ok(report) => report,
        Err((wait, report)) => return Outcome::Reply(rate_limited(wait, &report)),
    };
    // The cacheable prefix: the leading system messages and the response format.
    let system: String = messages
        .iter()
        .take_while(|m| m["role"] == "system" || m["role"] == "developer")
        .map(message_text)
        .collect();
    let prefix_tokens = count_tokens(&system) + count_tokens(&body["response_format"].to_string());
    let cached = shared
        .openai_cache(
            crate::cache_key([
                body["model"].to_string().as_str(),
                body["response_format"].to_string().as_str(),
                system.as_str(),
            ]),
            prefix_tokens,
        )
        .min(prompt_tokens);
    let id = shared.next_id();
    let verdict = shared.verdict(&user, fault.as_ref());
    let (content, refusal, finish_reason) = match fault {
        Some(Fault::MalformedJson) => {
            let mut reply = json_reply(StatusCode::OK, &Value::Null);
            *reply.body_mut() = http_body_util::Full::new(hyper::body::Bytes::from_static(
                b"{\"id\": \"chatcmpl-mock\", \"choices\": [{\"mess",
            ));
            return Outcome::Reply(reply);
        }
        Some(Fault::MaxTokens) => (json!("{\"risk_score\": 9"), Value::Null, "length"),
        Some(Fault::Refusal) => (
            Value::Null,
            json!("I'm sorry, I can't help with that."),
            "stop",
        ),
        _ => (json!(verdict.to_string()), Value::Null, "stop"),
    };
    let completion_tokens = content.as_str().map(count_tokens).unwrap_or(10);
    let response = json!({
        "id": format!("chatcmpl-mock{id:06}"),
        "object": "chat.completion",
        "created": time::OffsetDateTime::now_utc().unix_timestamp(),
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0}
        }
    });
    let mut reply = json_reply(StatusCode::OK, &response);
    add_limit_headers(&mut reply, &report);
    Outcome::Reply(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_schemas_must_close_and_require_every_object() {
        let open =
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(check_strict(&open, "root")
            .unwrap_err()
            .contains("additionalProperties"));
        let optional = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"], "additionalProperties": false});
        assert!(check_strict(&optional, "root")
            .unwrap_err()
            .contains("Missing 'b'"));
        let nested = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object", "properties": {}, "required": []}}}, "required": ["a"], "additionalProperties": false});
        assert!(check_strict(&nested, "root").is_err());
    }
}
