//! Service graphs shaped like the ones production clusters run: a gateway fanning out to
//! domain services, many services over a few shared datastores and queues, a mesh where
//! nearly everything calls one platform service (authorisation, tokens, configuration), deep
//! call chains of up to six levels, and diamonds where front ends share their back ends.
//! Cron jobs and consoles with no recorded dependencies sit beside them.

use super::dice::Dice;
use crate::generator::Shape;

/// What a service is, which decides its keys, its deploy rate and its alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// The edge: an API gateway or ingress controller.
    Edge,
    /// A backend-for-frontend or public API.
    Bff,
    /// A domain service (orders, cart, catalog).
    Domain,
    /// A core service many domains call (payments, inventory, identity).
    Core,
    /// Called by nearly every service, like a sidecar would be: authorisation, tokens.
    Platform,
    /// A database.
    Store,
    /// A cache.
    Cache,
    /// A broker.
    Queue,
    /// A cron job or console: no recorded dependencies, nothing depends on it.
    Standalone,
}

impl Class {
    /// Its depth in a request's path (edges at 0, data at 4).
    pub fn tier(self) -> u8 {
        match self {
            Self::Edge => 0,
            Self::Bff => 1,
            Self::Domain | Self::Standalone => 2,
            Self::Core | Self::Platform => 3,
            Self::Store | Self::Cache | Self::Queue => 4,
        }
    }

    /// Whether it runs application code (has an image built by its team, flags, clients).
    pub fn is_app(self) -> bool {
        !matches!(self, Self::Store | Self::Cache | Self::Queue)
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Edge => &[
                "edge-gateway",
                "api-gateway",
                "graphql-gateway",
                "public-ingress",
            ],
            Self::Bff => &[
                "web-bff",
                "mobile-bff",
                "partner-api",
                "storefront",
                "backoffice-api",
            ],
            Self::Domain => &[
                "checkout",
                "cart",
                "orders",
                "catalog",
                "search",
                "accounts",
                "pricing",
                "promotions",
                "reviews",
                "shipping",
                "returns",
                "loyalty",
                "subscriptions",
                "wishlist",
            ],
            Self::Core => &[
                "payments",
                "inventory",
                "fraud-scoring",
                "tax-engine",
                "ledger",
                "identity",
                "notifier",
                "recommender",
                "geo-lookup",
                "fx-rates",
                "billing",
                "media-resizer",
            ],
            Self::Platform => &["authz", "token-service", "config-server", "rate-limiter"],
            Self::Store => &[
                "orders-pg",
                "accounts-pg",
                "ledger-pg",
                "catalog-mongo",
                "search-es",
            ],
            Self::Cache => &["session-redis", "cache-redis", "cart-redis"],
            Self::Queue => &["events-kafka", "jobs-rabbitmq", "outbox-nats"],
            Self::Standalone => &[
                "report-cron",
                "nightly-etl",
                "admin-console",
                "status-page",
                "invoice-batch",
            ],
        }
    }
}

/// What a service runs, which decides the keys its deployments change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Spring Boot on the JVM.
    Jvm,
    /// Go.
    Go,
    /// Node.js.
    Node,
    /// Python (gunicorn, celery).
    Python,
    /// Envoy as an API gateway.
    Envoy,
    /// ingress-nginx.
    Nginx,
    /// PostgreSQL (a Bitnami-style chart).
    Postgres,
    /// MongoDB.
    Mongo,
    /// Elasticsearch.
    Elastic,
    /// Redis.
    Redis,
    /// Kafka.
    Kafka,
    /// RabbitMQ.
    Rabbit,
    /// NATS JetStream.
    Nats,
}

/// One service.
#[derive(Debug, Clone)]
pub struct Svc {
    /// Its name without the world's suffix (`checkout`): what env vars and URLs call it.
    pub base: &'static str,
    /// Its class.
    pub class: Class,
    /// Its runtime.
    pub runtime: Runtime,
}

/// The graph's overall layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A gateway over a handful of services, each with its own back ends.
    GatewayFanOut,
    /// Many services over a few shared datastores and a broker.
    SharedBackbone,
    /// Layers of services, nearly all also calling one platform service.
    Mesh,
    /// A call chain of three to six levels with leaves on the side.
    DeepChain,
    /// Front ends sharing domain services that share a core.
    Diamonds,
}

