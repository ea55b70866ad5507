//! Who may approve or override, and the proof that they did: a person's decision
//! is applied only when it names a configured approver and carries an HMAC-SHA256
//! signature, under the shared `approvals.signing_key`, over its canonical form
//! (event id, recommendation, by, reason, timestamp), made within
//! `approvals.max_age_secs`. The signature is recorded with the decision (a
//! consensus note) so an auditor holding the key can check it later.
//!
//! The CLI signs with the key from `DEPLOY_GATE__APPROVALS__SIGNING_KEY`; a ChatOps
//! bot or a deploy tool that holds the key can sign for the people it
//! authenticated and hand [`approve_signed`] the result.

use std::fmt;

use gate_core::{Decision, Recommendation};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize, Serializer};
use sha2::Sha256;

use crate::{approve::apply, deps::OrchestratorDeps, ApproveError};

/// The shared key approvals are signed with. `Debug` and `Serialize` mask it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SigningKey(String);

impl SigningKey {
    /// A key from its text (tests, embedding).
    pub fn new(key: impl Into<String>) -> SigningKey {
        SigningKey(key.into())
    }

    fn is_set(&self) -> bool {
        !self.0.trim().is_empty()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(self.0.as_bytes()).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() { "****" } else { "(unset)" })
    }
}

impl Serialize for SigningKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_set() { "****" } else { "" })
    }
}

/// `[approvals]`: who may approve or override, and the key their decisions are
/// signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// The people (as given to `--by`) whose decisions are applied. Empty: nobody
    /// may approve or override.
    pub approvers: Vec<String>,
    /// The shared HMAC key. A secret: set it through
    /// `DEPLOY_GATE__APPROVALS__SIGNING_KEY`, never in a file.
    pub signing_key: SigningKey,
    /// How old a signed decision may be when it is applied (and how far in the
    /// future): a captured one cannot be replayed later.
    pub max_age_secs: u64,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            approvers: Vec::new(),
            signing_key: SigningKey::default(),
            max_age_secs: 300,
        }
    }
}

/// A person's decision, before or after signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The event whose decision is superseded.
    pub event_id: String,
    /// What the person decided.
    pub recommendation: Recommendation,
    /// Who (must be one of `approvals.approvers`).
    pub by: String,
    /// Why, in their words.
    pub reason: String,
    /// When it was signed, Unix seconds.
    pub signed_at: i64,
}

impl ApprovalRequest {
    /// The bytes the signature covers: a version line, then each field
    /// length-prefixed, so no two different requests share a form.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = b"deploy-gate-approval/v1\n".to_vec();
        let recommendation = self.recommendation.to_string();
        let signed_at = self.signed_at.to_string();
        for field in [
            self.event_id.as_str(),
            recommendation.as_str(),
            self.by.as_str(),
            self.reason.as_str(),
            signed_at.as_str(),
        ] {
            out.extend_from_slice(format!("{}:", field.len()).as_bytes());
            out.extend_from_slice(field.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Signs the request with `key`.
    pub fn sign(self, key: &SigningKey) -> Result<SignedApproval, ApproveError> {
        if !key.is_set() {
            return Err(ApproveError::Refused(NO_KEY.to_string()));
        }
        let mut mac = key.mac();
        mac.update(&self.canonical());
        let signature = hex(&mac.finalize().into_bytes());
        Ok(SignedApproval {
            request: self,
            signature,
        })
    }
}

/// A request with its signature (`hex` of HMAC-SHA256 over
/// [`ApprovalRequest::canonical`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedApproval {
    /// What was decided, by whom, when.
    pub request: ApprovalRequest,
    /// Lowercase hex, 64 digits.
    pub signature: String,
}

const NO_KEY: &str =
    "approvals.signing_key is not set: set DEPLOY_GATE__APPROVALS__SIGNING_KEY (the shared approval key)";

impl ApprovalSettings {
    /// Checks `signed` at `now` (Unix seconds): a key is configured, the
    /// signature matches (constant time), the signer is an approver, the
    /// signature is fresh. The error says which, never the expected signature.
    pub fn verify(&self, signed: &SignedApproval, now: i64) -> Result<(), ApproveError> {
        let refuse = |why: String| Err(ApproveError::Refused(why));
        if !self.signing_key.is_set() {
            return refuse(NO_KEY.to_string());
        }
        let Some(given) = unhex(&signed.signature) else {
            return refuse("the approval's signature is not 64 hex digits".to_string());
        };
        let mut mac = self.signing_key.mac();
        mac.update(&signed.request.canonical());
        if mac.verify_slice(&given).is_err() {
            return refuse(
                "the approval's signature does not match (forged, altered, or signed with another approvals.signing_key)"
                    .to_string(),
            );
        }
        let by = signed.request.by.trim();
        if !self.approvers.iter().any(|approver| approver.trim() == by) {
            return refuse(if self.approvers.is_empty() {
                "no approvers are configured (approvals.approvers is empty): nobody may approve or override".to_string()
            } else {
                format!("{by:?} is not one of approvals.approvers")
            });
        }
        let age = now.saturating_sub(signed.request.signed_at);
        let max_age = i64::try_from(self.max_age_secs).unwrap_or(i64::MAX);
        if age.abs() > max_age {
            return refuse(format!(
                "the approval was signed {age} s from now, outside approvals.max_age_secs = {max_age} (a replay, or a clock to fix)"
            ));
        }
        Ok(())
    }
}

/// Applies a signed person's decision: verifies it against `settings` (approver,
/// signature, age) and only then supersedes the automatic decision and publishes
/// the person's one, as [`approve`](crate::approve) does. The decision records
/// who and why (`approval`) and the signature (a consensus note
/// `approval signature: hmac-sha256=<hex> signed_at=<unix>`).
///
/// Errors: [`ApproveError::Refused`] with the reason when the check fails —
/// nothing is stored or published then — and the errors of [`approve`](crate::approve).
pub async fn approve_signed(
    deps: &OrchestratorDeps,
    settings: &ApprovalSettings,
    signed: &SignedApproval,
) -> Result<Decision, ApproveError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(refused) = settings.verify(signed, now) {
        tracing::warn!(event_id = %signed.request.event_id, by = %signed.request.by, error = %refused, "approval refused");
        return Err(refused);
    }
    let request = &signed.request;
    let note = format!(
        "approval signature: hmac-sha256={} signed_at={}",
        signed.signature, request.signed_at
    );
    apply(
        deps,
        &request.event_id,
        &request.by,
        &request.reason,
        request.recommendation,
        Some(note),
    )
    .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings() -> ApprovalSettings {
        ApprovalSettings {
            approvers: vec!["alice".into(), "bob".into()],
            signing_key: SigningKey::new("test-approval-key-not-secret"),
            max_age_secs: 300,
        }
    }

