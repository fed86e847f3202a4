//! HTTP client of the deploygraph API, as CI pipelines use it: bounded retries with
//! exponential backoff on 503 (honouring `Retry-After`), 502 and failures to connect; never on
//! anything else. A 504 (`query_timed_out`: the query ran past its limit and was stopped), a
//! 4xx refusal or a request the server did not answer in time is final: sending it again would
//! only repeat the work.

use deploygraph_model::deployment::DeploymentInput;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request (4xx, or a 5xx that is not retried).
    #[error("the server rejected the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The error code from the body.
        code: String,
        /// The server's message.
        message: String,
        /// The field it names.
        field: Option<String>,
    },
    /// Retries were exhausted.
    #[error(
        "the server could not be reached or stayed unavailable after {attempts} attempts: {last}"
    )]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server took the request but did not answer within the request timeout; it is not
    /// sent again (the server may still be working on it).
    #[error("the server did not answer within the request timeout")]
    NoAnswer {
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A URL or response that cannot be used.
    #[error("failed to {operation}")]
    Protocol {
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// First backoff.
    pub initial: Duration,
    /// Largest backoff (also caps `Retry-After`).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (0-based), honouring a server's `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.initial.saturating_mul(2u32.saturating_pow(attempt));
        retry_after.unwrap_or(exponential).min(self.max)
    }
}

/// A response that was accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// HTTP status (201 or 200 for writes).
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

/// The client.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<SecretString>,
    http: reqwest::Client,
    retry: RetryPolicy,
    request_timeout: Option<Duration>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, token: Option<SecretString>, retry: RetryPolicy) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("deploygraph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Protocol {
                operation: "build the HTTP client",
                source: Box::new(e),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
            retry,
            request_timeout: None,
        })
    }

    /// `POST /v1/deployments`.
    ///
    /// # Errors
    /// [`Error::Rejected`] for 4xx; [`Error::Unavailable`] when retries are exhausted.
    pub async fn record_deployment(&self, input: &DeploymentInput) -> Result<Accepted> {
        let body = serde_json::to_vec(input).map_err(|e| Error::Protocol {
            operation: "encode the deployment",
            source: Box::new(e),
        })?;
        self.send(reqwest::Method::POST, "/v1/deployments", &[], Some(body))
            .await
    }

    /// `POST /v1/snapshots` with checks that ran here.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn record_snapshot(&self, body: &Value) -> Result<Accepted> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Protocol {
            operation: "encode the snapshot",
            source: Box::new(e),
        })?;
        self.send(reqwest::Method::POST, "/v1/snapshots", &[], Some(body))
            .await
    }

    /// `GET /v1/deployments` with query parameters.
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn list_deployments(&self, query: &[(&str, String)]) -> Result<Accepted> {
        self.send(reqwest::Method::GET, "/v1/deployments", query, None)
            .await
    }

    /// `GET path` with query parameters: the JSON body, or the text of a body that is not
    /// JSON (a Markdown report) as a JSON string. `path` segments taken from user input go
    /// through [`path_segment`].
    ///
    /// # Errors
    /// As [`Client::record_deployment`].
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Accepted> {
        self.send(reqwest::Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// As [`Client::record_deployment`]; [`Error::Protocol`] when `body` cannot be encoded.
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &T,
    ) -> Result<Accepted> {
        let body = encode(body)?;
        self.send(reqwest::Method::POST, path, query, Some(body))
            .await
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    /// As [`Client::post_json`].
    pub async fn put_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &T,
    ) -> Result<Accepted> {
        let body = encode(body)?;
        self.send(reqwest::Method::PUT, path, query, Some(body))
            .await
    }

    /// The same client with a different bound on each attempt (30 s by default), for requests
    /// the server may take long to answer (a Cypher query with a long time limit).
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Accepted> {
        let url = format!("{}{path}", self.base);
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            let mut request = self.http.request(method.clone(), &url).query(query);
            if let Some(timeout) = self.request_timeout {
                request = request.timeout(timeout);
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let retry_after = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = response.text().await.unwrap_or_default();
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    if status.is_success() {
                        return Ok(Accepted {
                            status: status.as_u16(),
                            body,
                        });
                    }
                    if !retryable(status) {
                        return Err(rejected(status, &body));
                    }
                    last = format!("HTTP {status}: {}", message_of(&body));
                    retry_after
                }
                // Nothing reached the server: safe to send again.
                Err(e) if e.is_connect() => {
                    last = format!("{e}");
                    None
                }
                Err(e) if e.is_timeout() => {
                    return Err(Error::NoAnswer {
                        source: Box::new(e),
                    });
                }
                Err(e) => {
                    return Err(Error::Protocol {
                        operation: "send the request",
                        source: Box::new(e),
                    });
                }
            };
            if attempt + 1 < attempts {
                let pause = self.retry.backoff(attempt, retry_after);
                tracing::warn!(attempt = attempt + 1, retry_in_ms = pause.as_millis() as u64, reason = %last, "retrying");
                tokio::time::sleep(pause).await;
            }
        }
        Err(Error::Unavailable { attempts, last })
    }
}

/// Whether a response with `status` is worth sending the request again: the server (or a proxy
/// before it) is unavailable now. A 504 is not: this server sends it for a query it stopped at
/// its time limit, which would time out again.
pub fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY
    )
}

/// `value` percent-encoded as one URL path segment: everything but unreserved characters
/// (RFC 3986 `ALPHA / DIGIT / "-" / "." / "_" / "~"`) is escaped, `/` included.
pub fn path_segment(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn encode<T: serde::Serialize + ?Sized>(body: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::Protocol {
        operation: "encode the request body",
        source: Box::new(e),
    })
}

fn message_of(body: &Value) -> String {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| body.to_string(), str::to_owned)
}

fn rejected(status: StatusCode, body: &Value) -> Error {
    Error::Rejected {
        status: status.as_u16(),
        code: body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        message: message_of(body),
        field: body
            .pointer("/error/field")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(path_segment("a1b2-C3.d_e~f"), "a1b2-C3.d_e~f");
        assert_eq!(path_segment("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(0, None), Duration::from_millis(100));
        assert_eq!(p.backoff(2, None), Duration::from_millis(400));
        assert_eq!(p.backoff(10, None), Duration::from_secs(1));
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(30))),
            Duration::from_secs(1)
        );
    }
}
