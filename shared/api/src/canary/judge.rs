//! `GET /v1/canary/judge`: one canary analysis run by the server — an Argo Rollouts web metric
//! provider.
//!
//! The server collects the template's metrics for the canary and the baseline from its
//! Prometheus (`serve --prometheus`) over one window ending now, judges them (the judge of
//! `deploygraph canary analyze`) and answers with the verdict — `Pass`, `Fail`, `Inconclusive`
//! or `NoData` in `verdict` — the per-metric evidence and the baseline used. With `deployment`,
//! the analysis is also recorded as that deployment's CanaryAnalysis, exactly as
//! `POST /v1/canary/analyses` would record it.
//!
//! **The run since its start.** With `run` (a name for the rollout, such as the canary's
//! pod-template-hash Argo passes as an argument), the server remembers when it first judged
//! each (run, template, selectors) and from the second call on also runs the sequential test of
//! the critical error ratio on everything since then (`deploygraph_canary::sequential`, as
//! `canary analyze` does): a failure there is a `Fail` even when the window alone has too
//! little traffic. In memory ([`RunStarts`]), forgotten after [`RUN_IDLE`] without a call.
//! Without `run`, each call judges its window only.
//!
//! **Templates** are named: a file `NAME.yaml` (or `NAME.yml`) in the directory the server was
//! given (`serve --canary-templates DIR`), else a shipped template (`http-error-ratio`,
//! `http-latency-p99`, `connection-pool-errors`); a file in the directory takes precedence over
//! a shipped template of the same name, so a team can tune a shipped one. Files are read on
//! each request (`serve` checks every file of the directory when it starts).
//!
//! **Parameters** are checked against exactly the patterns the OpenAPI document declares, so a
//! value the document accepts is never refused for its form: `template` ([`TEMPLATE_PATTERN`]),
//! `window` (one PromQL duration, [`WINDOW_PATTERN`]), the selectors ([`SELECTOR_PATTERN`]: the
//! label-matcher lists of [`deploygraph_canary::Selector`], which cannot inject PromQL). Errors
//! are 422 naming the parameter; an unknown template or deployment is a 404 naming it.
//!
//! **Statuses.** 200 with the verdict, whatever it is (the caller's conditions read it); 404
//! `unsupported` when the server has no Prometheus (a configuration that retrying does not
//! change); 503 `prometheus_unavailable` with `Retry-After` when Prometheus does not answer;
//! 502 `prometheus_error` when it answers with an error or an unusable answer; 422 naming
//! `template` when Prometheus refuses one of the template's queries as invalid PromQL.
//!
//! **Auth.** The analysis runs queries on the server's behalf and may write, so it is never
//! anonymous: like `POST /v1/cypher`, it needs the write token (`serve --token`), and a server
//! without one refuses it (403).

use super::record::{analysis_input, verdict_of};
use crate::AppState;
use crate::error::ApiError;
use crate::handlers::query_params;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use deploygraph_canary::prometheus::{Prometheus, PrometheusConfig};
use deploygraph_canary::sequential;
use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{MetricEvidence, Outcome, Selector, Template, Verdict, Window};
use deploygraph_model::{CanaryBaselineKind, ServiceName, Uid, format_time};
use deploygraph_store::RecordKind;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A template name: the file name in the templates directory without `.yaml`/`.yml`, or a
/// shipped template's.
pub const TEMPLATE_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// An analysis window: one PromQL duration (`30s`, `5m`, `1h`, at most 9999 of a unit).
pub const WINDOW_PATTERN: &str = "^[1-9][0-9]{0,3}(ms|s|m|h|d)$";
/// A selector: comma-separated `label op "value"` matchers, the grammar of
/// [`deploygraph_canary::Selector`] with spaces as its only blanks.
pub const SELECTOR_PATTERN: &str = r#"^ *(?:[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9][A-Za-z0-9_]*|_) *(?:=~|!~|!=|=) *"[^"\\\x00-\x1f\x7f-\x9f]*"(?: *, *(?:[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9][A-Za-z0-9_]*|_) *(?:=~|!~|!=|=) *"[^"\\\x00-\x1f\x7f-\x9f]*")* *$"#;
/// A run's name (`run`): what tells one rollout's calls from the next one's, such as the
/// canary's pod-template-hash.
pub const RUN_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$";
/// Longest selector, in characters (four bytes each at most: within the selector's byte limit).
pub const SELECTOR_MAX_CHARS: usize = 1024;
/// The window when none is given.
pub const DEFAULT_WINDOW: &str = "5m";
/// Largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

