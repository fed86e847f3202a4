//! What an alert says is wrong, and whether a change could have done it.
//!
//! An SRE reading `ContainerOOMKilled` on `api` looks first for a cut memory limit, reading
//! `KubePodCrashLooping` for a probe, an endpoint or a credential, reading `HPAAtMaxReplicas` or
//! `PostgresTooManyClients` for replicas, autoscaling or a pool. The alert's name (and its
//! summary and `reason` label) names a **symptom**; a changed key names what it can break. Only
//! the specific symptoms are read — memory, crashes and pods that do not run, saturation, CPU —
//! because errors and latency follow from almost any change and say nothing about which.
//!
//! What it finds is shown among a suspect's reasons ([`crate::attribution::symptom_reason`]) for
//! the SRE to check; the model does not weigh it (tried as two features, it gained nothing on the
//! benchmark's held-out seeds: `docs/benchmarks.md`).
//!
//! The word lists follow the alert names of kube-prometheus (`KubePodCrashLooping`,
//! `KubeHpaMaxedOut`, `CPUThrottlingHigh`, `KubeContainerWaiting`), the exporters' common rules
//! (`RedisRejectedConnections`, `PostgresTooManyClients`, `RedisMemoryHigh`) and the keys of
//! common Helm charts and manifests (`resources.limits.memory`, `livenessProbe`, `hikari.maximumPoolSize`,
//! `autoscaling.maxReplicas`).

use crate::attribution::{ChangeSummary, KeyDiff};
use deploygraph_model::redact::split_words;
use serde::Serialize;

/// A specific symptom an alert can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Symptom {
    /// Out of memory, memory near its limit, evictions, long garbage collection.
    Memory,
    /// Pods crash, restart, do not become ready or do not start.
    Crash,
    /// A pool, a queue, connections or replicas at their limit.
    Saturation,
    /// CPU throttled or saturated.
    Cpu,
}

impl Symptom {
    const ALL: [Self; 4] = [Self::Memory, Self::Crash, Self::Saturation, Self::Cpu];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// In words, for the reasons.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Crash => "crashing or unready pods",
            Self::Saturation => "saturation",
            Self::Cpu => "CPU",
        }
    }
}

/// A set of [`Symptom`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Symptoms(u8);

impl Symptoms {
    /// No symptom.
    pub const NONE: Self = Self(0);

