//! How a request reaches the API: over the network ([`HttpTransport`], reqwest), or to a router
//! in the same process (the binary builds one over `deploygraph-api` for `--store`). The
//! [`Client`](crate::Client) builds every request once, the same way for both.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
        }
    }
}

/// One request, as the client built it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Path and query string, already encoded (`/v1/alerts?limit=100`).
    pub path_and_query: String,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    /// The bearer token to present.
    pub bearer: Option<SecretString>,
    /// A bound on this attempt, when the transport has one to enforce.
    pub timeout: Option<Duration>,
}

impl Request {
    /// The bearer token's text, for a transport to put in `Authorization`.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer.as_ref().map(ExposeSecret::expose_secret)
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why no response came.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server could not be reached (nothing was sent): worth another attempt.
    #[error("{0}")]
    Unreachable(String),
    /// The request went out but no answer came within the timeout: final, since the server may
    /// still be working on it.
    #[error("no answer within the request timeout")]
    NoAnswer(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: final.
    #[error("failed to send the request")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Carries requests to the API.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Whether a failed attempt is worth repeating (a network is; a router in the same process
    /// answers the same way every time).
    fn retries(&self) -> bool;

    /// Sends one request and returns the response, whatever its status.
    ///
    /// # Errors
    /// When no response came.
    async fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// The network: reqwest to a server's base URL.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    base: String,
    http: reqwest::Client,
}

impl HttpTransport {
    /// A transport to the server at `base` (`http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self, TransportError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("deploygraph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Failed(Box::new(e)))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// A transport to the server at `base` through `http`, a client configured by the caller
    /// (the agent's: its own certificate authorities and timeouts).
    #[must_use]
    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    fn retries(&self) -> bool {
        true
    }

    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let url = format!("{}{}", self.base, request.path_and_query);
        let mut builder = self.http.request(method, &url);
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(token) = request.bearer_token() {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let unreachable = |e: reqwest::Error| {
            if e.is_connect() {
                TransportError::Unreachable(e.to_string())
            } else if e.is_timeout() {
                TransportError::NoAnswer(Box::new(e))
            } else {
                TransportError::Failed(Box::new(e))
            }
        };
        let response = builder.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let retry_after = crate::retry_after(response.headers());
        let body = response.bytes().await.map_err(unreachable)?.to_vec();
        Ok(Response {
            status,
            retry_after,
            body,
        })
    }
}