#[allow(clippy::expect_used)] // constant patterns, checked by the tests
static TEMPLATE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TEMPLATE_PATTERN).expect("template pattern"));
#[allow(clippy::expect_used)]
static WINDOW_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(WINDOW_PATTERN).expect("window pattern"));
#[allow(clippy::expect_used)]
static RUN_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(RUN_PATTERN).expect("run pattern"));
#[allow(clippy::expect_used)]
static SELECTOR_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(SELECTOR_PATTERN).expect("selector pattern"));

/// What the canary hooks run with: the Prometheus they query and the templates they may name.
#[derive(Debug, Clone, Default)]
pub struct HooksConfig {
    /// The Prometheus analyses query; without it, the hooks answer 404 `unsupported`.
    pub prometheus: Option<Prometheus>,
    /// Directory of templates (`NAME.yaml`), besides the shipped ones.
    pub templates_dir: Option<PathBuf>,
    /// When this server first judged each run a Flagger webhook names ([`RunStarts`]).
    pub runs: RunStarts,
}

/// How long a run a hook named is remembered after its last call: a call after a longer gap
/// (the same canary revision tried again after a rollback) starts a new run.
pub const RUN_IDLE: Duration = Duration::from_secs(10 * 60);
/// Most runs remembered at once (the oldest idle ones go first).
const RUNS_KEPT: u64 = 10_000;

/// When this server first judged each canary run a hook names by a key that tells rollouts
/// apart (Flagger's canary name, namespace and checksum of its pod template, with the template
/// and selectors): the start of the span the sequential test since the start
/// ([`deploygraph_canary::sequential`]) measures at later calls. In memory, per server: a run
/// forgotten (the server restarted, [`RUN_IDLE`] without a call, another replica answering)
/// starts again, which only shortens the span tested.
#[derive(Debug, Clone)]
pub struct RunStarts(moka::future::Cache<String, Instant>);

impl Default for RunStarts {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(RUNS_KEPT)
                .time_to_idle(RUN_IDLE)
                .build(),
        )
    }
}

impl RunStarts {
    /// How long ago the run `key` was first seen (zero when this call is the first).
    pub async fn elapsed(&self, key: String) -> Duration {
        self.0
            .get_with(key, async { Instant::now() })
            .await
            .elapsed()
    }
}

impl HooksConfig {
    /// Hooks querying the Prometheus at `prometheus_url` (if any) with the templates of
    /// `templates_dir` (if any), which is checked: it must be a readable directory in which
    /// every `*.yaml`/`*.yml` file is a valid template with a usable name.
    ///
    /// # Errors
    /// A sentence naming the URL, or the file and the template field at fault.
    pub fn new(
        prometheus_url: Option<&str>,
        templates_dir: Option<PathBuf>,
    ) -> Result<Self, String> {
        let prometheus = prometheus_url
            .map(|url| {
                let config = PrometheusConfig::new(url).map_err(|e| e.to_string())?;
                Prometheus::new(config).map_err(|e| format!("{e}"))
            })
            .transpose()?;
        if let Some(dir) = &templates_dir {
            check_templates_dir(dir)?;
        }
        Ok(Self {
            prometheus,
            templates_dir,
            runs: RunStarts::default(),
        })
    }
}

impl HooksConfig {
    /// The template `name`: the templates directory's file, else a shipped template.
    ///
    /// # Errors
    /// A sentence: no such template (naming those there are), or why its file is not valid.
    pub fn template(&self, name: &str) -> Result<Template, String> {
        load_template(self, "template", name).map_err(|e| e.message)
    }
}

/// The template files of `dir` as (name, path), in name order.
fn template_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the templates directory {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let Some(name) = path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| matches!(*e, "yaml" | "yml"))
            .and_then(|_| path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        files.push((name.to_owned(), path.clone()));
    }
    files.sort();
    Ok(files)
}

