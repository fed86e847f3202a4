//! Local faults for services outside Kubernetes: kill a process, partition or slow down a network
//! namespace, hog CPU or memory in a cgroup of the driver's own.
//!
//! A scenario carries the fault as its `local:` document:
//!
//! ```yaml
//! local: {fault: process-kill, target: {pid_file: /run/payments.pid}, signal: TERM, timeout: 10s}
//! local: {fault: network-partition, netns: payments, peer_netns: postgres, symmetric: true}
//! local: {fault: network-partition, netns: payments, destinations: [10.1.64.0/18], route: blackhole}
//! local: {fault: network-latency, netns: payments, device: eth0, delay: 200ms, jitter: 20ms}
//! local: {fault: packet-loss, netns: payments, device: eth0, loss_percent: 5}
//! local: {fault: cpu-hog, workers: 2, cpus: 1.5}
//! local: {fault: memory-hog, size: 256MiB}
//! ```
//!
//! [`LocalFault::inject`] applies the fault all-or-nothing (what was applied before a failing step
//! is rolled back before the error returns) and hands back a [`FaultGuard`]. The guard reverts the
//! fault when it is dropped — on the happy path, on an early `?` return and while unwinding from a
//! panic — and [`FaultGuard::revert`] does it explicitly and reports what failed. Reverting twice
//! is harmless.
//!
//! The driver uses the host's tools rather than raw syscalls (the workspace forbids `unsafe`):
//! `ip` and `tc` from iproute2, `sh` and `dd`, and the cgroup file systems. Everything here
//! blocks (it runs commands and polls with short sleeps); from async code, call it inside
//! `tokio::task::spawn_blocking` and drop guards there too. It needs root (or `CAP_NET_ADMIN`,
//! `CAP_KILL` and write access to the cgroup hierarchies).
//!
//! How each fault is applied and reverted:
//!
//! - **process-kill**: `kill -s SIG` (the shell's builtin, so no procps is needed) on the target
//!   processes, then waits until each is gone (no `/proc/<pid>`, a zombie, or a new process that
//!   reused the pid). A kill cannot be undone; its guard has nothing to revert.
//! - **network-partition**: `ip route add prohibit <dst>` entries in the namespace (one per
//!   destination; the netns's own routes are more general, so the host routes win), deleted
//!   again one by one on revert. Works without nftables or iptables.
//! - **network-latency** / **packet-loss**: a `netem` root qdisc with the driver's handle on the
//!   device; revert deletes that handle only, which brings back the kernel's default qdisc. A
//!   device whose root qdisc was configured by someone else is refused rather than clobbered.
//! - **cpu-hog** / **memory-hog**: worker processes that join a cgroup the driver creates before
//!   they start working (cgroup v2 when its hierarchy offers the controller, else the v1
//!   hierarchy of that controller); revert kills them and removes the cgroup. Workers also exit
//!   on their own when the driver dies, so a crash does not leave a hog running.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A local fault error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The fault document does not deserialize.
    #[error("failed to parse the local fault{}", if path == "." { String::new() } else { format!(" at `{path}`") })]
    Parse {
        /// Where in the document (`target.pid`).
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A field has a value the driver cannot use (out of range, or naming something this host
    /// does not have).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as written in the fault document (`loss_percent`, `target.pid`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file a field points at cannot be read.
    #[error("failed to read {field} {}", path.display())]
    ReadField {
        /// The field (`target.pid_file`).
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The host lacks something the fault needs.
    #[error("{fault} is not supported on this host: {reason}")]
    Unsupported {
        /// The fault kind (`network-latency`).
        fault: &'static str,
        /// What is missing.
        reason: String,
    },
    /// A command could not be started.
    #[error("failed to run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A cgroup file-system operation failed.
    #[error("failed to {action} {}", path.display())]
    Cgroup {
        /// What was attempted (`create the cgroup`, `write`).
        action: &'static str,
        /// The cgroup directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading `/proc` failed.
    #[error("failed to read {}", path.display())]
    Proc {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The device already has a root qdisc that is neither the kernel's default nor the driver's.
    #[error(
        "device {device} in {netns} already has a root qdisc ({kind} {handle}); refusing to replace it"
    )]
    QdiscInUse {
        /// The network namespace (`host` for the driver's own).
        netns: String,
        /// The device.
        device: String,
        /// The qdisc kind (`htb`).
        kind: String,
        /// Its handle (`1:`).
        handle: String,
    },
    /// No process matches a process-kill target.
    #[error("no process matches {target}")]
    NoProcess {
        /// The target, as written.
        target: String,
    },
    /// A signalled process is still there after the timeout.
    #[error("process {pid} is still running {timeout:?} after SIG{signal}")]
    ProcessSurvived {
        /// The process.
        pid: u32,
        /// The signal sent.
        signal: Signal,
        /// How long the driver waited.
        timeout: Duration,
    },
    /// A hog worker exited while the fault was being injected.
    #[error("{fault} worker {pid} exited during injection ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    WorkerExited {
        /// The fault kind.
        fault: &'static str,
        /// The worker.
        pid: u32,
        /// How it exited (SIGKILL usually means the cgroup's OOM killer).
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// Something the injection waits for did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the driver waited.
        timeout: Duration,
    },
    /// Reverting a fault failed; the steps that failed are kept and retried by the next
    /// [`FaultGuard::revert`] or the guard's drop.
    #[error("failed to revert {fault} ({failed} step(s) failed)")]
    Revert {
        /// The fault kind.
        fault: &'static str,
        /// How many steps failed.
        failed: usize,
        /// The first failure.
        #[source]
        source: Box<Error>,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

// ------------------------------------------------------------------------------------------------
// The fault document
// ------------------------------------------------------------------------------------------------

/// A fault the local driver injects on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum LocalFault {
    /// Signal processes and wait until they are gone.
    ProcessKill(ProcessKill),
    /// Refuse traffic from a network namespace to addresses or another namespace.
    NetworkPartition(NetworkPartition),
    /// Delay and/or drop packets leaving a device (`netem`). Also accepted as `packet-loss`.
    #[serde(alias = "packet-loss")]
    NetworkLatency(NetworkLatency),
    /// Busy-loop workers in a cgroup, optionally under a CPU quota.
    CpuHog(CpuHog),
    /// A worker holding memory resident in a cgroup with a memory limit.
    MemoryHog(MemoryHog),
}

/// `process-kill`: signal processes and wait until they are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessKill {
    /// Which processes: `{pid: 1234}`, `{pid_file: /run/app.pid}` or `{name: postgres}`.
    pub target: ProcessTarget,
    /// The signal (`KILL`, `TERM`, `INT`, `HUP`, `QUIT`, `ABRT`, `USR1`, `USR2`; a `SIG` prefix is
    /// accepted). Default `KILL`.
    #[serde(default)]
    pub signal: Signal,
    /// How long the processes have to be gone after the signal (`5s`, `500ms`). Default 5s.
    #[serde(default = "default_kill_timeout", with = "duration_text")]
    pub timeout: Duration,
}

fn default_kill_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The processes a [`ProcessKill`] signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessTarget {
    /// One process by id (not 0, not 1, not the driver itself).
    Pid(u32),
    /// The process whose id is in this file (a daemon's pid file), read at injection time.
    PidFile(PathBuf),
    /// Every process whose name (`/proc/<pid>/comm`, at most 15 bytes) is exactly this, except
    /// the driver and pid 1.
    Name(String),
}

impl fmt::Display for ProcessTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pid(pid) => write!(f, "pid {pid}"),
            Self::PidFile(path) => write!(f, "the pid in {}", path.display()),
            Self::Name(name) => write!(f, "the process name `{name}`"),
        }
    }
}