impl Layout {
    /// The closest of the shared [`Shape`] labels.
    pub fn shape(self) -> Shape {
        match self {
            Self::GatewayFanOut => Shape::FanOut,
            Self::SharedBackbone => Shape::FanIn,
            Self::Mesh => Shape::Layered,
            Self::DeepChain => Shape::Chain,
            Self::Diamonds => Shape::Diamond,
        }
    }
}

/// Services and who calls whom.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The layout it was built as.
    pub layout: Layout,
    /// The services.
    pub svcs: Vec<Svc>,
    /// `deps[i]`: what `svcs[i]` depends on.
    pub deps: Vec<Vec<usize>>,
}

struct Net<'a> {
    dice: &'a mut Dice,
    svcs: Vec<Svc>,
    deps: Vec<Vec<usize>>,
}

impl Net<'_> {
    /// Adds a service of `class`, or of a kindred class when every name of `class` is taken
    /// (a fourth cache becomes a database).
    fn add(&mut self, class: Class) -> usize {
        let kin: &[Class] = match class {
            Class::Store | Class::Cache | Class::Queue => {
                &[Class::Store, Class::Cache, Class::Queue, Class::Domain]
            }
            Class::Edge | Class::Bff => &[Class::Bff, Class::Domain],
            _ => &[Class::Core, Class::Domain],
        };
        let (class, free) = std::iter::once(class)
            .chain(kin.iter().copied())
            .map(|c| {
                let free: Vec<&'static str> = c
                    .names()
                    .iter()
                    .copied()
                    .filter(|n| self.svcs.iter().all(|s| s.base != *n))
                    .collect();
                (c, free)
            })
            .find(|(_, free)| !free.is_empty())
            // Every list ends with `Domain`, whose 14 names outnumber a world's 12 services.
            .unwrap_or((Class::Domain, Vec::new()));
        let base = self.dice.pick(&free);
        let runtime = runtime_of(self.dice, class, base);
        self.svcs.push(Svc {
            base,
            class,
            runtime,
        });
        self.deps.push(Vec::new());
        self.svcs.len() - 1
    }

    fn dep(&mut self, from: usize, to: usize) {
        if from != to && !self.deps[from].contains(&to) {
            self.deps[from].push(to);
        }
    }

    fn len(&self) -> usize {
        self.svcs.len()
    }
}

fn runtime_of(dice: &mut Dice, class: Class, base: &str) -> Runtime {
    match class {
        Class::Edge => {
            if dice.chance(0.55) {
                Runtime::Envoy
            } else {
                Runtime::Nginx
            }
        }
        Class::Bff => dice.weighted(&[
            (Runtime::Node, 0.55),
            (Runtime::Go, 0.3),
            (Runtime::Jvm, 0.15),
        ]),
        Class::Domain | Class::Core => dice.weighted(&[
            (Runtime::Jvm, 0.45),
            (Runtime::Go, 0.3),
            (Runtime::Python, 0.15),
            (Runtime::Node, 0.1),
        ]),
        Class::Platform => dice.weighted(&[(Runtime::Go, 0.6), (Runtime::Jvm, 0.4)]),
        Class::Standalone => dice.weighted(&[
            (Runtime::Python, 0.5),
            (Runtime::Jvm, 0.25),
            (Runtime::Node, 0.25),
        ]),
        Class::Store => {
            if base.ends_with("-mongo") {
                Runtime::Mongo
            } else if base.ends_with("-es") {
                Runtime::Elastic
            } else {
                Runtime::Postgres
            }
        }
        Class::Cache => Runtime::Redis,
        Class::Queue => {
            if base.ends_with("-kafka") {
                Runtime::Kafka
            } else if base.ends_with("-rabbitmq") {
                Runtime::Rabbit
            } else {
                Runtime::Nats
            }
        }
    }
}

fn data_class(dice: &mut Dice) -> Class {
    dice.weighted(&[
        (Class::Store, 0.55),
        (Class::Cache, 0.25),
        (Class::Queue, 0.2),
    ])
}