/// Checks every template of `dir`; the names it offers.
fn check_templates_dir(dir: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (name, path) in template_files(dir)? {
        if !TEMPLATE_RE.is_match(&name) {
            return Err(format!(
                "{}: `{name}` cannot be named in a request (a template name matches {TEMPLATE_PATTERN})",
                path.display()
            ));
        }
        read_template(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        names.push(name);
    }
    Ok(names)
}

fn read_template(path: &Path) -> Result<Template, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "larger than {MAX_TEMPLATE_BYTES} bytes ({size} bytes)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Template::parse(&text).map_err(|e| match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    })
}

fn shipped_name(file: &str) -> &str {
    file.strip_suffix(".yaml").unwrap_or(file)
}

/// The template `name`: the directory's file first, then a shipped template.
pub(crate) fn load_template(
    config: &HooksConfig,
    field: &str,
    name: &str,
) -> Result<Template, ApiError> {
    if !TEMPLATE_RE.is_match(name) {
        return Err(ApiError::invalid(
            field,
            format!("{name:?} is not a template name (it matches {TEMPLATE_PATTERN})"),
        ));
    }
    if let Some(dir) = &config.templates_dir {
        for ext in ["yaml", "yml"] {
            let path = dir.join(format!("{name}.{ext}"));
            if path.is_file() {
                return read_template(&path).map_err(|e| {
                    ApiError::invalid(
                        field,
                        format!("the server's template {name:?} is not valid: {e}"),
                    )
                });
            }
        }
    }
    if let Some((_, yaml)) = SHIPPED.iter().find(|(file, _)| shipped_name(file) == name) {
        return Template::parse(yaml).map_err(|e| {
            tracing::error!(error.message = %e, template = name, "a shipped template does not parse");
            ApiError::internal()
        });
    }
    let mut known: Vec<String> = SHIPPED
        .iter()
        .map(|(f, _)| shipped_name(f).to_owned())
        .collect();
    if let Some(dir) = &config.templates_dir
        && let Ok(files) = template_files(dir)
    {
        known.extend(files.into_iter().map(|(n, _)| n));
    }
    known.sort();
    known.dedup();
    Err(ApiError {
        field: Some(field.to_owned()),
        ..ApiError::not_found(format!(
            "no analysis template {name:?} on this server (it has: {})",
            known.join(", ")
        ))
    })
}

/// A window parameter.
pub(crate) fn window(field: &str, value: Option<&str>) -> Result<Window, ApiError> {
    let value = value.unwrap_or(DEFAULT_WINDOW);
    if !WINDOW_RE.is_match(value) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{value:?} is not a window: one PromQL duration such as 30s, 5m or 1h ({WINDOW_PATTERN})"
            ),
        ));
    }
    value
        .parse::<Window>()
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A selector parameter.
pub(crate) fn selector(field: &str, value: &str) -> Result<Selector, ApiError> {
    if value.chars().count() > SELECTOR_MAX_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("longer than {SELECTOR_MAX_CHARS} characters"),
        ));
    }
    if !SELECTOR_RE.is_match(value) {
        // The selector's own parser says what is wrong where it can.
        let reason = match Selector::parse(value) {
            Err(e) => e.to_string(),
            Ok(_) => "only spaces may separate its parts".to_owned(),
        };
        return Err(ApiError::invalid(
            field,
            format!(
                "not a selector (comma-separated label=\"value\" matchers with =, !=, =~ or !~; \
                 no backslashes, quotes or control characters in values): {reason}"
            ),
        ));
    }
    Selector::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A `service` parameter.
pub(crate) fn service(field: &str, value: &str) -> Result<ServiceName, ApiError> {
    ServiceName::parse(value).map_err(|e| ApiError::invalid(field, e.message))
}

/// A `deployment` parameter.
pub(crate) fn deployment(field: &str, value: &str) -> Result<Uid, ApiError> {
    Uid::parse_deployment(value).map_err(|e| ApiError::invalid(field, e.message))
}

/// One analysis to run, validated.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    pub service: ServiceName,
    pub template_name: String,
    pub template: Template,
    pub canary: Selector,
    pub baseline: Selector,
    pub window: Window,
    pub deployment: Option<Uid>,
    /// `argo` or `flagger`, for the metrics.
    pub hook: &'static str,
    /// Field names of the parameters, for errors found later (the Flagger hook names them
    /// differently).
    pub fields: Fields,
    /// What names the rollout this call belongs to in the hook's terms (Argo's `run`; Flagger's
    /// namespace, name and checksum), when the hook can tell runs apart: the run is timed from
    /// the first call that gets to judge it ([`RunStarts`]) and the sequential test since then
    /// runs beside the window.
    pub run: Option<Vec<String>>,
}