/// A signal that terminates a process unless it handles it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// SIGHUP.
    #[serde(alias = "SIGHUP")]
    Hup,
    /// SIGINT.
    #[serde(alias = "SIGINT")]
    Int,
    /// SIGQUIT.
    #[serde(alias = "SIGQUIT")]
    Quit,
    /// SIGABRT.
    #[serde(alias = "SIGABRT")]
    Abrt,
    /// SIGKILL: cannot be handled.
    #[default]
    #[serde(alias = "SIGKILL")]
    Kill,
    /// SIGUSR1.
    #[serde(alias = "SIGUSR1")]
    Usr1,
    /// SIGUSR2.
    #[serde(alias = "SIGUSR2")]
    Usr2,
    /// SIGTERM.
    #[serde(alias = "SIGTERM")]
    Term,
}

impl Signal {
    /// The name `kill -s` takes (`KILL`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Hup => "HUP",
            Self::Int => "INT",
            Self::Quit => "QUIT",
            Self::Abrt => "ABRT",
            Self::Kill => "KILL",
            Self::Usr1 => "USR1",
            Self::Usr2 => "USR2",
            Self::Term => "TERM",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `network-partition`: traffic from a network namespace to some destinations is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPartition {
    /// The network namespace (a name `ip netns` knows) whose outgoing traffic is refused. Default:
    /// the driver's own namespace.
    #[serde(default)]
    pub netns: Option<String>,
    /// Destinations refused from `netns`: IPv4 or IPv6 addresses or CIDR blocks (`10.1.64.0/18`).
    #[serde(default)]
    pub destinations: Vec<Cidr>,
    /// Another network namespace whose global addresses are refused from `netns` too (read at
    /// injection time).
    #[serde(default)]
    pub peer_netns: Option<String>,
    /// With `peer_netns`: also refuse traffic from the peer to `netns`'s global addresses.
    #[serde(default)]
    pub symmetric: bool,
    /// The route type that refuses the traffic: `prohibit` (default: connections fail at once
    /// with "permission denied"), `unreachable` ("no route to host") or `blackhole` (packets
    /// vanish, or `connect` fails with "invalid argument").
    #[serde(default)]
    pub route: RouteKind,
}

/// How a partition refuses traffic: the `ip route` type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// `prohibit`: EACCES locally, ICMP "administratively prohibited" for forwarded packets.
    #[default]
    Prohibit,
    /// `unreachable`: EHOSTUNREACH locally, ICMP "host unreachable" for forwarded packets.
    Unreachable,
    /// `blackhole`: dropped silently.
    Blackhole,
}

impl RouteKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Prohibit => "prohibit",
            Self::Unreachable => "unreachable",
            Self::Blackhole => "blackhole",
        }
    }
}

/// `network-latency` (alias `packet-loss`): a `netem` root qdisc on a device, delaying and/or
/// dropping the packets it sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkLatency {
    /// The network namespace the device is in. Default: the driver's own namespace.
    #[serde(default)]
    pub netns: Option<String>,
    /// The device (`eth0`); only its egress is affected.
    pub device: String,
    /// Added delay per packet (`200ms`), at most 60s. Default none.
    #[serde(default, with = "duration_text")]
    pub delay: Duration,
    /// Random variation of the delay, ± (`20ms`), at most `delay`. Default none.
    #[serde(default, with = "duration_text")]
    pub jitter: Duration,
    /// Share of packets dropped, 0 to 100 (`0.5` is one in 200). Default 0.
    #[serde(default)]
    pub loss_percent: f64,
}

/// `cpu-hog`: busy-loop worker processes in a cgroup the driver creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuHog {
    /// How many workers; each keeps one CPU busy. 1 to 1024.
    pub workers: u32,
    /// A CPU quota for all workers together, in CPUs like `docker --cpus` (`0.5` is half of
    /// one CPU, `2` two CPUs), 0.01 to 4096. Default: no quota.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// An existing cgroup directory (with the `cpu` controller) to create the hog's cgroup in.
    /// Default: this process's own cgroup on a v1 hierarchy, the root of a v2 hierarchy (v2
    /// does not allow a cgroup that holds processes to have children with controllers).
    #[serde(default)]
    pub cgroup_parent: Option<PathBuf>,
}

/// `memory-hog`: a worker holding memory resident in a cgroup the driver creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryHog {
    /// How much memory to allocate and keep resident: bytes, or a size such as `256MiB`,
    /// `1GiB`, `500MB`. At least 1 MiB.
    pub size: ByteSize,
    /// The cgroup's memory limit, above `size` (the worker needs a little besides its buffer).
    /// Default: `size` + 64 MiB.
    #[serde(default)]
    pub limit: Option<ByteSize>,
    /// An existing cgroup directory (with the `memory` controller) to create the hog's cgroup
    /// in. Default as for [`CpuHog::cgroup_parent`].
    #[serde(default)]
    pub cgroup_parent: Option<PathBuf>,
}

/// An IPv4 or IPv6 network: an address and a prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A single host (`/32` or `/128`).
    #[must_use]
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The network address.
    #[must_use]
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        let masked = mask(addr, prefix);
        if masked != addr {
            return Err(format!(
                "`{s}` has host bits set; did you mean {masked}/{prefix}?"
            ));
        }
        Ok(Self { addr, prefix })
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

/// A number of bytes, written as an integer or with a unit: `B`, `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024) or `kB`, `MB`, `GB`, `TB` (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "ByteSizeText", into = "u64")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeText {
    Number(u64),
    Text(String),
}

impl TryFrom<ByteSizeText> for ByteSize {
    type Error = String;

    fn try_from(v: ByteSizeText) -> Result<Self, String> {
        match v {
            ByteSizeText::Number(n) => Ok(Self(n)),
            ByteSizeText::Text(s) => s.parse(),
        }
    }
}

impl From<ByteSize> for u64 {
    fn from(b: ByteSize) -> Self {
        b.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a size (e.g. 268435456, 256MiB, 1GiB)"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1 << 20;
        if self.0 >= MIB && self.0.is_multiple_of(MIB) {
            write!(f, "{}MiB", self.0 / MIB)
        } else {
            write!(f, "{}B", self.0)
        }
    }
}

/// Durations as humantime text (`200ms`, `5s`).
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer, de};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            de::Error::custom(format!("`{text}` is not a duration (e.g. 200ms, 5s): {e}"))
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Validation and injection
// ------------------------------------------------------------------------------------------------

const MAX_DELAY: Duration = Duration::from_secs(60);
const MIN_HOG_SIZE: u64 = 1 << 20;
const DEFAULT_LIMIT_HEADROOM: u64 = 64 << 20;
const CPU_PERIOD_US: u64 = 100_000;
/// The handle of the driver's netem qdisc: revert deletes exactly this one.
const QDISC_HANDLE: &str = "dc6a:";
/// How long a hog worker has to join its cgroup.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the memory hog has to become resident.
const RESIDENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an emptied cgroup may stay busy before `rmdir` gives up.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// Exit status of a hog worker that could not join its cgroup.
const JOIN_FAILED_EXIT: i32 = 97;