    fn with(self, s: Symptom) -> Self {
        Self(self.0 | s.bit())
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether it holds `s`.
    #[must_use]
    pub fn contains(self, s: Symptom) -> bool {
        self.0 & s.bit() != 0
    }

    /// The symptoms both sets hold.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Its members, in order.
    pub fn iter(self) -> impl Iterator<Item = Symptom> {
        Symptom::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Its members in words (`memory, CPU`).
    #[must_use]
    pub fn words(self) -> String {
        self.iter()
            .map(Symptom::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether `word` begins with any of `prefixes`.
fn begins(word: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| word.starts_with(p))
}

/// The specific symptoms an alert names, from its name, its summary and its `reason` label
/// (`ContainerOOMKilled`: memory and crash; `HikariPendingThreadsHigh`: saturation;
/// `HTTP5xxRatioHigh`: none).
#[must_use]
pub fn of_alert(name: &str, summary: Option<&str>, reason: Option<&str>) -> Symptoms {
    let mut words = split_words(name);
    // The summary is prose: its words count only where they name a symptom unmistakably.
    let prose: Vec<String> = summary.map(split_words).unwrap_or_default();
    words.extend(reason.map(split_words).unwrap_or_default());
    of_words(&words, false).union(of_words(&prose, true))
}

fn of_words(words: &[String], prose: bool) -> Symptoms {
    // In prose (a summary that also names services, `job-queue`, `conn-pool`) only words and
    // phrases that name a symptom unmistakably count.
    let mut out = Symptoms::NONE;
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).map_or("", String::as_str);
        let w = w.as_str();
        let name = !prose;
        if begins(w, &["oom", "memory", "heap", "evict"])
            || (name && (begins(w, &["swap"]) || w == "mem" || w == "gc" || w == "rss"))
        {
            out = out.with(Symptom::Memory);
        }
        if begins(
            w,
            &["oomkill", "crash", "restart", "unschedulable", "imagepull"],
        ) || (w == "not" && next == "ready")
            || (name
                && begins(
                    w,
                    &[
                        "mismatch",
                        "unavailable",
                        "notready",
                        "pullbackoff",
                        "waiting",
                        "terminated",
                        "liveness",
                        "readiness",
                    ],
                ))
        {
            out = out.with(Symptom::Crash);
        }
        if begins(w, &["saturat", "exhaust"])
            || (w == "too" && next == "many")
            || (w == "max" && begins(next, &["replica"]))
            || (name
                && begins(
                    w,
                    &[
                        "pending",
                        "backlog",
                        "maxed",
                        "hpa",
                        "clients",
                        "connections",
                        "pool",
                        "threads",
                        "queue",
                        "capacity",
                        "concurren",
                    ],
                ))
        {
            out = out.with(Symptom::Saturation);
        }
        if begins(w, &["throttl"]) || (name && begins(w, &["cpu"])) {
            out = out.with(Symptom::Cpu);
        }
    }
    out
}

/// Which way a value moved, when both sides read as Kubernetes quantities or plain numbers.
fn direction(key: &KeyDiff) -> Option<std::cmp::Ordering> {
    let before = quantity(key.before.as_deref()?)?;
    let after = quantity(key.after.as_deref()?)?;
    after.partial_cmp(&before)
}

/// A Kubernetes quantity (`512Mi`, `1.5Gi`, `250m`, `2`) or a number, as a float.
fn quantity(text: &str) -> Option<f64> {
    let t = text.trim().trim_matches('"');
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        _ => return None,
    };
    n.is_finite().then_some(n * scale)
}

/// What changing `key` can break, among the specific symptoms; `None` when its words name
/// nothing specific (a URL, a timeout, a flag, a log level: they break with errors or latency,
/// which every change can). A limit, a request or a replica count that was raised cannot starve
/// what it sizes.
#[must_use]
pub fn of_key(key: &KeyDiff) -> Option<Symptoms> {
    let words = split_words(&key.path);
    let has = |list: &[&str]| words.iter().any(|w| begins(w, list));
    if has(&["image"]) {
        // New code (`values.image.tag`) can break in any way.
        return None;
    }
    let raised = direction(key) == Some(std::cmp::Ordering::Greater);
    let mut out = Symptoms::NONE;
    let mut named = false;
    if has(&["memory", "heap", "xmx", "xms", "ram", "gc", "oom"]) {
        named = true;
        if !raised {
            out = out.with(Symptom::Memory).with(Symptom::Crash);
        }
    }
    if has(&["cpu"]) && !has(&["utilization", "target", "proxycpu"]) {
        named = true;
        if !raised {
            out = out.with(Symptom::Cpu).with(Symptom::Saturation);
        }
    }
    if has(&["probe", "liveness", "readiness", "startup"]) {
        named = true;
        out = out.with(Symptom::Crash);
    }
    if has(&[
        "replica",
        "autoscal",
        "hpa",
        "pool",
        "connection",
        "clients",
        "threads",
        "workers",
        "concurren",
        "queue",
        "capacity",
        "disruption",
        "utilization",
    ]) {
        named = true;
        // More replicas or a larger pool can still exhaust what sits behind it (a database's
        // connections), so a raise keeps saturation; it no longer starves CPU.
        out = out.with(Symptom::Saturation);
        if !raised && has(&["replica", "autoscal", "hpa", "utilization"]) {
            out = out.with(Symptom::Cpu);
        }
    }
    if has(&[
        "password",
        "credential",
        "secret",
        "token",
        "cert",
        "tls",
        "nodeselector",
        "affinity",
        "toleration",
        "topology",
    ]) {
        named = true;
        out = out.with(Symptom::Crash);
    }
    named.then_some(out)
}

/// How a change stands against an alert's specific symptoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// The alert named no specific symptom, or the change carries a new image (new code can
    /// break in any way) without a key that fits: nothing to say.
    Silent,
    /// A changed key can break what the alert names: the key and the symptoms it shares.
    Fits {
        /// The key (`replicas` for the replica count).
        key: String,
        /// The symptoms it shares with the alert.
        shared: Symptoms,
    },
    /// Every changed key names what it can break, and none of it is what the alert names.
    Misfits,
}