/// The names under which a request gave each value.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub template: String,
    pub baseline: String,
    pub deployment: String,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            template: "template".into(),
            baseline: "baseline_selector".into(),
            deployment: "deployment".into(),
        }
    }
}

impl Analysis {
    /// Checks that the canary and the baseline are told apart.
    pub(crate) fn check_sides(&self) -> Result<(), ApiError> {
        if self.canary == self.baseline {
            return Err(ApiError::invalid(
                &self.fields.baseline,
                format!(
                    "{} selects the same series as the canary selector; the canary must be told from its baseline",
                    self.baseline
                ),
            ));
        }
        Ok(())
    }
}

/// The default selector of a side: `service="NAME",track="TRACK"` (as `canary analyze`).
fn default_selector(service: &ServiceName, track: &str) -> Result<Selector, ApiError> {
    Selector::parse(&format!("service=\"{service}\",track=\"{track}\"")).map_err(|e| {
        tracing::error!(error.message = %e, "a default selector does not parse");
        ApiError::internal()
    })
}

/// The query string of `GET /v1/canary/judge`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JudgeParams {
    /// The service under analysis; it makes the default selectors
    /// (`service="SERVICE",track="canary"` and `track="stable"`).
    #[param(value_type = ServiceName)]
    service: String,
    /// The analysis template: a file NAME.yaml in the server's `--canary-templates` directory,
    /// else a shipped template (`http-error-ratio`, `http-latency-p99`,
    /// `connection-pool-errors`).
    #[param(value_type = TemplateName)]
    template: String,
    /// PromQL label matchers selecting the canary (`app="web",rollouts_pod_template_hash="5d9f"`).
    #[param(value_type = Option<SelectorText>)]
    canary_selector: Option<String>,
    /// PromQL label matchers selecting the baseline; not the same as the canary's.
    #[param(value_type = Option<SelectorText>)]
    baseline_selector: Option<String>,
    /// What the analysis looks back over, ending now (default `5m`).
    #[param(value_type = Option<WindowText>)]
    window: Option<String>,
    /// Record the analysis as this deployment's CanaryAnalysis (as `POST /v1/canary/analyses`).
    #[param(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
    /// A name for the rollout these calls judge (its canary's pod-template-hash, say): calls
    /// with the same run, template and selectors are one run, and from the second one on the
    /// sequential test of the critical error ratio since the first call runs beside the window.
    #[param(value_type = Option<RunText>)]
    run: Option<String>,
}

/// `Pass`, `Fail`, `Inconclusive` or `NoData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum JudgeVerdict {
    /// No significant change in the bad direction beyond the tolerance.
    Pass,
    /// A significant change in the bad direction beyond the tolerance.
    Fail,
    /// Data, but not enough to judge.
    Inconclusive,
    /// No series or no observations.
    NoData,
}

impl From<Outcome> for JudgeVerdict {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => Self::Pass,
            Outcome::Fail => Self::Fail,
            Outcome::Inconclusive => Self::Inconclusive,
            Outcome::NoData => Self::NoData,
        }
    }
}

/// A side of the analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JudgedSide {
    /// The label matchers that selected it.
    pub selector: String,
}

/// The baseline of the analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JudgedBaseline {
    /// `side_by_side`: the old version's pods over the same window.
    pub kind: CanaryBaselineKind,
    /// The label matchers that selected it.
    pub selector: String,
}

/// Where the analysis was recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JudgeRecord {
    /// The CanaryAnalysis' uid.
    pub uid: String,
    /// The deployment it analysed.
    pub deployment: String,
    /// `created`, or `updated` when an analysis of the deployment that started in the same
    /// second was replaced.
    pub status: String,
}

/// The Flagger webhook call an analysis answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlaggerCall {
    /// The Canary's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its phase, as Flagger sent it.
    pub phase: String,
    /// Flagger's checksum of the canary's configuration, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub checksum: Option<String>,
}