    fn request(by: &str, at: i64) -> ApprovalRequest {
        ApprovalRequest {
            event_id: "ev-1".into(),
            recommendation: Recommendation::Deploy,
            by: by.into(),
            reason: "rollback plan reviewed".into(),
            signed_at: at,
        }
    }

    #[test]
    fn an_approvers_fresh_signed_decision_is_accepted() {
        let settings = settings();
        let signed = request("alice", 1_000).sign(&settings.signing_key).unwrap();
        assert_eq!(signed.signature.len(), 64);
        settings.verify(&signed, 1_010).unwrap();
    }

    #[test]
    fn forged_altered_unknown_stale_or_unsigned_decisions_are_refused_with_the_reason() {
        let settings = settings();
        let reason = |result: Result<(), ApproveError>| result.unwrap_err().to_string();

        let other_key = SigningKey::new("another key");
        let forged = request("alice", 1_000).sign(&other_key).unwrap();
        assert!(reason(settings.verify(&forged, 1_000)).contains("does not match"));

        let mut altered = request("alice", 1_000).sign(&settings.signing_key).unwrap();
        altered.request.recommendation = Recommendation::Block;
        assert!(reason(settings.verify(&altered, 1_000)).contains("does not match"));
        let mut altered = request("alice", 1_000).sign(&settings.signing_key).unwrap();
        altered.request.by = "mallory".into();
        assert!(reason(settings.verify(&altered, 1_000)).contains("does not match"));

        let unknown = request("mallory", 1_000)
            .sign(&settings.signing_key)
            .unwrap();
        assert!(reason(settings.verify(&unknown, 1_000))
            .contains("\"mallory\" is not one of approvals.approvers"));

        let stale = request("bob", 1_000).sign(&settings.signing_key).unwrap();
        assert!(reason(settings.verify(&stale, 1_000 + 301)).contains("max_age_secs"));

        let garbage = SignedApproval {
            request: request("alice", 1_000),
            signature: "zz".into(),
        };
        assert!(reason(settings.verify(&garbage, 1_000)).contains("64 hex digits"));

        let unconfigured = ApprovalSettings::default();
        let signed = request("alice", 1_000).sign(&settings.signing_key).unwrap();
        assert!(reason(unconfigured.verify(&signed, 1_000))
            .contains("DEPLOY_GATE__APPROVALS__SIGNING_KEY"));
        assert!(request("alice", 1).sign(&SigningKey::default()).is_err());

        let nobody = ApprovalSettings {
            approvers: vec![],
            ..settings.clone()
        };
        assert!(reason(nobody.verify(&signed, 1_000)).contains("approvals.approvers is empty"));
    }

    #[test]
    fn the_canonical_form_separates_its_fields() {
        let mut a = request("alice", 1);
        a.reason = "x\n5:y".into();
        let mut b = request("alice", 1);
        b.reason = "x".into();
        assert_ne!(a.canonical(), b.canonical());
    }

    #[test]
    fn the_key_is_masked_in_every_rendering() {
        let settings = settings();
        let shown = format!("{settings:?} {}", serde_json::to_string(&settings).unwrap());
        assert!(!shown.contains("test-approval-key"), "{shown}");
    }
}
