//! The local fault driver against the real host: network namespaces joined by a veth pair, `tc`,
//! cgroups and signals. Needs root and iproute2; a missing capability fails the test rather
//! than skipping it.
//!
//! Traffic is generated inside the namespaces by this test binary itself, re-executed with
//! `ip netns exec` (see [`netns_helper`]), so no `nc`, `ping` or Python is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_chaos::local::{
    ByteSize, CgroupVersion, CpuHog, Error, FaultGuard, LocalFault, MemoryHog, NetworkLatency,
    NetworkPartition, ProcessKill, ProcessTarget, RouteKind, Signal,
};
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "DEPLOYGRAPH_CHAOS_LOCAL_TEST_HELPER";
const ADDR_A: &str = "10.77.0.1";
const ADDR_B: &str = "10.77.0.2";
const DEVICE: &str = "veth0";

/// Not a test of its own: the entry point of this binary when a test re-executes it inside a
/// network namespace with `DEPLOYGRAPH_CHAOS_LOCAL_TEST_HELPER` set. Without it, does nothing.
///
/// - `listen`: accepts TCP connections on a free port, printing `LISTENING <port>` first.
/// - `connect <addr:port> <timeout ms>`: prints `CONNECTED <µs>` or `FAILED <error>`.
#[test]
fn netns_helper() {
    let Ok(command) = std::env::var(HELPER_ENV) else {
        return;
    };
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["listen"] => {
            let listener = TcpListener::bind("0.0.0.0:0").unwrap();
            println!("LISTENING {}", listener.local_addr().unwrap().port());
            for stream in listener.incoming() {
                drop(stream);
            }
        }
        ["connect", addr, timeout_ms] => {
            let addr: SocketAddr = addr.parse().unwrap();
            let timeout = Duration::from_millis(timeout_ms.parse().unwrap());
            let start = Instant::now();
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => println!("CONNECTED {}", start.elapsed().as_micros()),
                Err(e) => println!("FAILED {e}"),
            }
        }
        _ => panic!("unknown helper command `{command}`"),
    }
}