/// The answer of an analysis run by the server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JudgeAnswer {
    /// `Pass`, `Fail`, `Inconclusive` or `NoData`: what an Argo `successCondition` reads
    /// (`jsonPath: "{$.verdict}"`).
    pub verdict: JudgeVerdict,
    /// Why the verdict is what it is.
    pub rule: String,
    /// The service under analysis.
    pub service: String,
    /// The template's name as requested.
    pub template: String,
    /// The window the analysis looked back over (a PromQL duration).
    pub window: String,
    /// When the window ended (RFC 3339).
    pub evaluated_at: String,
    /// Significance level of the tests.
    pub alpha: f64,
    /// The canary.
    pub canary: JudgedSide,
    /// The baseline used.
    pub baseline: JudgedBaseline,
    /// Per metric, in template order: its outcome (`pass`, `fail`, `inconclusive`, `no_data`)
    /// and evidence — queries, sample sizes, summaries, test, statistic, p-values, interval,
    /// effect size and the rule that fired.
    #[schema(value_type = Vec<Object>)]
    pub metrics: Vec<MetricEvidence>,
    /// With `deployment`: the CanaryAnalysis recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub recorded: Option<JudgeRecord>,
    /// For `POST /v1/canary/flagger`: the call answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flagger: Option<FlaggerCall>,
}

macro_rules! text_schema {
    ($t:ident, $name:literal, $description:literal, $pattern:expr, $max:expr) => {
        #[doc = $description]
        pub struct $t;

        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some($description))
                        .pattern(Some($pattern))
                        .max_length($max)
                        .build(),
                ))
            }
        }

        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_schema!(
    TemplateName,
    "CanaryTemplateName",
    "An analysis template's name: a file NAME.yaml of the server's templates directory, or a shipped template.",
    TEMPLATE_PATTERN,
    None
);
text_schema!(
    WindowText,
    "CanaryWindow",
    "One PromQL duration: a number (1 to 9999) and a unit (ms, s, m, h, d).",
    WINDOW_PATTERN,
    None
);
text_schema!(
    RunText,
    "CanaryRun",
    "A name for one rollout's run of calls (its canary's pod-template-hash, say): letters, digits, `_`, `.`, `:` and `-`, at most 128, starting with a letter or digit.",
    RUN_PATTERN,
    None
);
text_schema!(
    SelectorText,
    "CanarySelector",
    "PromQL label matchers, comma-separated: label=\"value\" with =, !=, =~ or !~. Labels do not start with __; values hold no quote, backslash or control character.",
    SELECTOR_PATTERN,
    Some(SELECTOR_MAX_CHARS)
);

