//! Infrastructure findings that need a little state across lines: Terraform resources
//! removed (and not re-added or moved), ingress rules open to the internet, Kubernetes
//! objects deleted, and GitHub Actions `pull_request_target` workflows that check out
//! the pull request's code.

use std::collections::BTreeMap;

use gate_core::{Category, Evidence, LineKind, Severity};

use crate::findings::{Findings, Group};

pub(crate) static INFRA_TF_REMOVED: Group = Group {
    id: "infra.tf-removed",
    category: Category::Infra,
    severity: Severity::High,
    bonus: 8,
    title: "Terraform resource removed (destroyed on apply)",
};
pub(crate) static INFRA_OPEN_INGRESS: Group = Group {
    id: "infra.open-ingress",
    category: Category::Infra,
    severity: Severity::High,
    bonus: 6,
    title: "Ingress open to the whole internet (0.0.0.0/0)",
};
pub(crate) static INFRA_K8S_REMOVED: Group = Group {
    id: "infra.k8s-removed",
    category: Category::Infra,
    severity: Severity::High,
    bonus: 6,
    title: "Kubernetes object deleted",
};
pub(crate) static INFRA_PRT_CHECKOUT: Group = Group {
    id: "infra.prt-checkout",
    category: Category::Infra,
    severity: Severity::High,
    bonus: 8,
    title: "pull_request_target workflow checks out untrusted pull-request code",
};

/// Kubernetes kinds whose deletion takes a running service or its data away.
const K8S_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Service",
    "Ingress",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Namespace",
    "CronJob",
    "ReplicaSet",
    "Rollout",
];

/// Terraform resources kept for the removed-vs-re-added comparison.
const MAX_TF_RESOURCES: usize = 4_096;

/// Cross-file Terraform bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct TerraformLedger {
    removed: Vec<(String, Evidence)>,
    added: std::collections::BTreeSet<String>,
}

impl TerraformLedger {
    /// Resources removed and not declared again (or moved) anywhere in the change.
    pub(crate) fn finish(self, findings: &mut Findings) {
        for (key, evidence) in self.removed {
            if !self.added.contains(&key) {
                let file = evidence.file.clone();
                findings.record(&INFRA_TF_REMOVED, &file, evidence, None);
            }
        }
    }
}

/// Streaming state of one infrastructure file.
#[derive(Debug)]
pub(crate) struct InfraScan {
    path: String,
    terraform: bool,
    workflow: bool,
    /// `Some(true)` inside an ingress rule, `Some(false)` inside an egress rule.
    ingress: Option<bool>,
    pub k8s: bool,
    k8s_removed: Vec<(&'static str, Evidence)>,
    k8s_added: BTreeMap<&'static str, u32>,
    pull_request_target: bool,
    head_checkout: Option<Evidence>,
}

impl InfraScan {
    pub(crate) fn new(path: &str, terraform: bool) -> Self {
        InfraScan {
            path: path.to_string(),
            terraform,
            workflow: path.starts_with(".github/workflows/"),
            ingress: None,
            k8s: false,
            k8s_removed: Vec::new(),
            k8s_added: BTreeMap::new(),
            pull_request_target: false,
            head_checkout: None,
        }
    }

