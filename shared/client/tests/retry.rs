//! The retry policy against a real HTTP listener that answers every request with one status
//! and counts the requests it gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_client::{Client, Error, RetryPolicy};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `status` with a JSON error body to every request; returns its URL and the count.
async fn server(status: u16, code: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length announces.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    r#"{{"error":{{"code":"{code}","message":"answered {status}","field":"query"}}}}"#
                );
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, hits)
}

fn client(url: &str) -> Client {
    Client::new(
        url,
        None,
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
    )
    .expect("client")
}

#[tokio::test]
async fn a_timed_out_query_is_not_sent_again_and_keeps_the_servers_message() {
    let (url, hits) = server(504, "query_timed_out").await;
    let err = client(&url)
        .cypher(&deploygraph_client::CypherQuery {
            query: "RETURN 1".into(),
            params: serde_json::Map::new(),
            timeout: None,
            limit: None,
        })
        .await
        .unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    match err {
        Error::Rejected {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(status, 504);
            assert_eq!(code, "query_timed_out");
            assert_eq!(message, "answered 504");
        }
        other => panic!("expected the server's refusal, got {other}"),
    }
}

#[tokio::test]
async fn refusals_are_not_sent_again() {
    for (status, code) in [
        (400, "query_refused"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (422, "invalid_field"),
        (500, "internal"),
    ] {
        let (url, hits) = server(status, code).await;
        let err = client(&url)
            .list_deployments(&deploygraph_client::DeploymentsQuery::default())
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{status}");
        assert!(
            matches!(err, Error::Rejected { status: s, .. } if s == status),
            "{status}: {err}"
        );
    }
}

#[tokio::test]
async fn unavailable_servers_are_tried_again_up_to_the_limit() {
    for status in [503, 502] {
        let (url, hits) = server(status, "store_unavailable").await;
        let err = client(&url)
            .list_deployments(&deploygraph_client::DeploymentsQuery::default())
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 4, "{status}");
        assert!(
            matches!(err, Error::Unavailable { attempts: 4, .. }),
            "{status}: {err}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_tried_again() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let err = client(&format!("http://127.0.0.1:{port}"))
        .list_deployments(&deploygraph_client::DeploymentsQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { attempts: 4, .. }),
        "{err}"
    );
}

#[test]
fn only_unavailability_statuses_are_retryable() {
    assert!(deploygraph_client::retryable(503));
    assert!(deploygraph_client::retryable(502));
    for status in [504, 500, 400, 401, 403, 404, 409, 413, 422, 429] {
        assert!(!deploygraph_client::retryable(status), "{status}");
    }
}
