//! Client of the deploygraph API, as the CLI and CI pipelines use it. Every request is built
//! once ([`requests`]) and carried by a [`Transport`]: over the network to a server
//! ([`HttpTransport`]), or to the API's router in the same process. On the network, bounded
//! retries with exponential backoff on 503 (honouring `Retry-After`), 502 and failures to
//! connect; never on anything else. A 504 (`query_timed_out`: the query ran past its limit and
//! was stopped), a 4xx refusal or a request the server did not answer in time is final: sending
//! it again would only repeat the work.

pub mod requests;
pub mod transport;

use secrecy::SecretString;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub use requests::{
    AlertsQuery, CypherQuery, DeploymentsQuery, Occurrence, Query, ReportFormat, path_segment,
};
pub use transport::{HttpTransport, Method, Request, Response, Transport, TransportError};

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
    transport: Arc<dyn Transport>,
    token: Option<SecretString>,
    retry: RetryPolicy,
    request_timeout: Option<Duration>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`), over the network.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, token: Option<SecretString>, retry: RetryPolicy) -> Result<Self> {
        let transport = HttpTransport::new(base).map_err(|e| Error::Protocol {
            operation: "build the HTTP client",
            source: Box::new(e),
        })?;
        Ok(Self::with_transport(Arc::new(transport), token, retry))
    }

    /// A client that sends its requests through `transport`, presenting `token`. The retry
    /// policy applies only to a transport that [retries](Transport::retries).
    pub fn with_transport(
        transport: Arc<dyn Transport>,
        token: Option<SecretString>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            transport,
            token,
            retry,
            request_timeout: None,
        }
    }

    /// The same client with a different bound on each attempt (30 s by default), for requests
    /// the server may take long to answer (a Cypher query with a long time limit).
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sends one request, retrying what is worth retrying: the JSON body of a 2xx, or the
    /// text of a body that is not JSON (a Markdown report) as a JSON string.
    async fn send(
        &self,
        method: Method,
        path_and_query: String,
        body: Option<Vec<u8>>,
    ) -> Result<Accepted> {
        let attempts = if self.transport.retries() {
            self.retry.attempts.max(1)
        } else {
            1
        };
        let mut last = String::new();
        for attempt in 0..attempts {
            let request = Request {
                method,
                path_and_query: path_and_query.clone(),
                body: body.clone(),
                bearer: self.token.clone(),
                timeout: self.request_timeout,
            };
            let retry_after = match self.transport.send(request).await {
                Ok(response) => {
                    let text = String::from_utf8_lossy(&response.body).into_owned();
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    if (200..300).contains(&response.status) {
                        return Ok(Accepted {
                            status: response.status,
                            body,
                        });
                    }
                    if !retryable(response.status) {
                        return Err(rejected(response.status, &body));
                    }
                    last = format!("HTTP {}: {}", response.status, message_of(&body));
                    response.retry_after
                }
                // Nothing reached the server: safe to send again.
                Err(TransportError::Unreachable(reason)) => {
                    last = reason;
                    None
                }
                Err(TransportError::NoAnswer(source)) => {
                    return Err(Error::NoAnswer { source });
                }
                Err(e @ TransportError::Failed(_)) => {
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
pub fn retryable(status: u16) -> bool {
    matches!(status, 502 | 503)
}

/// A response's `Retry-After` in seconds (the form this server sends), when it has one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
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

fn rejected(status: u16, body: &Value) -> Error {
    Error::Rejected {
        status,
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Answers every request with `status`, and counts them.
    struct Fixed {
        status: u16,
        retries: bool,
        seen: Mutex<Vec<Request>>,
    }

    #[async_trait]
    impl Transport for Fixed {
        fn retries(&self) -> bool {
            self.retries
        }

        async fn send(&self, request: Request) -> Result<Response, TransportError> {
            self.seen.lock().unwrap().push(request);
            Ok(Response {
                status: self.status,
                retry_after: Some(Duration::ZERO),
                body: br#"{"error":{"code":"store_unavailable","message":"down","field":null}}"#
                    .to_vec(),
            })
        }
    }

    fn client(status: u16, retries: bool) -> (Client, Arc<Fixed>) {
        let transport = Arc::new(Fixed {
            status,
            retries,
            seen: Mutex::new(Vec::new()),
        });
        let retry = RetryPolicy {
            attempts: 3,
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        let token = Some(SecretString::from("t0ken".to_owned()));
        let as_transport: Arc<dyn Transport> = transport.clone();
        (
            Client::with_transport(as_transport, token, retry),
            transport,
        )
    }

    #[tokio::test]
    async fn a_network_transport_is_retried_and_an_in_process_one_is_not() {
        let (network, seen) = client(503, true);
        let e = network
            .dora(None, (None, None), &chrono::Utc::now(), &chrono::Utc::now())
            .await;
        assert!(
            matches!(e, Err(Error::Unavailable { attempts: 3, .. })),
            "{e:?}"
        );
        assert_eq!(seen.seen.lock().unwrap().len(), 3);

        let (local, seen) = client(503, false);
        let e = local
            .dora(None, (None, None), &chrono::Utc::now(), &chrono::Utc::now())
            .await;
        assert!(
            matches!(e, Err(Error::Unavailable { attempts: 1, .. })),
            "{e:?}"
        );
        let seen = seen.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].bearer_token(), Some("t0ken"));
        assert!(seen[0].path_and_query.starts_with("/v1/dora?since="));
    }

    #[tokio::test]
    async fn a_refusal_is_final_and_carries_the_servers_code() {
        let (network, seen) = client(401, true);
        let e = network.chaos_run("x").await.unwrap_err();
        assert!(
            matches!(&e, Error::Rejected { status: 401, code, .. } if code == "store_unavailable"),
            "{e:?}"
        );
        assert_eq!(seen.seen.lock().unwrap().len(), 1);
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