    pub(crate) fn line(
        &mut self,
        kind: LineKind,
        line_no: u32,
        text: &str,
        findings: &mut Findings,
        ledger: &mut TerraformLedger,
    ) {
        let trimmed = text.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            return;
        }
        if self.terraform {
            self.terraform_line(kind, line_no, trimmed, ledger);
        }
        if kind != LineKind::Removed {
            if trimmed.contains("egress") || trimmed.contains("Egress") {
                self.ingress = Some(false);
            } else if trimmed.contains("ingress") || trimmed.contains("Ingress") {
                self.ingress = Some(true);
            }
        }
        if kind == LineKind::Added
            && (trimmed.contains("0.0.0.0/0") || trimmed.contains("::/0"))
            && self.ingress != Some(false)
        {
            findings.record(
                &INFRA_OPEN_INGRESS,
                &self.path,
                Evidence::line(&self.path, line_no, text),
                None,
            );
        }
        if trimmed.starts_with("apiVersion:") {
            self.k8s = true;
        }
        if let Some(value) = trimmed.strip_prefix("kind:") {
            let value = value.trim().trim_matches(['"', '\'']);
            if let Some(kind_name) = K8S_KINDS.iter().find(|k| **k == value) {
                self.k8s = true;
                match kind {
                    LineKind::Removed if self.k8s_removed.len() < 64 => {
                        self.k8s_removed
                            .push((kind_name, Evidence::line(&self.path, line_no, text)));
                    }
                    LineKind::Added => *self.k8s_added.entry(kind_name).or_default() += 1,
                    _ => {}
                }
            }
        }
        if self.workflow {
            if kind != LineKind::Removed && trimmed.contains("pull_request_target") {
                self.pull_request_target = true;
            }
            let checks_out_head = trimmed.contains("github.event.pull_request.head.")
                || trimmed.contains("github.head_ref")
                || (trimmed.contains("refs/pull/") && trimmed.contains("head"));
            if kind == LineKind::Added && checks_out_head && self.head_checkout.is_none() {
                self.head_checkout = Some(Evidence::line(&self.path, line_no, text));
            }
        }
    }

    fn terraform_line(
        &mut self,
        kind: LineKind,
        line_no: u32,
        trimmed: &str,
        ledger: &mut TerraformLedger,
    ) {
        let key = if let Some(rest) = trimmed.strip_prefix("resource ") {
            let mut quoted = rest.split('"').skip(1).step_by(2);
            match (quoted.next(), quoted.next()) {
                (Some(kind), Some(name)) => Some(format!("{kind}.{name}")),
                _ => None,
            }
        } else if let Some(rest) = trimmed.strip_prefix("module ") {
            rest.split('"').nth(1).map(|name| format!("module.{name}"))
        } else {
            None
        };
        if let Some(key) = key {
            self.ingress = None;
            match kind {
                LineKind::Removed if ledger.removed.len() < MAX_TF_RESOURCES => {
                    ledger
                        .removed
                        .push((key, Evidence::line(&self.path, line_no, trimmed)));
                }
                LineKind::Added | LineKind::Context if ledger.added.len() < MAX_TF_RESOURCES => {
                    ledger.added.insert(key);
                }
                _ => {}
            }
            return;
        }
        // `moved { to = module.db.aws_db_instance.main }` and `removed { from = … }`
        // blocks keep the resource: compare on the last two address components.
        if kind == LineKind::Added {
            for prefix in ["to ", "from ", "to=", "from="] {
                if let Some(rest) = trimmed.strip_prefix(prefix) {
                    let address = rest.trim_start_matches([' ', '=']).trim();
                    let parts: Vec<&str> = address.split('.').collect();
                    if parts.len() >= 2 && ledger.added.len() < MAX_TF_RESOURCES {
                        let tail = parts[parts.len() - 2..].join(".");
                        ledger.added.insert(tail);
                        if parts.len() >= 2 && parts[0] == "module" {
                            ledger.added.insert(format!("module.{}", parts[1]));
                        }
                    }
                }
            }
        }
    }

    /// Per-file conclusions: deleted Kubernetes objects, dangerous workflow shapes.
    pub(crate) fn finish(self, findings: &mut Findings) {
        let mut removed_by_kind: BTreeMap<&'static str, u32> = BTreeMap::new();
        for (kind, _) in &self.k8s_removed {
            *removed_by_kind.entry(kind).or_default() += 1;
        }
        for (kind, evidence) in self.k8s_removed {
            let added = self.k8s_added.get(kind).copied().unwrap_or(0);
            if removed_by_kind.get(kind).copied().unwrap_or(0) > added {
                findings.record(&INFRA_K8S_REMOVED, &self.path, evidence, Some(kind));
            }
        }
        if self.pull_request_target {
            if let Some(evidence) = self.head_checkout {
                findings.record(&INFRA_PRT_CHECKOUT, &self.path, evidence, None);
            }
        }
    }
}