impl LocalFault {
    /// Parses a scenario's `local:` document.
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] naming the path of the offending field; [`Error::Invalid`] when a value is
    /// out of range (see [`LocalFault::validate`]).
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        // The derived (internally tagged) deserializer buffers the document before it picks the
        // variant, which loses the field paths; dispatch on the tag here to keep them.
        fn variant<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
            serde_path_to_error::deserialize(value).map_err(|e| Error::Parse {
                path: e.path().to_string(),
                source: e.into_inner(),
            })
        }
        let serde_json::Value::Object(mut fields) = value else {
            return Err(invalid(
                "fault",
                "the local fault must be a mapping with a `fault` key",
            ));
        };
        let kind = match fields.remove("fault") {
            Some(serde_json::Value::String(kind)) => kind,
            _ => {
                return Err(invalid(
                    "fault",
                    "is required: process-kill, network-partition, network-latency, \
                     packet-loss, cpu-hog or memory-hog",
                ));
            }
        };
        let rest = serde_json::Value::Object(fields);
        let fault = match kind.as_str() {
            "process-kill" => Self::ProcessKill(variant(rest)?),
            "network-partition" => Self::NetworkPartition(variant(rest)?),
            "network-latency" | "packet-loss" => Self::NetworkLatency(variant(rest)?),
            "cpu-hog" => Self::CpuHog(variant(rest)?),
            "memory-hog" => Self::MemoryHog(variant(rest)?),
            other => {
                return Err(invalid(
                    "fault",
                    format!(
                        "unknown fault `{other}` (process-kill, network-partition, \
                         network-latency, packet-loss, cpu-hog, memory-hog)"
                    ),
                ));
            }
        };
        fault.validate()?;
        Ok(fault)
    }

    /// The fault's kind as written in scenarios (`network-partition`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ProcessKill(_) => "process-kill",
            Self::NetworkPartition(_) => "network-partition",
            Self::NetworkLatency(_) => "network-latency",
            Self::CpuHog(_) => "cpu-hog",
            Self::MemoryHog(_) => "memory-hog",
        }
    }

    /// Checks the values that need no look at the host: ranges, name syntax, combinations.
    /// [`LocalFault::inject`] also checks that what the fault names exists.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::ProcessKill(f) => f.validate(),
            Self::NetworkPartition(f) => f.validate(),
            Self::NetworkLatency(f) => f.validate(),
            Self::CpuHog(f) => f.validate(),
            Self::MemoryHog(f) => f.validate(),
        }
    }

    /// Injects the fault, all-or-nothing, and returns the guard that reverts it. Blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when a field is out of range or names something this host lacks (a
    /// network namespace, a device, a process); [`Error::Unsupported`] when the host lacks a
    /// capability (a `netem` qdisc, a cgroup hierarchy with the controller);
    /// [`Error::QdiscInUse`] rather than replacing someone's qdisc; otherwise the command or
    /// cgroup operation that failed. Whatever was applied before the failure has been rolled
    /// back.
    #[tracing::instrument(skip_all, fields(fault = self.kind()))]
    pub fn inject(&self) -> Result<FaultGuard> {
        self.validate()?;
        let mut guard = FaultGuard::new(self.kind());
        let applied = match self {
            Self::ProcessKill(f) => f.apply(&mut guard),
            Self::NetworkPartition(f) => f.apply(&mut guard),
            Self::NetworkLatency(f) => f.apply(&mut guard),
            Self::CpuHog(f) => f.apply(&mut guard),
            Self::MemoryHog(f) => f.apply(&mut guard),
        };
        match applied {
            Ok(()) => {
                tracing::info!(
                    fault = guard.fault,
                    description = %guard.description,
                    "injected local fault"
                );
                Ok(guard)
            }
            Err(e) => {
                if !guard.undo.is_empty() {
                    tracing::warn!(
                        fault = guard.fault,
                        error.message = %e,
                        "rolling back a half-applied local fault"
                    );
                    if let Err(re) = guard.revert() {
                        tracing::error!(
                            fault = guard.fault,
                            error.message = %re,
                            error.cause_chain = ?re,
                            "failed to roll back a half-applied local fault"
                        );
                    }
                }
                Err(e)
            }
        }
    }
}

impl ProcessKill {
    fn validate(&self) -> Result<()> {
        match &self.target {
            ProcessTarget::Pid(0 | 1) => {
                return Err(invalid(
                    "target.pid",
                    "must not be 0 or 1 (init); name the service's own process",
                ));
            }
            ProcessTarget::Pid(pid) if *pid == std::process::id() => {
                return Err(invalid("target.pid", "is the chaos driver itself"));
            }
            ProcessTarget::Pid(_) => {}
            ProcessTarget::PidFile(path) if path.as_os_str().is_empty() => {
                return Err(invalid("target.pid_file", "must not be empty"));
            }
            ProcessTarget::PidFile(_) => {}
            ProcessTarget::Name(name) => {
                if name.is_empty() {
                    return Err(invalid("target.name", "must not be empty"));
                }
                if name.len() > 15 {
                    return Err(invalid(
                        "target.name",
                        format!(
                            "`{name}` is longer than 15 bytes, so it can never match a process \
                             name (/proc/<pid>/comm); use its first 15 bytes"
                        ),
                    ));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be more than zero"));
        }
        Ok(())
    }

    fn apply(&self, guard: &mut FaultGuard) -> Result<()> {
        let pids = self.resolve()?;
        let mut targets = Vec::with_capacity(pids.len());
        for pid in pids {
            // The start time tells a new process that reused the pid from the old one.
            if let Some(ProcState { start_time, .. }) = proc_state(pid)? {
                targets.push((pid, start_time));
            }
        }
        if targets.is_empty() {
            return Err(Error::NoProcess {
                target: self.target.to_string(),
            });
        }
        for &(pid, _) in &targets {
            let args = [
                "-c".to_owned(),
                r#"kill -s "$1" "$2""#.to_owned(),
                "sh".to_owned(),
                self.signal.name().to_owned(),
                pid.to_string(),
            ];
            match run("sh", &args) {
                Ok(_) => {}
                // It exited between the lookup and the signal: gone, as asked.
                Err(Error::Command { stderr, .. }) if stderr.contains("No such process") => {}
                Err(e) => return Err(e),
            }
        }
        let deadline = Instant::now() + self.timeout;
        for &(pid, start_time) in &targets {
            loop {
                let gone = match proc_state(pid)? {
                    None => true,
                    Some(s) => s.start_time != start_time || matches!(s.state, 'Z' | 'X'),
                };
                if gone {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::ProcessSurvived {
                        pid,
                        signal: self.signal,
                        timeout: self.timeout,
                    });
                }
                std::thread::sleep(POLL);
            }
        }
        guard.pids = targets.iter().map(|(pid, _)| *pid).collect();
        guard.description = format!(
            "SIG{} sent to {} ({} process(es): {:?}), all gone",
            self.signal,
            self.target,
            guard.pids.len(),
            guard.pids
        );
        Ok(())
    }

    fn resolve(&self) -> Result<Vec<u32>> {
        match &self.target {
            ProcessTarget::Pid(pid) => {
                if proc_state(*pid)?.is_none() {
                    return Err(invalid("target.pid", format!("no process {pid}")));
                }
                Ok(vec![*pid])
            }
            ProcessTarget::PidFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ReadField {
                    field: "target.pid_file",
                    path: path.clone(),
                    source,
                })?;
                let pid: u32 = text.trim().parse().map_err(|_| {
                    invalid(
                        "target.pid_file",
                        format!("{} does not hold a pid: `{}`", path.display(), text.trim()),
                    )
                })?;
                if pid <= 1 || pid == std::process::id() {
                    return Err(invalid(
                        "target.pid_file",
                        format!(
                            "{} names pid {pid}, which the driver will not signal",
                            path.display()
                        ),
                    ));
                }
                if proc_state(pid)?.is_none() {
                    return Err(invalid(
                        "target.pid_file",
                        format!("{} names pid {pid}, which is not running", path.display()),
                    ));
                }
                Ok(vec![pid])
            }
            ProcessTarget::Name(name) => {
                let own = std::process::id();
                let proc = Path::new("/proc");
                let entries = std::fs::read_dir(proc).map_err(|source| Error::Proc {
                    path: proc.to_owned(),
                    source,
                })?;
                let mut pids = Vec::new();
                for entry in entries.flatten() {
                    let Some(pid) = entry
                        .file_name()
                        .to_str()
                        .and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if pid <= 1 || pid == own {
                        continue;
                    }
                    // A process that exits meanwhile has no comm any more: not a match.
                    let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
                        continue;
                    };
                    if comm.trim_end_matches('\n') == name {
                        pids.push(pid);
                    }
                }
                if pids.is_empty() {
                    return Err(Error::NoProcess {
                        target: self.target.to_string(),
                    });
                }
                pids.sort_unstable();
                Ok(pids)
            }
        }
    }
}

