//! Store calls the watchers retry while the store is away: a rollout seen is written once the
//! store is back, unless the watcher stops first.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `op` until it succeeds, backing off from 200 ms to 30 s between attempts and logging
/// each failure as "cannot `what`"; `None` when `stop` fires first.
pub(crate) async fn until_ok<T, F>(
    stop: &CancellationToken,
    what: &str,
    mut op: impl FnMut() -> F,
) -> Option<T>
where
    F: Future<Output = deploygraph_store::Result<T>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match op().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error.message = %e, "cannot {what}; retrying");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}
