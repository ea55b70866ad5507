//! Signed approvals against the real local Redis and RabbitMQ: only a configured
//! approver's decision, signed with the shared key, supersedes the automatic one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use gate_bus::StreamOffset;
use gate_core::Recommendation;
use gate_orchestrator::{
    approve_signed, ApprovalRequest, ApprovalSettings, ApproveError, SigningKey,
};

use common::{decision, sha, Fleet};

const KEY: &str = "orchestrator-test-approval-key";

fn settings() -> ApprovalSettings {
    ApprovalSettings {
        approvers: vec!["alice".into()],
        signing_key: SigningKey::new(KEY),
        max_age_secs: 300,
    }
}

fn request(by: &str) -> ApprovalRequest {
    ApprovalRequest {
        event_id: "ev-signed".into(),
        recommendation: Recommendation::Deploy,
        by: by.into(),
        reason: "rollback plan reviewed".into(),
        signed_at: time::OffsetDateTime::now_utc().unix_timestamp(),
    }
}

#[tokio::test]
async fn forged_or_unknown_approvals_are_refused_and_change_nothing() {
    let fleet = Fleet::start(|_| {}).await;
    let automatic = decision("ev-signed", "acme/shop", &sha(0x51), 90);
    fleet.decide(&automatic).await;
    let deps = fleet.deps();
    let settings = settings();

    let forged = request("alice")
        .sign(&SigningKey::new("a key someone guessed"))
        .unwrap();
    let error = approve_signed(&deps, &settings, &forged).await.unwrap_err();
    assert!(matches!(error, ApproveError::Refused(_)), "{error}");
    assert!(error.to_string().contains("does not match"), "{error}");
    assert!(!error.is_retryable());

    let unknown = request("mallory").sign(&settings.signing_key).unwrap();
    let error = approve_signed(&deps, &settings, &unknown)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("\"mallory\" is not one of approvals.approvers"),
        "{error}"
    );

    let mut altered = request("alice").sign(&settings.signing_key).unwrap();
    altered.request.recommendation = Recommendation::Block;
    assert!(approve_signed(&deps, &settings, &altered).await.is_err());

    // Nothing was applied: the store has the automatic decision, the log only it.
    let store = fleet.redis.decision_store();
    assert_eq!(
        store.get("ev-signed").await.unwrap(),
        Some(automatic.clone())
    );
    let mut log = fleet
        .bus
        .consume_stream(&fleet.topology().decisions_log, 10, StreamOffset::First)
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), log.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.decision().unwrap(), automatic);
    first.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), log.next())
            .await
            .is_err(),
        "no person's decision was logged"
    );
    fleet.cleanup().await;
}

#[tokio::test]
async fn an_approvers_signed_decision_is_applied_with_who_why_and_the_signature() {
    let fleet = Fleet::start(|_| {}).await;
    let automatic = decision("ev-signed", "acme/shop", &sha(0x52), 90);
    fleet.decide(&automatic).await;
    let settings = settings();
    let signed = request("alice").sign(&settings.signing_key).unwrap();
    let human = approve_signed(&fleet.deps(), &settings, &signed)
        .await
        .unwrap();
    assert_eq!(human.recommendation, Recommendation::Deploy);
    let approval = human.approval.clone().unwrap();
    assert_eq!(approval.by, "alice");
    assert_eq!(approval.reason, "rollback plan reviewed");
    let note = format!("approval signature: hmac-sha256={}", signed.signature);
    assert!(
        human.consensus.notes.iter().any(|n| n.starts_with(&note)),
        "{:?}",
        human.consensus.notes
    );
    let store = fleet.redis.decision_store();
    assert_eq!(store.get("ev-signed").await.unwrap(), Some(human));
    fleet.cleanup().await;
}