impl NetworkPartition {
    fn validate(&self) -> Result<()> {
        if let Some(netns) = &self.netns {
            check_netns_name("netns", netns)?;
        }
        if let Some(peer) = &self.peer_netns {
            check_netns_name("peer_netns", peer)?;
            if self.netns.as_deref() == Some(peer.as_str()) {
                return Err(invalid("peer_netns", "must differ from netns"));
            }
        }
        if self.destinations.is_empty() && self.peer_netns.is_none() {
            return Err(invalid(
                "destinations",
                "name at least one destination, or a peer_netns",
            ));
        }
        if self.symmetric && self.peer_netns.is_none() {
            return Err(invalid("symmetric", "needs a peer_netns"));
        }
        Ok(())
    }

    fn apply(&self, guard: &mut FaultGuard) -> Result<()> {
        if let Some(netns) = &self.netns {
            require_netns("netns", netns)?;
        }
        let mut forward: BTreeSet<Cidr> = self.destinations.iter().copied().collect();
        let mut backward = BTreeSet::new();
        if let Some(peer) = &self.peer_netns {
            require_netns("peer_netns", peer)?;
            let peer_addrs = global_addresses(Some(peer))?;
            if peer_addrs.is_empty() {
                return Err(invalid(
                    "peer_netns",
                    format!("network namespace `{peer}` has no global addresses"),
                ));
            }
            forward.extend(peer_addrs);
            if self.symmetric {
                backward = global_addresses(self.netns.as_deref())?;
                if backward.is_empty() {
                    return Err(invalid(
                        "netns",
                        format!(
                            "{} has no global addresses for the symmetric partition",
                            netns_label(self.netns.as_deref())
                        ),
                    ));
                }
            }
        }
        for dst in &forward {
            add_route(guard, self.netns.as_deref(), self.route, *dst)?;
        }
        for dst in &backward {
            add_route(guard, self.peer_netns.as_deref(), self.route, *dst)?;
        }
        let list = |set: &BTreeSet<Cidr>| {
            set.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        guard.description = format!(
            "{} routes in {} to [{}]",
            self.route.as_str(),
            netns_label(self.netns.as_deref()),
            list(&forward)
        );
        if !backward.is_empty() {
            guard.description += &format!(
                " and in {} to [{}]",
                netns_label(self.peer_netns.as_deref()),
                list(&backward)
            );
        }
        Ok(())
    }
}

fn add_route(
    guard: &mut FaultGuard,
    netns: Option<&str>,
    kind: RouteKind,
    dst: Cidr,
) -> Result<()> {
    let mut args = netns_args(netns);
    args.extend(["route", "add", kind.as_str()].map(str::to_owned));
    args.push(dst.to_string());
    run("ip", &args)?;
    tracing::debug!(netns = netns_label(netns), route = kind.as_str(), destination = %dst, "route added");
    guard.undo.push(Undo::Route {
        netns: netns.map(str::to_owned),
        kind,
        dst,
    });
    Ok(())
}

impl NetworkLatency {
    fn validate(&self) -> Result<()> {
        if let Some(netns) = &self.netns {
            check_netns_name("netns", netns)?;
        }
        check_device_name(&self.device)?;
        if !self.loss_percent.is_finite() || !(0.0..=100.0).contains(&self.loss_percent) {
            return Err(invalid(
                "loss_percent",
                format!("{} is not a percentage (0 to 100)", self.loss_percent),
            ));
        }
        if self.delay > MAX_DELAY {
            return Err(invalid(
                "delay",
                format!("{:?} is more than {MAX_DELAY:?}", self.delay),
            ));
        }
        if self.jitter > self.delay {
            return Err(invalid(
                "jitter",
                format!("{:?} is more than the delay {:?}", self.jitter, self.delay),
            ));
        }
        if self.delay.is_zero() && self.loss_percent == 0.0 {
            return Err(invalid(
                "delay",
                "a delay or a loss_percent is needed (both are zero)",
            ));
        }
        Ok(())
    }

    /// `netem` options: `delay 200000us 20000us loss 5%`.
    fn netem_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.delay.is_zero() {
            args.push("delay".to_owned());
            args.push(format!("{}us", self.delay.as_micros()));
            if !self.jitter.is_zero() {
                args.push(format!("{}us", self.jitter.as_micros()));
            }
        }
        if self.loss_percent > 0.0 {
            args.push("loss".to_owned());
            args.push(format!("{}%", self.loss_percent));
        }
        args
    }

    fn apply(&self, guard: &mut FaultGuard) -> Result<()> {
        let netns = self.netns.as_deref();
        if let Some(name) = netns {
            require_netns("netns", name)?;
        }
        let mut show = netns_args(netns);
        show.extend(["link", "show", "dev", &self.device].map(str::to_owned));
        if let Err(Error::Command { .. }) = run("ip", &show) {
            return Err(invalid(
                "device",
                format!("no device `{}` in {}", self.device, netns_label(netns)),
            ));
        }
        if let Some(root) = root_qdisc(netns, &self.device)?
            && root.handle != "0:"
        {
            return Err(Error::QdiscInUse {
                netns: netns_label(netns),
                device: self.device.clone(),
                kind: root.kind,
                handle: root.handle,
            });
        }
        let mut args = netns_args(netns);
        args.extend(
            [
                "qdisc",
                "add",
                "dev",
                &self.device,
                "root",
                "handle",
                QDISC_HANDLE,
                "netem",
            ]
            .map(str::to_owned),
        );
        args.extend(self.netem_args());
        match run("tc", &args) {
            Ok(_) => {}
            Err(Error::Command { stderr, .. })
                if stderr.contains("Specified qdisc kind is unknown")
                    || stderr.contains("qdisc 'netem' not found") =>
            {
                return Err(Error::Unsupported {
                    fault: "network-latency",
                    reason:
                        "the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM, module sch_netem)"
                            .to_owned(),
                });
            }
            Err(e) => return Err(e),
        }
        guard.undo.push(Undo::Qdisc {
            netns: self.netns.clone(),
            device: self.device.clone(),
        });
        guard.description = format!(
            "netem `{}` on {} in {}",
            self.netem_args().join(" "),
            self.device,
            netns_label(netns)
        );
        Ok(())
    }
}

struct RootQdisc {
    kind: String,
    handle: String,
}

