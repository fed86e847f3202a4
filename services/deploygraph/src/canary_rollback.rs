//! `canary analyze --rollback TARGET`: on a final `Fail` the command rolls the release back
//! at once ([`deploygraph_k8s::rollback`]), then records the Rollback in the graph (through
//! the same `--server`/`--store` as the analysis, when a deployment is named).
//!
//! Opt-in: without `--rollback` nothing is rolled back. With `--dry-run` the rollback is only
//! planned — the Deployment's revisions and patch are computed from the cluster, a Rollout is
//! read, a Helm rollback is simulated with `helm rollback --dry-run` — and printed; nothing in
//! the cluster changes, and the Rollback is recorded with `dry_run: true` (the deployment keeps
//! its status).
//!
//! A rollback that fails (a paused Deployment, no previous revision, the API server or helm
//! refusing it) is reported on standard error and ends the command with exit 5; a rollback
//! that was done but could not be recorded is reported and keeps the verdict's exit code (1).

use crate::canary_record::Recorder;
use crate::cli::{CanaryAnalyzeArgs, Output};
use crate::commands::Failure;
use deploygraph_k8s::rollback::{Action, Error, Helm, Rollbacker, Target};
use deploygraph_model::{RollbackInput, format_time};
use serde_json::json;
use std::time::{Duration, Instant};

/// Who a rollback is recorded as done by.
pub const BY: &str = "deploygraph canary analyze";

/// A `--rollback` value.
pub fn target_arg(value: &str) -> Result<Target, String> {
    value.parse::<Target>().map_err(|e| e.to_string())
}

/// The rollback `--rollback` asks for, ready before the first analysis.
pub struct RollbackPlan {
    rollbacker: Rollbacker,
    target: Target,
    dry_run: bool,
}

/// What a rollback gave.
pub struct RolledBack {
    /// When it was requested (the final decision).
    pub at: chrono::DateTime<chrono::Utc>,
    /// From the decision to the API server's (or helm's) answer.
    pub elapsed: Duration,
    /// Its action, or why it failed.
    pub result: Result<Action, Error>,
}

impl RollbackPlan {
    /// The plan `args` ask for: `None` without `--rollback`.
    ///
    /// # Errors
    /// Exit 2 when no Kubernetes configuration can be used.
    pub async fn connect(args: &CanaryAnalyzeArgs) -> Result<Option<Self>, Failure> {
        let o = &args.rollback;
        let Some(target) = o.rollback.clone() else {
            return Ok(None);
        };
        let client = crate::helm::kube_client(o.kubeconfig.as_deref())
            .await
            .map_err(|e| Failure::usage(format!("--rollback {target}: {}", e.message())))?;
        let namespace = o
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let helm = Helm {
            bin: o.helm_bin.clone(),
            kubeconfig: o.kubeconfig.clone(),
        };
        Ok(Some(Self {
            rollbacker: Rollbacker::new(client, namespace, helm),
            target,
            dry_run: o.dry_run,
        }))
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Rolls back (or, with `--dry-run`, plans it) now.
    pub async fn run(&self) -> RolledBack {
        let at = chrono::Utc::now();
        let decided = Instant::now();
        let result = if self.dry_run {
            self.rollbacker.plan(&self.target).await
        } else {
            self.rollbacker.execute(&self.target).await
        };
        RolledBack {
            at,
            elapsed: decided.elapsed(),
            result,
        }
    }

    /// Prints what was done, records it through `recorder` (when a deployment is named), and
    /// returns exit 5 when the rollback failed.
    ///
    /// # Errors
    /// Exit 5 for a failed rollback; an output error.
    pub async fn report(
        &self,
        done: &RolledBack,
        reason: &str,
        recorder: Option<&Recorder>,
        format: &Output,
    ) -> Result<(), Failure> {
        let namespace = self.rollbacker.namespace();
        let target = self.target.to_string();
        let millis = done.elapsed.as_secs_f64() * 1000.0;
        let action = match &done.result {
            Ok(action) => action,
            Err(e) => {
                let mut message = format!("rollback of {target} in {namespace} failed: {e}");
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    message.push_str(": ");
                    message.push_str(&c.to_string());
                    cause = c.source();
                }
                if let Output::Json = format {
                    crate::insight::print_json(&json!({
                        "rollback": {"target": target, "namespace": namespace,
                                     "dry_run": self.dry_run, "error": message}
                    }))?;
                }
                return Err(Failure::rollback_failed(message));
            }
        };
        let recorded = match recorder {
            Some(r) => Some(
                r.record_rollback(&RollbackInput {
                    deployment: r.deployment().to_owned(),
                    restored: None,
                    reason: reason
                        .chars()
                        .take(deploygraph_model::rollback::limits::REASON)
                        .collect(),
                    by: BY.to_owned(),
                    at: format_time(&done.at),
                    target: target.clone(),
                    namespace: Some(namespace.to_owned()),
                    dry_run: self.dry_run,
                })
                .await,
            ),
            None => None,
        };
        match format {
            Output::Json => {
                let mut line = json!({
                    "rollback": {
                        "target": target,
                        "namespace": namespace,
                        "dry_run": self.dry_run,
                        "requested_ms": millis,
                        "done": action.to_json(),
                    }
                });
                if let Some(recorded) = &recorded
                    && let Some(fields) = recorded.json().as_object()
                    && let Some(object) = line["rollback"].as_object_mut()
                {
                    object.extend(fields.clone());
                }
                crate::insight::print_json(&line)
            }
            Output::Text => {
                let what = action.describe(&self.target, namespace);
                if self.dry_run {
                    crate::outln!("rollback (dry run, nothing changed): would {what}")?;
                } else {
                    crate::outln!(
                        "rolled back: {what} (accepted {millis:.0} ms after the decision)"
                    )?;
                }
                if let Some(crate::canary_record::Recorded::Stored { uid, .. }) = &recorded {
                    crate::outln!("recorded rollback {uid}")?;
                }
                Ok(())
            }
        }
    }
}