/// `GET /v1/canary/judge`: runs one analysis now and answers with its verdict (module docs).
#[utoipa::path(get, path = "/v1/canary/judge", tag = "canary",
    params(JudgeParams),
    responses(
        (status = 200, description = "The analysis' verdict (`verdict`: Pass, Fail, Inconclusive or NoData), per-metric evidence and the baseline used; with `deployment`, where it was recorded (`recorded`)", body = JudgeAnswer),
        (status = 403, description = "The server has no write token, so the hooks are off", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such template (`field`: `template`) or deployment (`deployment`), or the server has no Prometheus (`unsupported`: start it with --prometheus)", body = crate::openapi::ErrorBody),
        (status = 502, description = "Prometheus answered a query with an error, or with an answer that cannot be used (`prometheus_error`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Retry after the delay: Prometheus did not answer (`prometheus_unavailable`), the store is unavailable (`store_unavailable`), the server is at its limit of concurrent requests (`overloaded`), or the request ran past the server's time limit (`timeout`)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
    security(("bearer" = [])))]
pub(crate) async fn judge(
    State(state): State<AppState>,
    query: Result<Query<JudgeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let service = service("service", &p.service)?;
    let template = load_template(&state.config.canary, "template", &p.template)?;
    let window = window("window", p.window.as_deref())?;
    let canary = match &p.canary_selector {
        Some(s) => selector("canary_selector", s)?,
        None => default_selector(&service, "canary")?,
    };
    let baseline = match &p.baseline_selector {
        Some(s) => selector("baseline_selector", s)?,
        None => default_selector(&service, "stable")?,
    };
    let deployment = p
        .deployment
        .as_deref()
        .map(|d| deployment("deployment", d))
        .transpose()?;
    if let Some(run) = p.run.as_ref().filter(|run| !RUN_RE.is_match(run)) {
        return Err(ApiError::invalid(
            "run",
            format!("{run:?} is not a run's name (it matches {RUN_PATTERN})"),
        ));
    }
    let analysis = Analysis {
        service,
        template_name: p.template,
        template,
        canary,
        baseline,
        window,
        deployment,
        hook: "argo",
        fields: Fields::default(),
        run: p.run.map(|run| vec![run]),
    };
    analysis.check_sides()?;
    let answer = run(&state, analysis).await?;
    Ok(Json(answer).into_response())
}

/// Runs `analysis` against the server's Prometheus and records it when it names a deployment.
pub(crate) async fn run(state: &AppState, analysis: Analysis) -> Result<JudgeAnswer, ApiError> {
    let Some(prometheus) = state.config.canary.prometheus.as_ref() else {
        return Err(ApiError::unsupported(
            "this server has no Prometheus to run analyses against: start `deploygraph serve` \
             with --prometheus URL (or DEPLOYGRAPH_PROMETHEUS_URL)",
        ));
    };
    let started_at = chrono::Utc::now();
    if let Some(uid) = &analysis.deployment {
        check_deployment(state, &analysis, uid).await?;
    }
    // Timed once the call is known to be judged: a refused one starts no run.
    let since_start = match &analysis.run {
        Some(run) => {
            let key = serde_json::json!([
                analysis.hook,
                run,
                analysis.template_name,
                analysis.canary.to_string(),
                analysis.baseline.to_string(),
            ])
            .to_string();
            sequential::span(state.config.canary.runs.elapsed(key).await)
        }
        None => None,
    };
    let at = SystemTime::now();
    let collected = prometheus
        .collect(
            &analysis.template,
            &analysis.canary,
            &analysis.baseline,
            analysis.window,
            at,
        )
        .await
        .map_err(|e| {
            ApiError::from_canary(&e, &analysis.fields.template, state.config.retry_after_secs)
        })?;
    let verdict = prometheus
        .judge_run(
            &collected,
            &analysis.template,
            (&analysis.canary, &analysis.baseline),
            since_start,
            at,
        )
        .await
        .map_err(|e| {
            ApiError::from_canary(&e, &analysis.fields.template, state.config.retry_after_secs)
        })?;
    state
        .metrics
        .canary_hook(analysis.hook, verdict_of(verdict.outcome).as_str());
    tracing::info!(
        hook = analysis.hook,
        service = %analysis.service,
        template = %analysis.template_name,
        verdict = verdict_of(verdict.outcome).as_str(),
        "ran a canary analysis"
    );
    let recorded = match &analysis.deployment {
        Some(uid) => Some(record(state, &analysis, uid, &started_at, &verdict).await?),
        None => None,
    };
    Ok(answer(&analysis, &verdict, at, recorded))
}

/// The deployment exists and is of the analysed service.
async fn check_deployment(
    state: &AppState,
    analysis: &Analysis,
    uid: &Uid,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let found = state.store.get_deployment(uid).await;
    state.metrics.store_call("get_deployment", started);
    let field = &analysis.fields.deployment;
    match found.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))? {
        None => Err(ApiError {
            field: Some(field.clone()),
            ..ApiError::not_found(format!("no deployment {uid} is recorded"))
        }),
        Some(d) if d.deployment.service != analysis.service => Err(ApiError::invalid(
            field,
            format!(
                "deployment {uid} rolled out service {}, not {}",
                d.deployment.service, analysis.service
            ),
        )),
        Some(_) => Ok(()),
    }
}

async fn record(
    state: &AppState,
    analysis: &Analysis,
    uid: &Uid,
    started_at: &chrono::DateTime<chrono::Utc>,
    verdict: &Verdict,
) -> Result<JudgeRecord, ApiError> {
    // A hook call is a whole analysis of one round: its verdict is the answer the rollout
    // controller acts on, so the round is final.
    let input = analysis_input(
        uid.as_str(),
        &analysis.template_name,
        &format_time(started_at),
        verdict,
        1,
        true,
    );
    let (kind, stored) = super::store_analysis(state, input).await?;
    Ok(JudgeRecord {
        uid: stored.uid.to_string(),
        deployment: stored.deployment.to_string(),
        status: match kind {
            RecordKind::Created => "created",
            _ => "updated",
        }
        .to_owned(),
    })
}