/// How `change` stands against `alert`'s specific symptoms ([`Fit`]).
#[must_use]
pub fn fit(alert: Symptoms, change: &ChangeSummary) -> Fit {
    if alert.is_empty() {
        return Fit::Silent;
    }
    let mut all_named = !change.keys.is_empty() || change.replicas_changed;
    if change.replicas_changed {
        let shared =
            alert.intersection(Symptoms::NONE.with(Symptom::Saturation).with(Symptom::Cpu));
        if !shared.is_empty() {
            return Fit::Fits {
                key: "replicas".to_owned(),
                shared,
            };
        }
    }
    for key in &change.keys {
        match of_key(key) {
            Some(can) => {
                let shared = alert.intersection(can);
                if !shared.is_empty() {
                    return Fit::Fits {
                        key: key.path.clone(),
                        shared,
                    };
                }
            }
            None => all_named = false,
        }
    }
    if all_named && !change.image_changed && !change.first {
        Fit::Misfits
    } else {
        Fit::Silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_model::ChangeKind;

    fn key(path: &str, before: &str, after: &str) -> KeyDiff {
        KeyDiff {
            path: path.to_owned(),
            kind: ChangeKind::Value,
            before: Some(before.to_owned()),
            after: Some(after.to_owned()),
        }
    }

    fn change(keys: Vec<KeyDiff>) -> ChangeSummary {
        ChangeSummary {
            keys,
            ..ChangeSummary::default()
        }
    }

    #[test]
    fn alert_names_name_their_symptoms() {
        let s = |name: &str| of_alert(name, None, None);
        assert!(s("ContainerOOMKilled").contains(Symptom::Memory));
        assert!(s("ContainerOOMKilled").contains(Symptom::Crash));
        assert!(s("KubePodCrashLooping").contains(Symptom::Crash));
        assert!(s("KubeDeploymentReplicasMismatch").contains(Symptom::Crash));
        assert!(s("KubeHpaMaxedOut").contains(Symptom::Saturation));
        assert!(s("PostgresTooManyClients").contains(Symptom::Saturation));
        assert!(s("HikariPendingThreadsHigh").contains(Symptom::Saturation));
        assert!(s("CPUThrottlingHigh").contains(Symptom::Cpu));
        assert!(s("RedisMemoryHigh").contains(Symptom::Memory));
        assert!(s("JvmGcTimeHigh").contains(Symptom::Memory));
        for generic in [
            "HTTP5xxRatioHigh",
            "LatencyP99AboveSLO",
            "ErrorBudgetBurnFast",
            "UpstreamConnectErrors",
            "HighErrorRate",
        ] {
            assert!(s(generic).is_empty(), "{generic}");
        }
        // The reason label of kube-state-metrics' terminated containers, and a summary.
        assert!(
            of_alert("KubeContainerTerminated", None, Some("OOMKilled")).contains(Symptom::Memory)
        );
        assert!(
            of_alert("ServiceDegraded", Some("api pods are not ready"), None)
                .contains(Symptom::Crash)
        );
        // Prose does not read "gc" or "waiting" as a symptom.
        assert!(of_alert("ServiceDegraded", Some("waiting for gc"), None).is_empty());
    }

    #[test]
    fn keys_say_what_they_can_break_and_raised_limits_cannot_starve() {
        let memory = "spec.template.spec.containers[0].resources.limits.memory";
        let cut = of_key(&key(memory, "1Gi", "512Mi")).unwrap_or_default();
        assert!(cut.contains(Symptom::Memory) && cut.contains(Symptom::Crash));
        let raised = of_key(&key(memory, "512Mi", "1Gi")).unwrap_or_default();
        assert!(raised.is_empty());
        let cpu = of_key(&key("resources.limits.cpu", "1", "500m")).unwrap_or_default();
        assert!(cpu.contains(Symptom::Cpu));
        assert!(
            of_key(&key(
                "spec.template.spec.containers[0].livenessProbe.timeoutSeconds",
                "5",
                "1"
            ))
            .unwrap_or_default()
            .contains(Symptom::Crash)
        );
        assert!(
            of_key(&key("values.hikari.maximumPoolSize", "50", "10"))
                .unwrap_or_default()
                .contains(Symptom::Saturation)
        );
        assert_eq!(
            of_key(&key("env.PAYMENTS_URL", "http://a", "http://b")),
            None
        );
        assert_eq!(of_key(&key("env.LOG_LEVEL", "info", "debug")), None);
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("vault:v12"), None);
    }

    #[test]
    fn a_change_fits_misfits_or_says_nothing() {
        let oom = of_alert("ContainerOOMKilled", None, None);
        let memory_cut = change(vec![key("resources.limits.memory", "1Gi", "512Mi")]);
        assert!(
            matches!(fit(oom, &memory_cut), Fit::Fits { ref key, .. } if key == "resources.limits.memory")
        );
        let pool = change(vec![key("values.redis.pool.size", "50", "10")]);
        assert_eq!(fit(oom, &pool), Fit::Misfits);
        // A key whose words name nothing specific: no misfit.
        let url = change(vec![key("env.PAYMENTS_URL", "http://a", "http://b")]);
        assert_eq!(fit(oom, &url), Fit::Silent);
        // A new image can break anything.
        let image = ChangeSummary {
            image_changed: true,
            ..pool.clone()
        };
        assert_eq!(fit(oom, &image), Fit::Silent);
        // Generic alerts say nothing.
        assert_eq!(
            fit(of_alert("HTTP5xxRatioHigh", None, None), &memory_cut),
            Fit::Silent
        );
        // The replica count against saturation.
        let replicas = ChangeSummary {
            replicas_changed: true,
            ..ChangeSummary::default()
        };
        assert!(matches!(
            fit(of_alert("KubeHpaMaxedOut", None, None), &replicas),
            Fit::Fits { .. }
        ));
    }
}