/// Builds a graph of `layout` with at most 12 services; `deep` asks for a longest path of at
/// least four levels where the layout allows it.
pub fn build(dice: &mut Dice, layout: Layout, deep: bool) -> Topology {
    let mut net = Net {
        dice,
        svcs: Vec::new(),
        deps: Vec::new(),
    };
    match layout {
        Layout::GatewayFanOut => gateway_fan_out(&mut net, deep),
        Layout::SharedBackbone => shared_backbone(&mut net),
        Layout::Mesh => mesh(&mut net),
        Layout::DeepChain => deep_chain(&mut net, deep),
        Layout::Diamonds => diamonds(&mut net),
    }
    // Cron jobs and consoles nobody calls, and which record no dependency of their own.
    let loners = net.dice.weighted(&[(0usize, 0.55), (1, 0.35), (2, 0.1)]);
    for _ in 0..loners {
        if net.len() < 12 {
            net.add(Class::Standalone);
        }
    }
    Topology {
        layout,
        svcs: net.svcs,
        deps: net.deps,
    }
}

fn gateway_fan_out(net: &mut Net, deep: bool) {
    let edge = net.add(Class::Edge);
    let fronts: Vec<usize> = (0..net.dice.int(2, 5))
        .map(|_| {
            let class = if net.dice.chance(0.3) {
                Class::Bff
            } else {
                Class::Domain
            };
            net.add(class)
        })
        .collect();
    for &f in &fronts {
        net.dep(edge, f);
    }
    let backs = net
        .dice
        .int(if deep { 3 } else { 1 }, 5)
        .min(11 - net.len());
    let mut cores: Vec<usize> = Vec::new();
    for k in 0..backs {
        let class = if deep && k == 0 {
            Class::Core
        } else {
            net.dice.weighted(&[
                (Class::Core, 0.45),
                (Class::Store, 0.3),
                (Class::Cache, 0.15),
                (Class::Queue, 0.1),
            ])
        };
        let b = net.add(class);
        // Below a core service that is already there (a deeper path) or below a front one.
        let below_core = !cores.is_empty() && (net.dice.chance(0.45) || (deep && k == 1));
        let parent = if below_core {
            net.dice.pick(&cores)
        } else {
            net.dice.pick(&fronts)
        };
        net.dep(parent, b);
        if net.dice.chance(0.25) {
            let other = net.dice.pick(&fronts);
            net.dep(other, b);
        }
        if class == Class::Core {
            cores.push(b);
        }
    }
}

fn shared_backbone(net: &mut Net) {
    let shared_n = net.dice.int(1, 3);
    let mut classes = vec![Class::Store, Class::Queue, Class::Cache];
    net.dice.shuffle(&mut classes);
    let apps_n = net.dice.int(2, 8).min(11 - shared_n);
    let edge = (net.dice.chance(0.5) && apps_n + shared_n < 11).then(|| net.add(Class::Edge));
    let apps: Vec<usize> = (0..apps_n)
        .map(|_| {
            let class = net.dice.weighted(&[
                (Class::Domain, 0.55),
                (Class::Core, 0.3),
                (Class::Bff, 0.15),
            ]);
            net.add(class)
        })
        .collect();
    let shared: Vec<usize> = classes[..shared_n].iter().map(|c| net.add(*c)).collect();
    for (k, &a) in apps.iter().enumerate() {
        let mut any = false;
        for &s in &shared {
            if net.dice.chance(0.7) {
                net.dep(a, s);
                any = true;
            }
        }
        if !any {
            let s = net.dice.pick(&shared);
            net.dep(a, s);
        }
        // Apps call apps listed after them (keeps the graph acyclic).
        if k + 1 < apps.len() && net.dice.chance(0.3) {
            let callee = apps[net.dice.int(k + 1, apps.len() - 1)];
            net.dep(a, callee);
        }
    }
    if let Some(e) = edge {
        let n = net.dice.int(1, 3.min(apps.len()));
        for &a in &apps[..n] {
            net.dep(e, a);
        }
    }
}

