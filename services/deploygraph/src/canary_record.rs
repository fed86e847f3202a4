//! Recording `canary analyze`'s decisions in the graph: each analysis round's verdict is posted
//! to `POST /v1/canary/analyses` (a server's with `--server`, or the router in this process
//! over `--store`) as the CanaryAnalysis of the deployment named by `--deployment` (or the
//! newest deployment of `--service` in `--environment`). The analysis' uid comes from the
//! deployment and the command's start, so every round replaces the record of the one before.
//!
//! **Exit codes.** Problems found before the first analysis — a malformed or unknown
//! `--deployment`, no deployment in `--environment`, a deployment without `--server` or
//! `--store`, a server or store that cannot be reached — end the command at once with the
//! table's code (2 usage, 3 unreachable). Once the analysis runs, a failed recording never
//! changes the exit code, which is the verdict's (0/1/4): it is reported on standard error
//! (`warning:` for a round, `error:` for the final verdict) and, with `--format json`, as
//! `record_error` on the analysis' line; the next round records again.

use crate::cli::{CanaryAnalyzeArgs, CanaryRecordTarget, RecordTarget, StoreOptions};
use crate::commands::Failure;
use deploygraph_api::canary::analysis_input;
use deploygraph_canary::Verdict;
use deploygraph_client::Client;
use deploygraph_client::requests::DeploymentsQuery;
use deploygraph_model::{RollbackInput, Uid, format_time};
use serde_json::{Value, json};

/// What recording one round gave: the analysis' uid and `created`/`updated`, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Stored.
    Stored {
        /// The analysis' uid.
        uid: String,
        /// `created` or `updated`.
        status: &'static str,
    },
    /// Not stored; the message says why.
    Failed(String),
}

impl Recorded {
    /// The fields it adds to a JSON line.
    pub fn json(&self) -> Value {
        match self {
            Self::Stored { uid, status } => json!({"recorded": {"uid": uid, "status": status}}),
            Self::Failed(message) => json!({"record_error": message}),
        }
    }
}

/// Records the rounds of one analysis.
pub struct Recorder {
    client: Client,
    deployment: String,
    template: String,
    started_at: String,
}

/// The client of `--server` or `--store`; `missing` is the usage error when neither is given.
///
/// # Errors
/// Exit 2 without `--server`/`--store`; exit 3 when the server or store cannot be reached.
pub async fn client_of(r: &CanaryRecordTarget, missing: &str) -> Result<Client, Failure> {
    let Some(store) = r
        .store
        .clone()
        .or_else(|| r.server.is_some().then(String::new))
    else {
        return Err(Failure::usage(missing));
    };
    let target = RecordTarget {
        server: r.server.clone(),
        token: r.token.clone(),
        attempts: r.attempts,
        store: StoreOptions {
            store,
            neo4j_user: r.neo4j_user.clone(),
            neo4j_password: r.neo4j_password.clone(),
            neo4j: r.neo4j.clone(),
            migrations_dir: r.migrations_dir.clone(),
        },
    };
    crate::api::connect(&target, crate::api::Local::default()).await
}

impl Recorder {
    /// The recorder `args` ask for: `None` when no deployment is named (nothing is recorded).
    ///
    /// # Errors
    /// Exit 2 for a malformed or unknown deployment, no deployment in `--environment`, or no
    /// `--server`/`--store`; exit 3 when the server or store cannot be reached.
    pub async fn connect(
        args: &CanaryAnalyzeArgs,
        template: &str,
    ) -> Result<Option<Self>, Failure> {
        if args.deployment.is_none() && args.environment.is_none() {
            return Ok(None);
        }
        let client = client_of(
            &args.record,
            "--deployment/--environment: the analysis is recorded through --server URL or \
             --store URI; give one (or leave the deployment out to record nothing)",
        )
        .await?;
        let deployment = match (&args.deployment, &args.environment) {
            (Some(uid), _) => {
                Uid::parse_deployment(uid)
                    .map_err(|e| Failure::usage(format!("--deployment: {}", e.message)))?;
                match client.deployment_canary(uid).await {
                    Ok(_) => uid.clone(),
                    Err(deploygraph_client::Error::Rejected { status: 404, .. }) => {
                        return Err(Failure::usage(format!(
                            "--deployment {uid}: no such deployment is recorded"
                        )));
                    }
                    Err(e) => return Err(Failure::from_api("failed to look up --deployment", e)),
                }
            }
            (None, Some(environment)) => {
                let page = client
                    .list_deployments(&DeploymentsQuery {
                        service: Some(args.service.to_string()),
                        environment: Some(environment.to_string()),
                        limit: Some(1),
                        ..DeploymentsQuery::default()
                    })
                    .await
                    .map_err(|e| Failure::from_api("failed to look up the newest deployment", e))?;
                page.body["items"][0]["uid"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--environment {environment}: no deployment of {} is recorded there",
                            args.service
                        ))
                    })?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Self {
            client,
            deployment,
            template: template.to_owned(),
            started_at: format_time(&chrono::Utc::now()),
        }))
    }

    /// The deployment the analysis is recorded for.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The client the analysis is recorded through (a history baseline is read through it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Records round `rounds` with its verdict; a failure is reported on standard error
    /// (`last`: the final verdict) and returned, never raised.
    pub async fn record(&self, verdict: &Verdict, rounds: u32, last: bool) -> Recorded {
        let input = analysis_input(
            &self.deployment,
            &self.template,
            &self.started_at,
            verdict,
            rounds,
            last,
        );
        match self.client.record_canary_analysis(&input).await {
            Ok(accepted) => Recorded::Stored {
                uid: accepted.body["uid"].as_str().unwrap_or_default().to_owned(),
                status: if accepted.status == 201 {
                    "created"
                } else {
                    "updated"
                },
            },
            Err(e) => {
                let failure = Failure::from_api("failed to record the canary analysis", e);
                if last {
                    eprintln!(
                        "error: {} (the final verdict is not in the graph; the exit code is the verdict's)",
                        failure.message()
                    );
                } else {
                    eprintln!(
                        "warning: {} (analysis {rounds}; the next analysis records again)",
                        failure.message()
                    );
                }
                Recorded::Failed(failure.message().to_owned())
            }
        }
    }
}

impl Recorder {
    /// Records the rollback `input` of the analysed deployment; a failure is reported on
    /// standard error and returned, never raised (the rollback was done).
    pub async fn record_rollback(&self, input: &RollbackInput) -> Recorded {
        match self.client.record_rollback(input).await {
            Ok(accepted) => Recorded::Stored {
                uid: accepted.body["uid"].as_str().unwrap_or_default().to_owned(),
                status: if accepted.status == 201 {
                    "created"
                } else {
                    "unchanged"
                },
            },
            Err(e) => {
                let failure = Failure::from_api("failed to record the rollback", e);
                eprintln!(
                    "error: {} (the rollback was done; it is not in the graph)",
                    failure.message()
                );
                Recorded::Failed(failure.message().to_owned())
            }
        }
    }
}
