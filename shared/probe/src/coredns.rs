//! CoreDNS cache state, read from its Prometheus metrics (the cache itself cannot be dumped):
//! entries by type (success, denial), hits, misses, hit ratio, against thresholds.

use crate::check::{CheckKind, CheckResult, Part, Status};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Limits on the cache state; all optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Fail when hits / requests is lower (only once there were requests).
    pub min_hit_ratio: Option<f64>,
    /// Fail when more success entries are cached.
    pub max_success_entries: Option<f64>,
    /// Fail when more denial (NXDOMAIN/NODATA) entries are cached — a flood of negative
    /// answers often means a broken search path or a deleted service.
    pub max_denial_entries: Option<f64>,
}

/// One sample of the text exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments and malformed lines skipped).
pub fn parse_text(body: &str) -> Vec<Sample> {
    body.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            // key
            while chars
                .peek()
                .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
            {
                chars.next();
            }
            if let Some((i, '}')) = chars.peek().copied() {
                break i;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, '"') => break,
                    (_, c) => value.push(c),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        };
        &body[end + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The cache state summed over servers and zones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CacheState {
    /// `coredns_cache_entries{type="success"}`.
    pub success_entries: f64,
    /// `coredns_cache_entries{type="denial"}`.
    pub denial_entries: f64,
    /// `coredns_cache_hits_total`.
    pub hits: f64,
    /// `coredns_cache_misses_total` (deprecated in newer CoreDNS).
    pub misses: f64,
    /// `coredns_cache_requests_total`, when exported.
    pub requests: Option<f64>,
}

impl CacheState {
    /// Sums the cache metrics in `samples`; `None` when there are none (no cache plugin).
    pub fn from_samples(samples: &[Sample]) -> Option<Self> {
        let mut state = CacheState::default();
        let mut seen = false;
        for s in samples {
            match s.name.as_str() {
                "coredns_cache_entries" => {
                    seen = true;
                    match s.labels.get("type").map(String::as_str) {
                        Some("success") => state.success_entries += s.value,
                        Some("denial") => state.denial_entries += s.value,
                        _ => {}
                    }
                }
                "coredns_cache_hits_total" => state.hits += s.value,
                "coredns_cache_misses_total" => state.misses += s.value,
                "coredns_cache_requests_total" => *state.requests.get_or_insert(0.0) += s.value,
                _ => {}
            }
        }
        seen.then_some(state)
    }

    /// Hits per request, when there were requests.
    pub fn hit_ratio(&self) -> Option<f64> {
        let requests = self.requests.unwrap_or(self.hits + self.misses);
        (requests > 0.0).then(|| self.hits / requests)
    }
}

/// The verdict on a cache state: pure.
pub fn judge(state: &CacheState, limits: &Thresholds) -> (Status, String, Vec<Part>) {
    let ratio = state.hit_ratio();
    let summary = format!(
        "cache: {} success, {} denial entries; hit ratio {}",
        state.success_entries,
        state.denial_entries,
        ratio.map_or_else(|| "n/a (no requests yet)".to_owned(), |r| format!("{r:.2}"))
    );
    let mut parts = Vec::new();
    let mut limit = |name: &str, ok: bool, detail: String| {
        parts.push(Part {
            name: name.to_owned(),
            ok,
            detail,
        })
    };
    if let (Some(min), Some(r)) = (limits.min_hit_ratio, ratio) {
        limit("hit_ratio", r >= min, format!("{r:.2} (minimum {min})"));
    }
    if let Some(max) = limits.max_success_entries {
        limit(
            "success_entries",
            state.success_entries <= max,
            format!("{} (maximum {max})", state.success_entries),
        );
    }
    if let Some(max) = limits.max_denial_entries {
        limit(
            "denial_entries",
            state.denial_entries <= max,
            format!("{} (maximum {max})", state.denial_entries),
        );
    }
    let failed: Vec<String> = parts
        .iter()
        .filter(|p| !p.ok)
        .map(|p| format!("{} {}", p.name, p.detail))
        .collect();
    if failed.is_empty() {
        (Status::Pass, summary, parts)
    } else {
        (
            Status::Fail,
            format!("{summary}; over a limit: {}", failed.join(", ")),
            parts,
        )
    }
}

/// Reads CoreDNS's metrics at `url` and judges its cache.
pub async fn check(url: &str, limits: &Thresholds, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let fetched = async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("metrics answered {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    }
    .await;
    let mut result = match fetched {
        Err(reason) => CheckResult::new(CheckKind::Coredns, url, Status::Unknown, reason),
        Ok(body) => match CacheState::from_samples(&parse_text(&body)) {
            None => CheckResult::new(
                CheckKind::Coredns,
                url,
                Status::Fail,
                "no coredns_cache_entries metric: is the cache plugin enabled?",
            ),
            Some(state) => {
                let (status, detail, parts) = judge(&state, limits);
                let mut r = CheckResult::new(CheckKind::Coredns, url, status, detail);
                r.parts = parts;
                r
            }
        },
    };
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP coredns_cache_entries The number of elements in the cache.
# TYPE coredns_cache_entries gauge
coredns_cache_entries{server="dns://127.0.0.1:5353",type="denial",view="",zones="example.test."} 2
coredns_cache_entries{server="dns://127.0.0.1:5353",type="success",view="",zones="example.test."} 5
coredns_cache_hits_total{server="dns://127.0.0.1:5353",type="success",view="",zones="example.test."} 30
coredns_cache_hits_total{server="dns://127.0.0.1:5353",type="denial",view="",zones="example.test."} 10
coredns_cache_requests_total{server="dns://127.0.0.1:5353",view="",zones="example.test."} 50
coredns_dns_requests_total{server="dns://127.0.0.1:5353",zone="example.test.",proto="udp",family="1",type="A"} 50
weird_metric{label="with \"quotes\", and commas"} +Inf
"#;

    #[test]
    fn the_text_format_is_parsed_with_escaped_labels() {
        let samples = parse_text(METRICS);
        assert_eq!(samples.len(), 7);
        assert_eq!(samples[6].labels["label"], "with \"quotes\", and commas");
        assert!(samples[6].value.is_infinite());
    }

    #[test]
    fn cache_state_and_thresholds() {
        let state = CacheState::from_samples(&parse_text(METRICS)).unwrap_or_default();
        assert_eq!(
            (state.success_entries, state.denial_entries, state.hits),
            (5.0, 2.0, 40.0)
        );
        assert_eq!(state.hit_ratio(), Some(0.8));
        let (status, detail, _) = judge(&state, &Thresholds::default());
        assert_eq!(status, Status::Pass, "{detail}");
        let strict = Thresholds {
            min_hit_ratio: Some(0.9),
            max_denial_entries: Some(1.0),
            ..Thresholds::default()
        };
        let (status, detail, parts) = judge(&state, &strict);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("hit_ratio 0.80 (minimum 0.9)"), "{detail}");
        assert!(detail.contains("denial_entries 2 (maximum 1)"), "{detail}");
        assert_eq!(parts.len(), 2);
        assert!(CacheState::from_samples(&parse_text("up 1\n")).is_none());
    }
}