fn mesh(net: &mut Net) {
    let edge = net.add(Class::Edge);
    let bffs: Vec<usize> = (0..net.dice.int(1, 2))
        .map(|_| net.add(Class::Bff))
        .collect();
    let domains: Vec<usize> = (0..net.dice.int(2, 3))
        .map(|_| net.add(Class::Domain))
        .collect();
    let cores: Vec<usize> = (0..net.dice.int(1, 2))
        .map(|_| net.add(Class::Core))
        .collect();
    let store = net.add(Class::Store);
    let platform = net.add(Class::Platform);
    let platform_cache = net.dice.chance(0.6).then(|| net.add(Class::Cache));
    for &b in &bffs {
        net.dep(edge, b);
    }
    for &d in &domains {
        let b = net.dice.pick(&bffs);
        net.dep(b, d);
        if net.dice.chance(0.35) {
            let other = net.dice.pick(&bffs);
            net.dep(other, d);
        }
        if net.dice.chance(0.6) {
            let c = net.dice.pick(&cores);
            net.dep(d, c);
        }
        if net.dice.chance(0.4) {
            net.dep(d, store);
        }
    }
    for &c in &cores {
        if net.deps.iter().all(|deps| !deps.contains(&c)) {
            let d = net.dice.pick(&domains);
            net.dep(d, c);
        }
        if net.dice.chance(0.7) {
            net.dep(c, store);
        }
    }
    if net.deps.iter().all(|deps| !deps.contains(&store)) {
        let c = net.dice.pick(&cores);
        net.dep(c, store);
    }
    // The platform service every request passes, like a sidecar's control plane would be.
    if net.dice.chance(0.9) {
        net.dep(edge, platform);
    }
    for s in bffs.iter().chain(&domains).chain(&cores) {
        if net.dice.chance(0.75) {
            net.dep(*s, platform);
        }
    }
    if net.deps.iter().all(|deps| !deps.contains(&platform)) {
        net.dep(edge, platform);
    }
    if let Some(cache) = platform_cache {
        net.dep(platform, cache);
    }
}

fn deep_chain(net: &mut Net, deep: bool) {
    let levels = if deep {
        net.dice.int(4, 6)
    } else {
        net.dice
            .weighted(&[(3usize, 0.25), (4, 0.3), (5, 0.3), (6, 0.15)])
    };
    let classes: &[Class] = match levels {
        3 => &[Class::Edge, Class::Domain, Class::Store],
        4 => &[Class::Edge, Class::Bff, Class::Domain, Class::Store],
        5 => &[
            Class::Edge,
            Class::Bff,
            Class::Domain,
            Class::Core,
            Class::Store,
        ],
        _ => &[
            Class::Edge,
            Class::Bff,
            Class::Domain,
            Class::Core,
            Class::Core,
            Class::Store,
        ],
    };
    let chain: Vec<usize> = classes.iter().map(|c| net.add(*c)).collect();
    for w in chain.windows(2) {
        net.dep(w[0], w[1]);
    }
    // A front end calling a core service directly, past the domain layer.
    if !deep && levels >= 4 && net.dice.chance(0.15) {
        let i = net.dice.int(0, levels - 3);
        net.dep(chain[i], chain[i + 2]);
    }
    let leaves = net.dice.int(0, 4).min(10 - net.len());
    for _ in 0..leaves {
        let class = net.dice.weighted(&[
            (Class::Core, 0.35),
            (Class::Cache, 0.3),
            (Class::Queue, 0.15),
            (Class::Store, 0.2),
        ]);
        let leaf = net.add(class);
        let at = chain[net.dice.int(0, levels - 2)];
        net.dep(at, leaf);
    }
}

fn diamonds(net: &mut Net) {
    let edge = net.dice.chance(0.6).then(|| net.add(Class::Edge));
    let tops: Vec<usize> = (0..net.dice.int(2, 3))
        .map(|_| net.add(Class::Bff))
        .collect();
    let mids: Vec<usize> = (0..net.dice.int(1, 3))
        .map(|_| net.add(Class::Domain))
        .collect();
    let cores: Vec<usize> = (0..net.dice.int(1, 2))
        .map(|_| net.add(Class::Core))
        .collect();
    let stores: Vec<usize> = (0..net.dice.int(1, 2))
        .map(|_| {
            let class = data_class(net.dice);
            net.add(class)
        })
        .collect();
    if let Some(e) = edge {
        for &t in &tops {
            net.dep(e, t);
        }
    }
    for &t in &tops {
        let mut any = false;
        for &m in &mids {
            if mids.len() <= 2 || net.dice.chance(0.7) {
                net.dep(t, m);
                any = true;
            }
        }
        if !any {
            let m = net.dice.pick(&mids);
            net.dep(t, m);
        }
    }
    for &m in &mids {
        net.dep(m, cores[0]);
        for &c in &cores[1..] {
            if net.dice.chance(0.8) {
                net.dep(m, c);
            }
        }
    }
    for &c in &cores {
        net.dep(c, stores[0]);
        for &s in &stores[1..] {
            if net.dice.chance(0.5) {
                net.dep(c, s);
            }
        }
    }
}