fn helper(netns: &str, command: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns])
        .arg(exe)
        .args([
            "--exact",
            "netns_helper",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(HELPER_ENV, command)
        .stdin(Stdio::null());
    c
}

/// Runs a command that must succeed; returns its stdout.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this run or a parallel one) uses.
fn unique(tag: &str) -> String {
    format!(
        "dgchaos-{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Two network namespaces, `a` (10.77.0.1) and `b` (10.77.0.2), joined by a veth pair named
/// `veth0` on both sides. Dropping it stops the listener and deletes both namespaces (which
/// deletes the veth pair), also when the test panics.
struct TestNet {
    a: String,
    b: String,
    listener: Option<Child>,
    port: u16,
}

impl TestNet {
    fn new(tag: &str) -> Self {
        let base = unique(tag);
        let net = Self {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            listener: None,
            port: 0,
        };
        sh(&["ip", "netns", "add", &net.a]);
        sh(&["ip", "netns", "add", &net.b]);
        sh(&[
            "ip", "-n", &net.a, "link", "add", DEVICE, "type", "veth", "peer", "name", DEVICE,
            "netns", &net.b,
        ]);
        for (ns, addr) in [(&net.a, ADDR_A), (&net.b, ADDR_B)] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                DEVICE,
            ]);
            sh(&["ip", "-n", ns, "link", "set", DEVICE, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Starts the TCP listener in `b`.
    fn listen(mut self) -> Self {
        let mut child = helper(&self.b, "listen")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.listener = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        self.port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the listener in netns b did not start");
        self
    }

    /// A TCP connect from `a` to the listener in `b`: how long it took, or why it failed.
    fn connect_from_a(&self, timeout: Duration) -> Result<Duration, String> {
        let out = helper(
            &self.a,
            &format!("connect {ADDR_B}:{} {}", self.port, timeout.as_millis()),
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            if let Some(micros) = line.strip_prefix("CONNECTED ") {
                return Ok(Duration::from_micros(micros.trim().parse().unwrap()));
            }
            if let Some(error) = line.strip_prefix("FAILED ") {
                return Err(error.to_owned());
            }
        }
        panic!(
            "the connect helper in netns a said nothing useful: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn routes(&self, ns: &str) -> String {
        sh(&["ip", "-n", ns, "route", "show"])
    }

    fn root_qdisc(&self) -> String {
        sh(&["tc", "-n", &self.a, "qdisc", "show", "dev", DEVICE, "root"])
    }

    fn partition(&self) -> LocalFault {
        LocalFault::NetworkPartition(NetworkPartition {
            netns: Some(self.a.clone()),
            destinations: Vec::new(),
            peer_netns: Some(self.b.clone()),
            symmetric: false,
            route: RouteKind::Prohibit,
        })
    }

    fn latency(&self, delay: Duration, loss_percent: f64) -> LocalFault {
        LocalFault::NetworkLatency(NetworkLatency {
            netns: Some(self.a.clone()),
            device: DEVICE.to_owned(),
            delay,
            jitter: Duration::ZERO,
            loss_percent,
        })
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = listener.kill();
            let _ = listener.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn assert_connects(net: &TestNet) -> Duration {
    net.connect_from_a(CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("a cannot reach b's listener: {e}"))
}

// ------------------------------------------------------------------------------------------------
// network-partition
// ------------------------------------------------------------------------------------------------

#[test]
fn a_partition_refuses_connections_until_it_is_reverted() {
    let net = TestNet::new("part").listen();
    assert_connects(&net);

    let mut guard = net.partition().inject().unwrap();
    assert!(
        net.routes(&net.a).contains(&format!("prohibit {ADDR_B}")),
        "{}",
        net.routes(&net.a)
    );
    let refused = net.connect_from_a(CONNECT_TIMEOUT);
    assert!(
        refused.is_err(),
        "connected through the partition: {refused:?}"
    );

    guard.revert().unwrap();
    assert!(guard.is_reverted());
    assert!(!net.routes(&net.a).contains("prohibit"));
    assert_connects(&net);
    guard.revert().expect("reverting twice is harmless");
}

#[test]
fn a_symmetric_partition_refuses_both_directions_and_drop_reverts_it() {
    let net = TestNet::new("sym");
    let fault = LocalFault::NetworkPartition(NetworkPartition {
        symmetric: true,
        route: RouteKind::Unreachable,
        ..match net.partition() {
            LocalFault::NetworkPartition(p) => p,
            _ => unreachable!(),
        }
    });
    {
        let guard = fault.inject().unwrap();
        assert!(
            net.routes(&net.a)
                .contains(&format!("unreachable {ADDR_B}"))
        );
        assert!(
            net.routes(&net.b)
                .contains(&format!("unreachable {ADDR_A}"))
        );
        assert!(guard.description().contains(&net.b), "{guard:?}");
    }
    assert!(!net.routes(&net.a).contains("unreachable"));
    assert!(!net.routes(&net.b).contains("unreachable"));
}

#[test]
fn a_partition_that_fails_halfway_is_rolled_back() {
    let net = TestNet::new("half");
    // Someone else's route to the second destination: adding ours fails ("File exists").
    sh(&[
        "ip",
        "-n",
        &net.a,
        "route",
        "add",
        "prohibit",
        "10.77.0.9/32",
    ]);
    let fault = LocalFault::NetworkPartition(NetworkPartition {
        netns: Some(net.a.clone()),
        destinations: vec!["10.77.0.2".parse().unwrap(), "10.77.0.9".parse().unwrap()],
        peer_netns: None,
        symmetric: false,
        route: RouteKind::Prohibit,
    });
    let err = fault.inject().unwrap_err();
    assert!(matches!(err, Error::Command { .. }), "{err:?}");
    let routes = net.routes(&net.a);
    assert!(
        !routes.contains("prohibit 10.77.0.2 "),
        "not rolled back: {routes}"
    );
    assert!(
        routes.contains("prohibit 10.77.0.9"),
        "someone else's route removed: {routes}"
    );
}

#[test]
fn a_guard_dropped_while_panicking_reverts_the_partition() {
    let net = TestNet::new("panic").listen();
    let fault = net.partition();
    let a = net.a.clone();
    let panicked = std::thread::spawn(move || {
        let _guard = fault.inject().unwrap();
        assert!(sh(&["ip", "-n", &a, "route", "show"]).contains("prohibit"));
        panic!("the chaos run blew up with the fault injected");
    })
    .join();
    assert!(panicked.is_err());
    assert!(
        !net.routes(&net.a).contains("prohibit"),
        "{}",
        net.routes(&net.a)
    );
    assert_connects(&net);
}

#[test]
fn a_partition_of_a_missing_namespace_names_the_field() {
    let net = TestNet::new("nsmissing");
    let missing = unique("missing");
    for (netns, peer, field) in [
        (missing.clone(), net.b.clone(), "netns"),
        (net.a.clone(), missing.clone(), "peer_netns"),
    ] {
        let fault = LocalFault::NetworkPartition(NetworkPartition {
            netns: Some(netns),
            destinations: Vec::new(),
            peer_netns: Some(peer),
            symmetric: false,
            route: RouteKind::Prohibit,
        });
        match fault.inject() {
            Err(Error::Invalid { field: f, reason }) => {
                assert_eq!(f, field);
                assert!(reason.contains(&missing), "{reason}");
            }
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// network-latency / packet-loss
// ------------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs a kernel with the netem qdisc (CONFIG_NET_SCH_NETEM); the CI host has none - run with --ignored where it exists"]
fn latency_delays_connections_until_it_is_reverted() {
    let net = TestNet::new("lat").listen();
    let before = assert_connects(&net);
    assert!(
        before < Duration::from_millis(100),
        "{before:?} without the fault"
    );

    let mut guard = net
        .latency(Duration::from_millis(200), 0.0)
        .inject()
        .unwrap();
    assert!(net.root_qdisc().contains("netem"), "{}", net.root_qdisc());
    let during = assert_connects(&net);
    assert!(
        during >= Duration::from_millis(195),
        "{during:?} with 200ms of netem delay"
    );

    guard.revert().unwrap();
    assert!(!net.root_qdisc().contains("netem"), "{}", net.root_qdisc());
    let after = assert_connects(&net);
    assert!(
        after < Duration::from_millis(100),
        "{after:?} after the revert"
    );
}

#[test]
#[ignore = "needs a kernel with the netem qdisc (CONFIG_NET_SCH_NETEM); the CI host has none - run with --ignored where it exists"]
fn full_packet_loss_times_connections_out_until_it_is_reverted() {
    let net = TestNet::new("loss").listen();
    assert_connects(&net);
    let guard = net.latency(Duration::ZERO, 100.0).inject().unwrap();
    let lost = net.connect_from_a(Duration::from_millis(1_000));
    assert!(lost.is_err(), "connected through 100% loss: {lost:?}");
    drop(guard);
    assert_connects(&net);
}

#[test]
fn latency_refuses_to_replace_a_configured_root_qdisc() {
    let net = TestNet::new("qdisc");
    sh(&[
        "tc", "-n", &net.a, "qdisc", "add", "dev", DEVICE, "root", "handle", "1:", "htb",
    ]);
    match net.latency(Duration::from_millis(50), 0.0).inject() {
        Err(Error::QdiscInUse { kind, handle, .. }) => {
            assert_eq!((kind.as_str(), handle.as_str()), ("htb", "1:"));
        }
        other => panic!("expected QdiscInUse, got {other:?}"),
    }
    assert!(net.root_qdisc().contains("htb 1:"), "{}", net.root_qdisc());
}

#[test]
fn latency_on_a_missing_device_or_namespace_names_the_field() {
    let net = TestNet::new("nodev");
    let fault = LocalFault::NetworkLatency(NetworkLatency {
        device: "nope0".to_owned(),
        ..match net.latency(Duration::from_millis(50), 0.0) {
            LocalFault::NetworkLatency(l) => l,
            _ => unreachable!(),
        }
    });
    match fault.inject() {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(field, "device");
            assert!(reason.contains("nope0"), "{reason}");
        }
        other => panic!("expected an invalid device, got {other:?}"),
    }
    let fault = LocalFault::NetworkLatency(NetworkLatency {
        netns: Some(unique("missing")),
        ..match net.latency(Duration::from_millis(50), 0.0) {
            LocalFault::NetworkLatency(l) => l,
            _ => unreachable!(),
        }
    });
    match fault.inject() {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "netns"),
        other => panic!("expected an invalid netns, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// cpu-hog / memory-hog
// ------------------------------------------------------------------------------------------------

fn alive(pid: u32) -> bool {
    // A zombie has exited; the guard reaps its workers, so they should not even be that.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !matches!(
            s.rsplit(')').next().and_then(|r| r.trim().chars().next()),
            Some('Z' | 'X')
        )
    })
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit(')').next().unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_memory_hog_holds_its_size_in_its_cgroup_until_it_is_reverted() {
    const SIZE: u64 = 128 << 20;
    let fault = LocalFault::MemoryHog(MemoryHog {
        size: ByteSize(SIZE),
        limit: None,
        cgroup_parent: None,
    });
    let mut guard = fault.inject().unwrap();
    let cgroup = guard.cgroup().expect("a memory hog has a cgroup").clone();
    eprintln!(
        "memory hog in {} ({})",
        cgroup.path().display(),
        cgroup.version()
    );
    let current = cgroup.memory_current().unwrap();
    assert!(
        current >= SIZE,
        "{current} bytes charged, expected at least {SIZE}"
    );
    let limit_file = match cgroup.version() {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let limit: u64 = std::fs::read_to_string(cgroup.path().join(limit_file))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(limit > SIZE, "limit {limit}");
    let pids = guard.pids().to_vec();
    assert_eq!(cgroup.procs().unwrap(), pids);
    assert!(pids.iter().all(|p| alive(*p)));

    guard.revert().unwrap();
    assert!(
        !cgroup.path().exists(),
        "{} left behind",
        cgroup.path().display()
    );
    assert!(pids.iter().all(|p| !alive(*p)), "workers {pids:?} survived");
    guard.revert().expect("reverting twice is harmless");
}

#[test]
fn a_cpu_hog_burns_cpu_in_its_cgroup_until_it_is_reverted() {
    let fault = LocalFault::CpuHog(CpuHog {
        workers: 2,
        cpus: Some(0.5),
        cgroup_parent: None,
    });
    let mut guard = fault.inject().unwrap();
    let cgroup = guard.cgroup().expect("a cpu hog has a cgroup").clone();
    eprintln!(
        "cpu hog in {} ({})",
        cgroup.path().display(),
        cgroup.version()
    );
    let pids = guard.pids().to_vec();
    assert_eq!(pids.len(), 2);
    let mut procs = cgroup.procs().unwrap();
    procs.sort_unstable();
    let mut expected = pids.clone();
    expected.sort_unstable();
    assert_eq!(procs, expected);
    let quota = match cgroup.version() {
        CgroupVersion::V1 => {
            std::fs::read_to_string(cgroup.path().join("cpu.cfs_quota_us")).unwrap()
        }
        CgroupVersion::V2 => std::fs::read_to_string(cgroup.path().join("cpu.max")).unwrap(),
    };
    assert!(quota.trim().starts_with("50000"), "quota {quota}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|p| cpu_ticks(*p) > 0) {
        assert!(Instant::now() < deadline, "the workers are not burning CPU");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pids.iter().all(|p| alive(*p)));

    guard.revert().unwrap();
    assert!(pids.iter().all(|p| !alive(*p)), "workers {pids:?} survived");
    assert!(
        !cgroup.path().exists(),
        "{} left behind",
        cgroup.path().display()
    );
}

#[test]
fn a_cpu_hog_dropped_while_panicking_stops_its_workers() {
    let (tx, rx) = mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let guard: FaultGuard = LocalFault::CpuHog(CpuHog {
            workers: 1,
            cpus: Some(0.1),
            cgroup_parent: None,
        })
        .inject()
        .unwrap();
        tx.send((
            guard.pids().to_vec(),
            guard.cgroup().unwrap().path().to_owned(),
        ))
        .unwrap();
        panic!("the chaos run blew up with the hog running");
    })
    .join();
    assert!(panicked.is_err());
    let (pids, cgroup) = rx.recv().unwrap();
    assert!(pids.iter().all(|p| !alive(*p)), "workers {pids:?} survived");
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
}

// ------------------------------------------------------------------------------------------------
// process-kill
// ------------------------------------------------------------------------------------------------

fn kill(target: ProcessTarget, signal: Signal) -> LocalFault {
    LocalFault::ProcessKill(ProcessKill {
        target,
        signal,
        timeout: Duration::from_secs(5),
    })
}

/// A `sleep 600` that dies with the test if the fault misses it.
struct Sleeper(Child);

impl Sleeper {
    fn spawn(program: &Path) -> Self {
        // A program just copied may still be open for writing in a child another test thread
        // forked meanwhile (it inherited the descriptor until its own exec): ETXTBSY, for as
        // long as that takes.
        let mut tries = 0;
        loop {
            match Command::new(program).arg("600").spawn() {
                Ok(child) => return Self(child),
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{}: {e}", program.display()),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The signal it died of (the fault already made sure it is gone).
    fn killed_by(&mut self) -> Option<i32> {
        self.0
            .try_wait()
            .unwrap()
            .expect("the process is still running")
            .signal()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn process_kill_by_pid_leaves_no_process() {
    let mut sleeper = Sleeper::spawn(Path::new("sleep"));
    let guard = kill(ProcessTarget::Pid(sleeper.pid()), Signal::Kill)
        .inject()
        .unwrap();
    assert_eq!(guard.pids(), [sleeper.pid()]);
    assert!(guard.is_reverted(), "a kill has nothing to revert");
    assert_eq!(sleeper.killed_by(), Some(9));
}

#[test]
fn process_kill_by_pid_file_sends_the_signal_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = Sleeper::spawn(Path::new("sleep"));
    let pid_file = dir.path().join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", sleeper.pid())).unwrap();
    let _guard = kill(ProcessTarget::PidFile(pid_file), Signal::Term)
        .inject()
        .unwrap();
    assert_eq!(sleeper.killed_by(), Some(15));
}

#[test]
fn process_kill_by_name_kills_every_process_of_that_name() {
    // A copy of sleep under a name nothing else on the host has.
    let dir = tempfile::tempdir().unwrap();
    let name = format!("dgck{}", std::process::id());
    let program = dir.path().join(&name);
    std::fs::copy(sh(&["sh", "-c", "command -v sleep"]).trim(), &program).unwrap();
    let mut sleepers = [Sleeper::spawn(&program), Sleeper::spawn(&program)];
    // Until it has exec'd, a child still carries the parent's name.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleepers.iter().all(|s| {
        std::fs::read_to_string(format!("/proc/{}/comm", s.pid())).is_ok_and(|c| c.trim() == name)
    }) {
        assert!(
            Instant::now() < deadline,
            "the sleepers never got their name"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let guard = kill(ProcessTarget::Name(name), Signal::Kill)
        .inject()
        .unwrap();
    let mut expected: Vec<u32> = sleepers.iter().map(Sleeper::pid).collect();
    expected.sort_unstable();
    assert_eq!(guard.pids(), expected);
    for sleeper in &mut sleepers {
        assert_eq!(sleeper.killed_by(), Some(9));
    }
}

#[test]
fn process_kill_of_a_missing_process_names_the_field() {
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    match kill(ProcessTarget::Pid(pid), Signal::Kill).inject() {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "target.pid"),
        other => panic!("expected an invalid target.pid, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    match kill(
        ProcessTarget::PidFile(dir.path().join("absent.pid")),
        Signal::Kill,
    )
    .inject()
    {
        Err(Error::ReadField { field, .. }) => assert_eq!(field, "target.pid_file"),
        other => panic!("expected an unreadable target.pid_file, got {other:?}"),
    }
    match kill(
        ProcessTarget::Name(format!("dgnone{}", std::process::id())),
        Signal::Kill,
    )
    .inject()
    {
        Err(Error::NoProcess { .. }) => {}
        other => panic!("expected no process, got {other:?}"),
    }
}