fn answer(
    analysis: &Analysis,
    verdict: &Verdict,
    at: SystemTime,
    recorded: Option<JudgeRecord>,
) -> JudgeAnswer {
    JudgeAnswer {
        verdict: verdict.outcome.into(),
        rule: verdict.rule.clone(),
        service: analysis.service.to_string(),
        template: analysis.template_name.clone(),
        window: analysis.window.to_string(),
        evaluated_at: format_time(&chrono::DateTime::<chrono::Utc>::from(at)),
        alpha: verdict.alpha,
        canary: JudgedSide {
            selector: analysis.canary.to_string(),
        },
        baseline: JudgedBaseline {
            kind: super::baseline_of(verdict.baseline_kind),
            selector: analysis.baseline.to_string(),
        },
        metrics: verdict.metrics.clone(),
        recorded,
        flagger: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_by_letters_digits_and_a_few_marks() {
        for good in ["5d9f7c8b6", "rollout:web-1.2_3", &"a".repeat(128)] {
            assert!(RUN_RE.is_match(good), "{good}");
        }
        for bad in ["", "-5d9f", "a b", "a\"b", "a/b", &"a".repeat(129)] {
            assert!(!RUN_RE.is_match(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_run_is_timed_from_its_first_call_and_runs_are_told_apart_by_their_key() {
        let runs = RunStarts::default();
        assert!(runs.elapsed("a".into()).await < Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(runs.elapsed("a".into()).await >= Duration::from_millis(120));
        assert!(runs.elapsed("b".into()).await < Duration::from_millis(50));
    }

    #[test]
    fn the_selector_pattern_accepts_exactly_what_the_selector_parser_accepts() {
        for good in [
            r#"app="web""#,
            r#" app = "web" , track!="canary" "#,
            r#"pod=~"web-[0-9a-z]+-[0-9a-z]+",namespace="prod""#,
            r#"_="x",_1!~"""#,
        ] {
            assert!(SELECTOR_RE.is_match(good), "{good}");
            assert!(selector("s", good).is_ok(), "{good}");
        }
        for bad in [
            r#"app="web"} or vector(1"#,
            r#"__name__="up""#,
            r#"app="a\"b""#,
            "app=\"a\u{7}\"",
            "app=\"web\"\t",
            r#"app='web'"#,
            r#"app="web",,"#,
            "",
        ] {
            assert!(!SELECTOR_RE.is_match(bad), "{bad}");
            let e = selector("canary_selector", bad).expect_err(bad);
            assert_eq!(e.field.as_deref(), Some("canary_selector"));
            assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
    }

    #[test]
    fn windows_are_one_promql_duration() {
        assert_eq!(window("w", None).expect("default").to_string(), "5m");
        assert_eq!(window("w", Some("90s")).expect("90s").to_string(), "90s");
        for bad in ["0s", "5", "1h30m", "five", "10000s", "-1m"] {
            assert_eq!(
                window("window", Some(bad)).expect_err(bad).field.as_deref(),
                Some("window")
            );
        }
    }

    #[test]
    fn templates_come_from_the_directory_first_then_the_shipped_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let yaml = SHIPPED[0]
            .1
            .replace("name: http-error-ratio", "name: tuned-errors");
        std::fs::write(dir.path().join("http-error-ratio.yaml"), &yaml).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not a template").expect("write");
        let config = HooksConfig::new(None, Some(dir.path().to_owned())).expect("valid dir");
        assert_eq!(
            load_template(&config, "template", "http-error-ratio")
                .expect("tuned")
                .name,
            "tuned-errors"
        );
        assert_eq!(
            load_template(&config, "template", "http-latency-p99")
                .expect("shipped")
                .name,
            "http-latency-p99"
        );
        let e = load_template(&config, "template", "nope").expect_err("unknown");
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert!(
            e.message.contains("connection-pool-errors"),
            "{}",
            e.message
        );
        let e = load_template(&config, "template", "../etc/passwd").expect_err("path");
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);

        std::fs::write(
            dir.path().join("broken.yaml"),
            "name: b\nmetrics:\n  - name: m\n    kind: ratio\n    direction: sideways\n",
        )
        .expect("write");
        let e = HooksConfig::new(None, Some(dir.path().to_owned())).expect_err("broken");
        assert!(
            e.contains("broken.yaml") && e.contains("metrics[0].direction"),
            "{e}"
        );
        assert!(HooksConfig::new(Some("localhost:9090"), None).is_err());
    }
}