/// The device's root qdisc, from `tc -j qdisc show dev D root`.
fn root_qdisc(netns: Option<&str>, device: &str) -> Result<Option<RootQdisc>> {
    let mut args = netns_args(netns);
    args.extend(["-j", "qdisc", "show", "dev", device, "root"].map(str::to_owned));
    let out = run("tc", &args)?;
    Ok(parse_root_qdisc(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_root_qdisc(json: &str) -> Option<RootQdisc> {
    let list: Vec<serde_json::Value> = serde_json::from_str(json).ok()?;
    list.iter()
        .find(|q| q.get("root").and_then(serde_json::Value::as_bool) == Some(true))
        .or_else(|| list.first())
        .map(|q| RootQdisc {
            kind: q
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            handle: q
                .get("handle")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
}

impl CpuHog {
    fn validate(&self) -> Result<()> {
        if !(1..=1024).contains(&self.workers) {
            return Err(invalid(
                "workers",
                format!("{} is not 1 to 1024", self.workers),
            ));
        }
        if let Some(cpus) = self.cpus
            && (!cpus.is_finite() || !(0.01..=4096.0).contains(&cpus))
        {
            return Err(invalid("cpus", format!("{cpus} is not 0.01 to 4096")));
        }
        if let Some(parent) = &self.cgroup_parent {
            check_cgroup_parent(parent)?;
        }
        Ok(())
    }

    fn apply(&self, guard: &mut FaultGuard) -> Result<()> {
        let cgroup = create_cgroup(guard, "cpu", "cpu-hog", self.cgroup_parent.as_deref())?;
        if let Some(cpus) = self.cpus {
            // Rounded to whole microseconds; the kernel's minimum quota is 1ms.
            let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1_000);
            match cgroup.version {
                CgroupVersion::V2 => {
                    cgroup.write("cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                CgroupVersion::V1 => {
                    cgroup.write("cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    cgroup.write("cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        let procs = cgroup.path.join("cgroup.procs");
        // A worker joins the cgroup before it starts working, and keeps checking (every
        // ~100k iterations) that the driver is alive, so a crashed driver leaves no hog behind.
        let script = format!(
            r#"echo $$ > "$1" || exit {JOIN_FAILED_EXIT}
while kill -0 "$2" 2>/dev/null; do i=0; while [ "$i" -lt 100000 ]; do i=$((i+1)); done; done"#
        );
        for _ in 0..self.workers {
            let child = spawn_worker(
                Command::new("sh")
                    .arg("-c")
                    .arg(&script)
                    .arg("sh")
                    .arg(&procs)
                    .arg(std::process::id().to_string())
                    .stdout(Stdio::null()),
            )?;
            let pid = child.id();
            guard.pids.push(pid);
            guard.undo.push(Undo::Worker {
                child,
                _stdout: None,
            });
            wait_joined(guard, &cgroup, pid, "cpu-hog")?;
        }
        guard.description = format!(
            "{} busy worker(s) {:?} in {} ({}){}",
            self.workers,
            guard.pids,
            cgroup.path.display(),
            cgroup.version,
            self.cpus
                .map(|c| format!(", quota {c} CPU(s)"))
                .unwrap_or_default()
        );
        guard.cgroup = Some(cgroup);
        Ok(())
    }
}

impl MemoryHog {
    fn validate(&self) -> Result<()> {
        if self.size.0 < MIN_HOG_SIZE {
            return Err(invalid("size", format!("{} is less than 1MiB", self.size)));
        }
        if let Some(limit) = self.limit
            && limit <= self.size
        {
            return Err(invalid(
                "limit",
                format!("{limit} is not above size {}", self.size),
            ));
        }
        if let Some(parent) = &self.cgroup_parent {
            check_cgroup_parent(parent)?;
        }
        Ok(())
    }

    fn apply(&self, guard: &mut FaultGuard) -> Result<()> {
        let size = self.size.0;
        let limit = self
            .limit
            .map_or(size.saturating_add(DEFAULT_LIMIT_HEADROOM), |l| l.0);
        let cgroup = create_cgroup(guard, "memory", "memory-hog", self.cgroup_parent.as_deref())?;
        match cgroup.version {
            CgroupVersion::V2 => cgroup.write("memory.max", &limit.to_string())?,
            CgroupVersion::V1 => cgroup.write("memory.limit_in_bytes", &limit.to_string())?,
        }
        // dd reads `size` bytes of zeros into one buffer (which makes every page resident),
        // then blocks writing it into a pipe nobody reads: the memory stays until the worker
        // is killed, or until the driver dies and the pipe breaks.
        let procs = cgroup.path.join("cgroup.procs");
        let script = format!(
            r#"echo $$ > "$1" || exit {JOIN_FAILED_EXIT}
exec dd if=/dev/zero bs="$2" count=1 iflag=fullblock status=none"#
        );
        let mut child = spawn_worker(
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .arg("sh")
                .arg(&procs)
                .arg(size.to_string())
                .stdout(Stdio::piped()),
        )?;
        let pid = child.id();
        let stdout = child.stdout.take();
        guard.pids.push(pid);
        guard.undo.push(Undo::Worker {
            child,
            _stdout: stdout,
        });
        wait_joined(guard, &cgroup, pid, "memory-hog")?;
        let deadline = Instant::now() + RESIDENT_TIMEOUT;
        loop {
            if cgroup.memory_current()? >= size {
                break;
            }
            check_worker(guard, "memory-hog")?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "{} of memory to be resident in {}",
                        self.size,
                        cgroup.path.display()
                    ),
                    timeout: RESIDENT_TIMEOUT,
                });
            }
            std::thread::sleep(POLL);
        }
        guard.description = format!(
            "{} resident in worker {pid} in {} ({}), limit {}",
            self.size,
            cgroup.path.display(),
            cgroup.version,
            ByteSize(limit)
        );
        guard.cgroup = Some(cgroup);
        Ok(())
    }
}

fn spawn_worker(command: &mut Command) -> Result<Child> {
    command.stdin(Stdio::null()).stderr(Stdio::piped());
    command.spawn().map_err(|source| Error::Spawn {
        command: "sh -c <hog worker>".to_owned(),
        source,
    })
}

/// Waits until the worker is listed in the cgroup, failing if it exits first.
fn wait_joined(
    guard: &mut FaultGuard,
    cgroup: &Cgroup,
    pid: u32,
    fault: &'static str,
) -> Result<()> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        if cgroup.procs()?.contains(&pid) {
            return Ok(());
        }
        check_worker(guard, fault)?;
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("worker {pid} to join {}", cgroup.path.display()),
                timeout: JOIN_TIMEOUT,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Fails if a worker has exited.
fn check_worker(guard: &mut FaultGuard, fault: &'static str) -> Result<()> {
    for undo in &mut guard.undo {
        if let Undo::Worker { child, .. } = undo {
            let status = child.try_wait().map_err(|source| Error::Proc {
                path: PathBuf::from(format!("/proc/{}", child.id())),
                source,
            })?;
            if let Some(status) = status {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    // Best effort: the message only decorates the error.
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let mut stderr = stderr.trim().to_owned();
                if status.code() == Some(JOIN_FAILED_EXIT) && stderr.is_empty() {
                    "could not join its cgroup".clone_into(&mut stderr);
                }
                return Err(Error::WorkerExited {
                    fault,
                    pid: child.id(),
                    status,
                    stderr,
                });
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The guard
// ------------------------------------------------------------------------------------------------

/// An injected fault. Dropping it reverts the fault (errors are logged);
/// [`FaultGuard::revert`] reverts it and reports errors.
#[must_use = "dropping the guard reverts the fault at once"]
pub struct FaultGuard {
    fault: &'static str,
    description: String,
    pids: Vec<u32>,
    cgroup: Option<Cgroup>,
    /// What was applied, in order; reverted last to first.
    undo: Vec<Undo>,
}

enum Undo {
    Route {
        netns: Option<String>,
        kind: RouteKind,
        dst: Cidr,
    },
    Qdisc {
        netns: Option<String>,
        device: String,
    },
    Worker {
        child: Child,
        /// The memory hog's pipe, held open (and never read) until the worker is gone.
        _stdout: Option<ChildStdout>,
    },
    Cgroup {
        path: PathBuf,
    },
}

impl fmt::Debug for FaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultGuard")
            .field("fault", &self.fault)
            .field("description", &self.description)
            .field("pids", &self.pids)
            .field("cgroup", &self.cgroup)
            .field("pending_steps", &self.undo.len())
            .finish()
    }
}

impl FaultGuard {
    fn new(fault: &'static str) -> Self {
        Self {
            fault,
            description: String::new(),
            pids: Vec::new(),
            cgroup: None,
            undo: Vec::new(),
        }
    }

    /// The fault's kind (`cpu-hog`).
    #[must_use]
    pub fn fault(&self) -> &'static str {
        self.fault
    }

    /// What was injected, for logs and run records.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The processes the fault acted on: the signalled processes (process-kill) or the hog's
    /// workers (cpu-hog, memory-hog).
    #[must_use]
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The hog's cgroup (cpu-hog, memory-hog).
    #[must_use]
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Whether everything has been reverted (always, for a process-kill).
    #[must_use]
    pub fn is_reverted(&self) -> bool {
        self.undo.is_empty()
    }

    /// Reverts the fault: deletes the routes or the qdisc, kills the workers and removes the
    /// cgroup. Every step is attempted; the ones that fail stay pending, so calling this again
    /// (or dropping the guard) retries them. Once reverted, calling it again does nothing.
    /// A step whose object is already gone (the route, the network namespace, the cgroup)
    /// counts as reverted.
    ///
    /// # Errors
    ///
    /// [`Error::Revert`] with the first failure (the others are logged).
    pub fn revert(&mut self) -> Result<()> {
        if self.undo.is_empty() {
            return Ok(());
        }
        let mut failed: Vec<(Undo, Error)> = Vec::new();
        while let Some(mut step) = self.undo.pop() {
            if let Err(e) = step.revert() {
                failed.push((step, e));
            }
        }
        if failed.is_empty() {
            tracing::info!(
                fault = self.fault,
                description = %self.description,
                "reverted local fault"
            );
            return Ok(());
        }
        let count = failed.len();
        let mut first = None;
        // Keep the failed steps in their original (application) order for the next attempt.
        for (step, e) in failed.into_iter().rev() {
            self.undo.push(step);
            if first.is_none() {
                first = Some(e);
            } else {
                tracing::warn!(fault = self.fault, error.message = %e, error.cause_chain = ?e, "a revert step failed");
            }
        }
        let Some(first) = first else { return Ok(()) };
        Err(Error::Revert {
            fault: self.fault,
            failed: count,
            source: Box::new(first),
        })
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Err(e) = self.revert() {
            tracing::error!(
                fault = self.fault,
                description = %self.description,
                error.message = %e,
                error.cause_chain = ?e,
                "failed to revert local fault"
            );
        }
    }
}

impl Undo {
    fn revert(&mut self) -> Result<()> {
        match self {
            Self::Route { netns, kind, dst } => {
                let netns = netns.as_deref();
                let mut args = netns_args(netns);
                args.extend(["route", "del", kind.as_str()].map(str::to_owned));
                args.push(dst.to_string());
                match run("ip", &args) {
                    Ok(_) => Ok(()),
                    Err(Error::Command { stderr, .. })
                        if stderr.contains("No such process")
                            || stderr.contains("Cannot open network namespace") =>
                    {
                        tracing::warn!(
                            netns = netns_label(netns),
                            destination = %dst,
                            "route (or its network namespace) already gone"
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Self::Qdisc { netns, device } => {
                let netns = netns.as_deref();
                let mut args = netns_args(netns);
                args.extend(
                    [
                        "qdisc",
                        "del",
                        "dev",
                        device,
                        "root",
                        "handle",
                        QDISC_HANDLE,
                    ]
                    .map(str::to_owned),
                );
                match run("tc", &args) {
                    Ok(_) => Ok(()),
                    Err(Error::Command { stderr, .. })
                        if stderr.contains("Cannot open network namespace")
                            || stderr.contains("Cannot find device") =>
                    {
                        tracing::warn!(netns = netns_label(netns), device = %device, "device (or its network namespace) already gone");
                        Ok(())
                    }
                    Err(e) => {
                        // Not ours any more: the default is back (someone deleted ours), or
                        // someone replaced it, which we leave alone but report.
                        match root_qdisc(netns, device)? {
                            Some(root) if root.handle == "0:" => {
                                tracing::warn!(netns = netns_label(netns), device = %device, "netem qdisc already gone");
                                Ok(())
                            }
                            _ => Err(e),
                        }
                    }
                }
            }
            Self::Worker { child, .. } => {
                let pid = child.id();
                child.kill().map_err(|source| Error::Proc {
                    path: PathBuf::from(format!("/proc/{pid}")),
                    source,
                })?;
                child.wait().map_err(|source| Error::Proc {
                    path: PathBuf::from(format!("/proc/{pid}")),
                    source,
                })?;
                Ok(())
            }
            Self::Cgroup { path } => remove_cgroup(path),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Network namespaces and commands
// ------------------------------------------------------------------------------------------------

fn netns_args(netns: Option<&str>) -> Vec<String> {
    match netns {
        Some(n) => vec!["-n".to_owned(), n.to_owned()],
        None => Vec::new(),
    }
}

fn netns_label(netns: Option<&str>) -> String {
    match netns {
        Some(n) => format!("netns {n}"),
        None => "the host netns".to_owned(),
    }
}

fn check_netns_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(invalid(
            field,
            format!("`{name}` is not a network namespace name"),
        ));
    }
    Ok(())
}

/// Named network namespaces are files in iproute2's run directory.
fn require_netns(field: &'static str, name: &str) -> Result<()> {
    let exists = ["/run/netns", "/var/run/netns"]
        .iter()
        .any(|dir| Path::new(dir).join(name).exists());
    if exists {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("network namespace `{name}` does not exist (see `ip netns list`)"),
        ))
    }
}

fn check_device_name(device: &str) -> Result<()> {
    let ok = !device.is_empty()
        && device.len() <= 15
        && device != "."
        && device != ".."
        && !device
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "device",
            format!(
                "`{device}` is not a network device name (1 to 15 bytes, no `/`, `:` or spaces)"
            ),
        ))
    }
}

/// The global addresses of a network namespace, as host networks.
fn global_addresses(netns: Option<&str>) -> Result<BTreeSet<Cidr>> {
    let mut args = netns_args(netns);
    args.extend(["-j", "addr", "show"].map(str::to_owned));
    let out = run("ip", &args)?;
    Ok(parse_global_addresses(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

fn parse_global_addresses(json: &str) -> BTreeSet<Cidr> {
    let links: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    links
        .iter()
        .filter_map(|link| link.get("addr_info").and_then(serde_json::Value::as_array))
        .flatten()
        .filter(|a| a.get("scope").and_then(serde_json::Value::as_str) == Some("global"))
        .filter_map(|a| a.get("local").and_then(serde_json::Value::as_str))
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(Cidr::host)
        .collect()
}

fn run(program: &str, args: &[String]) -> Result<Output> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

struct ProcState {
    state: char,
    start_time: u64,
}

/// A process's state and start time from `/proc/<pid>/stat`; `None` if there is no such process.
fn proc_state(pid: u32) -> Result<Option<ProcState>> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) || e.raw_os_error() == Some(3) => {
            return Ok(None);
        }
        Err(source) => return Err(Error::Proc { path, source }),
    };
    Ok(parse_stat(&text))
}

/// Fields after the command name (which may hold spaces and parentheses): state is field 3,
/// start time field 22.
fn parse_stat(text: &str) -> Option<ProcState> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcState {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

// ------------------------------------------------------------------------------------------------
// Cgroups
// ------------------------------------------------------------------------------------------------

/// A cgroup hierarchy version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A v1 hierarchy of one controller (`/sys/fs/cgroup/memory`).
    V1,
    /// The unified (v2) hierarchy.
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "cgroup v1",
            Self::V2 => "cgroup v2",
        })
    }
}

/// A cgroup the driver created for a hog; the guard removes it on revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: CgroupVersion,
    path: PathBuf,
}

impl Cgroup {
    /// Its hierarchy's version.
    #[must_use]
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Its directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The processes in it.
    ///
    /// # Errors
    ///
    /// [`Error::Cgroup`] when `cgroup.procs` cannot be read (the cgroup is gone).
    pub fn procs(&self) -> Result<Vec<u32>> {
        Ok(self
            .read("cgroup.procs")?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The memory charged to it now, in bytes (`memory.current` on v2, `memory.usage_in_bytes`
    /// on v1). Only for a memory-hog's cgroup.
    ///
    /// # Errors
    ///
    /// [`Error::Cgroup`] when the file cannot be read (not a memory cgroup, or gone).
    pub fn memory_current(&self) -> Result<u64> {
        let file = match self.version {
            CgroupVersion::V2 => "memory.current",
            CgroupVersion::V1 => "memory.usage_in_bytes",
        };
        let text = self.read(file)?;
        text.trim().parse().map_err(|_| Error::Cgroup {
            action: "parse",
            path: self.path.join(file),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("`{}`", text.trim())),
        })
    }

    fn read(&self, file: &str) -> Result<String> {
        let path = self.path.join(file);
        std::fs::read_to_string(&path).map_err(|source| Error::Cgroup {
            action: "read",
            path,
            source,
        })
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.path.join(file);
        std::fs::write(&path, value).map_err(|source| Error::Cgroup {
            action: "write",
            path,
            source,
        })
    }
}

fn check_cgroup_parent(parent: &Path) -> Result<()> {
    if !parent.is_absolute() {
        return Err(invalid(
            "cgroup_parent",
            format!("{} is not an absolute path", parent.display()),
        ));
    }
    Ok(())
}

/// A line of `/proc/self/mountinfo`, the parts that matter for cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The path inside the file system that is mounted (for cgroups: the cgroup at the mount).
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_options: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape_mount(left.get(3)?),
                mount_point: PathBuf::from(unescape_mount(left.get(4)?)),
                fs_type: (*right.first()?).to_owned(),
                super_options: right
                    .get(2)
                    .map(|o| o.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.clone().take(3).collect();
            if code.len() == 3
                && code.chars().all(|d| ('0'..='7').contains(&d))
                && let Ok(b) = u8::from_str_radix(&code, 8)
            {
                out.push(char::from(b));
                for _ in 0..3 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnCgroup {
    controllers: Vec<String>,
    path: String,
}

fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(OwnCgroup {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// Where to create a cgroup with `controller`: the v2 hierarchy when it offers the controller,
/// else the controller's v1 hierarchy (see [`CpuHog::cgroup_parent`] for the default parent).
/// `v2_controllers` reads a v2 cgroup's `cgroup.controllers`.
fn locate_cgroup_parent(
    controller: &str,
    parent: Option<&Path>,
    mounts: &[Mount],
    own: &[OwnCgroup],
    v2_controllers: &dyn Fn(&Path) -> Option<String>,
) -> Result<(CgroupVersion, PathBuf), String> {
    let offers = |dir: &Path| {
        v2_controllers(dir).is_some_and(|c| c.split_whitespace().any(|c| c == controller))
    };
    let has_controller = |m: &Mount| m.super_options.iter().any(|o| o == controller);
    if let Some(parent) = parent {
        let mount = mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup2" || (m.fs_type == "cgroup" && has_controller(m)))
            .filter(|m| parent.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.as_os_str().len())
            .ok_or_else(|| {
                format!(
                    "{} is not in a cgroup hierarchy with the {controller} controller",
                    parent.display()
                )
            })?;
        return if mount.fs_type == "cgroup" {
            Ok((CgroupVersion::V1, parent.to_owned()))
        } else if offers(parent) {
            Ok((CgroupVersion::V2, parent.to_owned()))
        } else {
            Err(format!(
                "the {controller} controller is not available in {} (cgroup.controllers)",
                parent.display()
            ))
        };
    }
    if let Some(m) = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup2" && offers(&m.mount_point))
    {
        return Ok((CgroupVersion::V2, m.mount_point.clone()));
    }
    if let Some(m) = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup" && has_controller(m))
    {
        // Nest under this process's own cgroup, so the hog counts against the same limits.
        let own_path = own
            .iter()
            .find(|o| o.controllers.iter().any(|c| c == controller))
            .map(|o| o.path.as_str())
            .unwrap_or("/");
        let relative = Path::new(own_path)
            .strip_prefix(&m.root)
            .map(Path::to_owned)
            .unwrap_or_default();
        return Ok((CgroupVersion::V1, m.mount_point.join(relative)));
    }
    Err(format!(
        "no cgroup hierarchy offers the {controller} controller (neither a cgroup2 mount whose \
         cgroup.controllers lists it nor a v1 mount of it)"
    ))
}

static CGROUP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates the hog's cgroup (recording its removal in the guard) and, on v2, enables the
/// controller for the parent's children.
fn create_cgroup(
    guard: &mut FaultGuard,
    controller: &'static str,
    fault: &'static str,
    parent: Option<&Path>,
) -> Result<Cgroup> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|source| Error::Proc {
            path: PathBuf::from(path),
            source,
        })
    };
    let mounts = parse_mountinfo(&read("/proc/self/mountinfo")?);
    let own = parse_proc_cgroup(&read("/proc/self/cgroup")?);
    let v2_controllers = |dir: &Path| std::fs::read_to_string(dir.join("cgroup.controllers")).ok();
    let (version, parent) =
        locate_cgroup_parent(controller, parent, &mounts, &own, &v2_controllers).map_err(
            |reason| match parent {
                Some(_) => invalid("cgroup_parent", reason),
                None => Error::Unsupported { fault, reason },
            },
        )?;
    if !parent.is_dir() {
        return Err(invalid(
            "cgroup_parent",
            format!("{} is not a cgroup directory", parent.display()),
        ));
    }
    if version == CgroupVersion::V2 {
        let control = parent.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).map_err(|source| Error::Cgroup {
            action: "read",
            path: control.clone(),
            source,
        })?;
        if !enabled.split_whitespace().any(|c| c == controller) {
            // Left enabled on revert: other cgroups may rely on it by then. EBUSY here means
            // the parent holds processes itself, which v2 forbids for a non-root cgroup with
            // controllers enabled for its children; name a `cgroup_parent` without processes.
            std::fs::write(&control, format!("+{controller}")).map_err(|source| Error::Cgroup {
                action: "enable the controller in",
                path: control.clone(),
                source,
            })?;
        }
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "deploygraph-chaos-{fault}-{}-{}-{nanos}",
        std::process::id(),
        CGROUP_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = parent.join(name);
    std::fs::create_dir(&path).map_err(|source| Error::Cgroup {
        action: "create the cgroup",
        path: path.clone(),
        source,
    })?;
    tracing::debug!(cgroup = %path.display(), version = %version, "cgroup created");
    guard.undo.push(Undo::Cgroup { path: path.clone() });
    Ok(Cgroup { version, path })
}

/// Removes a cgroup whose processes have been killed; it may stay busy for a moment while
/// they are torn down.
fn remove_cgroup(path: &Path) -> Result<()> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(16) && Instant::now() < deadline => {
                // EBUSY: still populated.
                std::thread::sleep(POLL);
            }
            Err(source) => {
                return Err(Error::Cgroup {
                    action: "remove the cgroup",
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(yaml: &str) -> Result<LocalFault> {
        let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        LocalFault::from_value(value)
    }

    fn invalid_field(result: Result<LocalFault>) -> &'static str {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn every_fault_kind_parses_from_scenario_yaml() {
        let kill = parse("{fault: process-kill, target: {pid_file: /run/app.pid}, signal: SIGTERM, timeout: 10s}").unwrap();
        assert_eq!(
            kill,
            LocalFault::ProcessKill(ProcessKill {
                target: ProcessTarget::PidFile("/run/app.pid".into()),
                signal: Signal::Term,
                timeout: Duration::from_secs(10),
            })
        );
        let kill = parse("{fault: process-kill, target: {name: postgres}}").unwrap();
        let LocalFault::ProcessKill(kill) = kill else {
            panic!()
        };
        assert_eq!(kill.signal, Signal::Kill);
        assert_eq!(kill.timeout, Duration::from_secs(5));

        let partition = parse(
            "{fault: network-partition, netns: a, destinations: [10.1.64.0/18, 10.0.0.7, 'fd00::/8'], peer_netns: b, symmetric: true, route: blackhole}",
        )
        .unwrap();
        let LocalFault::NetworkPartition(p) = partition else {
            panic!()
        };
        assert_eq!(p.destinations.len(), 3);
        assert_eq!(p.destinations[1].to_string(), "10.0.0.7/32");
        assert_eq!(p.route, RouteKind::Blackhole);

        let latency =
            parse("{fault: network-latency, netns: a, device: eth0, delay: 200ms, jitter: 20ms}")
                .unwrap();
        let LocalFault::NetworkLatency(l) = latency else {
            panic!()
        };
        assert_eq!(l.netem_args(), ["delay", "200000us", "20000us"]);
        let loss = parse("{fault: packet-loss, device: eth0, loss_percent: 0.5}").unwrap();
        let LocalFault::NetworkLatency(l) = loss else {
            panic!()
        };
        assert_eq!(l.netem_args(), ["loss", "0.5%"]);

        let cpu = parse("{fault: cpu-hog, workers: 2, cpus: 1.5}").unwrap();
        assert_eq!(cpu.kind(), "cpu-hog");
        let memory = parse("{fault: memory-hog, size: 256MiB, limit: 1GiB}").unwrap();
        let LocalFault::MemoryHog(m) = memory else {
            panic!()
        };
        assert_eq!(m.size, ByteSize(256 << 20));
        assert_eq!(m.limit, Some(ByteSize(1 << 30)));
        let memory = parse("{fault: memory-hog, size: 134217728}").unwrap();
        let LocalFault::MemoryHog(m) = memory else {
            panic!()
        };
        assert_eq!(m.size, ByteSize(128 << 20));
    }

    #[test]
    fn the_derived_deserializer_reads_a_fault_directly() {
        let fault: LocalFault =
            serde_norway::from_str("fault: packet-loss\ndevice: eth0\nloss_percent: 5\n").unwrap();
        assert_eq!(fault.kind(), "network-latency");
        fault.validate().unwrap();
        assert!(
            serde_norway::from_str::<LocalFault>("fault: cpu-hog\nworkers: 1\nextra: 1\n").is_err()
        );
    }

    #[test]
    fn a_fault_round_trips_through_json() {
        let fault =
            parse("{fault: network-latency, device: eth0, delay: 1s 500ms, loss_percent: 2}")
                .unwrap();
        let value = serde_json::to_value(&fault).unwrap();
        assert_eq!(value["fault"], "network-latency");
        assert_eq!(LocalFault::from_value(value).unwrap(), fault);
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected_with_their_path() {
        let err = parse("{fault: cpu-hog, workers: 2, cpu: 1}").unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err:?}");
        assert!(
            format!("{:?}", err).contains("cpu"),
            "the error names the field: {err:?}"
        );
        assert_eq!(invalid_field(parse("{fault: disk-fill}")), "fault");
        assert_eq!(invalid_field(parse("{workers: 2}")), "fault");
        let err = parse("{fault: network-partition, destinations: [10.1.64.5/18]}").unwrap_err();
        let Error::Parse { path, source } = err else {
            panic!()
        };
        assert_eq!(path, "destinations[0]");
        assert!(source.to_string().contains("10.1.64.0/18"), "{source}");
        let err = parse("{fault: process-kill, target: {pid: 12}, timeout: soon}").unwrap_err();
        let Error::Parse { path, .. } = err else {
            panic!()
        };
        assert_eq!(path, "timeout");
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        assert_eq!(
            invalid_field(parse(
                "{fault: packet-loss, device: eth0, loss_percent: 101}"
            )),
            "loss_percent"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: packet-loss, device: eth0, loss_percent: -1}"
            )),
            "loss_percent"
        );
        assert_eq!(
            invalid_field(parse("{fault: network-latency, device: eth0}")),
            "delay"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: network-latency, device: eth0, delay: 10ms, jitter: 20ms}"
            )),
            "jitter"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: network-latency, device: 'eth0/x', delay: 1ms}"
            )),
            "device"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: network-latency, device: averyveryverylongname, delay: 1ms}"
            )),
            "device"
        );
        assert_eq!(
            invalid_field(parse("{fault: network-partition, netns: a}")),
            "destinations"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: network-partition, netns: a, destinations: [10.0.0.1], symmetric: true}"
            )),
            "symmetric"
        );
        assert_eq!(
            invalid_field(parse("{fault: network-partition, netns: a, peer_netns: a}")),
            "peer_netns"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: network-partition, netns: ../x, peer_netns: a}"
            )),
            "netns"
        );
        assert_eq!(
            invalid_field(parse("{fault: cpu-hog, workers: 0}")),
            "workers"
        );
        assert_eq!(
            invalid_field(parse("{fault: cpu-hog, workers: 1, cpus: 0}")),
            "cpus"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: cpu-hog, workers: 1, cgroup_parent: rel/path}"
            )),
            "cgroup_parent"
        );
        assert_eq!(
            invalid_field(parse("{fault: memory-hog, size: 1kB}")),
            "size"
        );
        assert_eq!(
            invalid_field(parse("{fault: memory-hog, size: 64MiB, limit: 64MiB}")),
            "limit"
        );
        assert_eq!(
            invalid_field(parse("{fault: process-kill, target: {pid: 1}}")),
            "target.pid"
        );
        assert_eq!(
            invalid_field(parse(
                "{fault: process-kill, target: {name: a-name-longer-than-15}}"
            )),
            "target.name"
        );
    }

    #[test]
    fn cidrs_and_sizes_parse_strictly() {
        assert_eq!("10.1.64.0/18".parse::<Cidr>().unwrap().prefix(), 18);
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix(), 0);
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0.1/24".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("2GB".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn the_default_root_qdisc_has_handle_zero() {
        let q = parse_root_qdisc(
            r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]"#,
        )
        .unwrap();
        assert_eq!((q.kind.as_str(), q.handle.as_str()), ("noqueue", "0:"));
        let q = parse_root_qdisc(r#"[{"kind":"htb","handle":"1:","root":true}]"#).unwrap();
        assert_eq!(q.handle, "1:");
        assert!(parse_root_qdisc("[]").is_none());
    }

    #[test]
    fn global_addresses_skip_loopback_and_link_local() {
        let json = r#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","scope":"host"}]},
            {"ifname":"veth0","addr_info":[{"family":"inet","local":"10.77.0.2","prefixlen":24,"scope":"global"},
            {"family":"inet6","local":"fe80::1","scope":"link"},{"family":"inet6","local":"fd00::2","scope":"global"}]}]"#;
        let addrs: Vec<String> = parse_global_addresses(json)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addrs, ["10.77.0.2/32", "fd00::2/128"]);
    }

    #[test]
    fn proc_stat_survives_parentheses_in_the_command_name() {
        let stat = "4242 (a (weird) name) Z 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 0";
        let s = parse_stat(stat).unwrap();
        assert_eq!(s.state, 'Z');
        assert_eq!(s.start_time, 987_654);
    }

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn a_hybrid_host_uses_v1_nested_in_the_own_cgroup() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        let own = parse_proc_cgroup(HYBRID_CGROUP);
        let hugetlb_only = |_: &Path| Some("hugetlb\n".to_owned());
        assert_eq!(
            locate_cgroup_parent("memory", None, &mounts, &own, &hugetlb_only),
            Ok((
                CgroupVersion::V1,
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
            ))
        );
        assert_eq!(
            locate_cgroup_parent("cpu", None, &mounts, &own, &hugetlb_only),
            Ok((CgroupVersion::V1, PathBuf::from("/sys/fs/cgroup/cpu")))
        );
        assert!(locate_cgroup_parent("io", None, &mounts, &own, &hugetlb_only).is_err());
    }

    #[test]
    fn a_unified_host_uses_v2_at_the_hierarchy_root() {
        let mounts = parse_mountinfo(
            "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let own = parse_proc_cgroup("0::/system.slice/deploygraph.service\n");
        let all = |_: &Path| Some("cpuset cpu io memory pids\n".to_owned());
        assert_eq!(
            locate_cgroup_parent("memory", None, &mounts, &own, &all),
            Ok((CgroupVersion::V2, PathBuf::from("/sys/fs/cgroup")))
        );
        let delegated = Path::new("/sys/fs/cgroup/system.slice/chaos.slice");
        assert_eq!(
            locate_cgroup_parent("cpu", Some(delegated), &mounts, &own, &all),
            Ok((CgroupVersion::V2, delegated.to_owned()))
        );
        let none = |_: &Path| Some(String::new());
        assert!(locate_cgroup_parent("cpu", Some(delegated), &mounts, &own, &none).is_err());
        assert!(
            locate_cgroup_parent("cpu", Some(Path::new("/tmp/x")), &mounts, &own, &all).is_err()
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
    }

    #[test]
    fn reverting_an_empty_guard_twice_is_harmless() {
        let mut guard = FaultGuard::new("process-kill");
        assert!(guard.revert().is_ok());
        assert!(guard.revert().is_ok());
        assert!(guard.is_reverted());
    }
}
