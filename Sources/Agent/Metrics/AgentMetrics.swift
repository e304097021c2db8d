import CoreMetrics
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Prometheus
import Proxy

/// The agent's Prometheus series (the README's "Metrics" lists them), made once at
/// start when `DECKHAND_METRICS_ADDR` is set. Without it there is no `AgentMetrics`
/// and no metrics backend at all: the request path pays one nil check.
///
/// The connection layer records here; the cluster prober and the upstream pools (in
/// `Proxy`, which knows no Prometheus) record through swift-metrics, whose backend
/// `bootstrap` points at the same registry. Gauges of state the agent already keeps
/// (memory, idle upstreams, members) are read when scraped, not kept up to date.
final class AgentMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let requests: NIOLockedValueBox<[Int: Prometheus.Counter]>
    private let latency: [DurationHistogram]
    /// By family, for the aggregated ones only.
    private let partialAnswers: [Prometheus.Counter?]
    let bytesReceived: Prometheus.Counter
    let bytesSent: Prometheus.Counter
    let openConnections: Prometheus.Gauge
    let refusedSignatures: Prometheus.Counter
    private let streams: [Prometheus.Gauge]
    private let streamsStarted: [Prometheus.Counter]
    private let uploads: [Bool: Prometheus.Counter]
    private let uploadBytes: Prometheus.Counter
    private let residentMemory: Prometheus.Gauge
    private let virtualMemory: Prometheus.Gauge
    private let idleUpstreams: Prometheus.Gauge
    private let members: Prometheus.Gauge
    private let engine: UpstreamPool
    private let cluster: ClusterMembership?

    /// What a `101` turned the connection into.
    enum StreamKind: Int, CaseIterable {
        case hijack, console
        var label: String { self == .hijack ? "hijack" : "console" }
    }

    /// Request latencies: sub-millisecond agent answers up to slow aggregated lists.
    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    init(engine: UpstreamPool, cluster: ClusterMembership?, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "deckhand", metricName: metric, unitName: unit, helpText: help)
        }
        self.registry = registry
        self.engine = engine
        self.cluster = cluster
        requests = NIOLockedValueBox([:])
        latency = RouteFamily.allCases.map { family in
            registry.makeDurationHistogram(
                descriptor: name("request_duration", "seconds", "Time from a request's head to its answer's head, by route family"),
                labels: [("family", family.label)], buckets: Self.latencyBuckets)
        }
        partialAnswers = RouteFamily.allCases.map { family in
            guard family.isAggregated else { return nil }
            return registry.makeCounter(
                descriptor: name("aggregation_partial_answers", "total", "Merged cluster answers that name unreachable nodes"),
                labels: [("family", family.label)])
        }
        bytesReceived = registry.makeCounter(descriptor: name("received", "bytes_total", "Bytes read from client connections (on the wire, TLS included)"), labels: [])
        bytesSent = registry.makeCounter(descriptor: name("sent", "bytes_total", "Bytes written to client connections (on the wire, TLS included)"), labels: [])
        openConnections = registry.makeGauge(descriptor: name("open_connections", "", "Client connections open now"), labels: [])
        refusedSignatures = registry.makeCounter(descriptor: name("refused_signatures", "total", "Requests refused for a missing or invalid Portainer signature"), labels: [])
        streams = StreamKind.allCases.map { kind in
            registry.makeGauge(descriptor: name("upgraded_streams", "", "Hijacked engine streams and console websockets open now"), labels: [("kind", kind.label)])
        }
        streamsStarted = StreamKind.allCases.map { kind in
            registry.makeCounter(descriptor: name("upgraded_streams", "total", "Hijacked engine streams and console websockets started"), labels: [("kind", kind.label)])
        }
        uploads = [true: true, false: false].mapValues { stored in
            registry.makeCounter(descriptor: name("uploads", "total", "File uploads (POST /browse/put), stored or failed"), labels: [("result", stored ? "stored" : "failed")])
        }
        uploadBytes = registry.makeCounter(descriptor: name("upload", "bytes_total", "Request body bytes of stored uploads"), labels: [])
        residentMemory = registry.makeGauge(descriptor: name("process_resident_memory", "bytes", "Resident memory (/proc/self/statm)"), labels: [])
        virtualMemory = registry.makeGauge(descriptor: name("process_virtual_memory", "bytes", "Virtual memory size (/proc/self/statm)"), labels: [])
        idleUpstreams = registry.makeGauge(descriptor: name("engine_pool_idle_connections", "", "Idle keep-alive connections to the engine"), labels: [])
        members = registry.makeGauge(descriptor: name("cluster_members", "", "Cluster members answering probes, this node included"), labels: [])
    }

    /// Points swift-metrics at `registry`, once per process (the prober and the pools
    /// record through it). A second agent in the same process keeps the first backend.
    static func bootstrap(_ registry: PrometheusCollectorRegistry) {
        bootstrapped.withLockedValue { done in
            guard !done else { return }
            done = true
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = latencyBuckets
            MetricsSystem.bootstrap(factory)
        }
    }
    private static let bootstrapped = NIOLockedValueBox(false)

    // MARK: Recording

    /// One answered request: its head went out `nanoseconds` after the request's.
    ///
    /// A status HTTP does not define (a peer's answer may say any of 100 to 999) is
    /// counted as `other`, so no peer can make new series.
    func answered(_ family: RouteFamily, status code: Int, partial: @autoclosure () -> Bool, nanoseconds: Int64) {
        let known: Bool
        if case .custom = HTTPResponseStatus(statusCode: code) { known = false } else { known = (100...599).contains(code) }
        let key = family.rawValue << 10 | (known ? code & 0x3FF : 0)
        let counter = requests.withLockedValue { table in
            if let counter = table[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "deckhand", metricName: "requests", unitName: "total",
                    helpText: "Requests answered, by route family and status"),
                labels: [("family", family.label), ("status", known ? String(code) : "other")])
            table[key] = counter
            return counter
        }
        counter.increment()
        latency[family.rawValue].recordNanoseconds(nanoseconds)
        if let partialCounter = partialAnswers[family.rawValue], partial() {
            partialCounter.increment()
        }
    }

    /// A `101` made the connection a raw stream or a console until `closed` completes.
    func upgraded(_ kind: StreamKind, closed: EventLoopFuture<Void>) {
        let open = streams[kind.rawValue]
        streamsStarted[kind.rawValue].increment()
        open.increment()
        closed.whenComplete { _ in open.decrement() }
    }

    func upload(stored: Bool, bytes: Int) {
        uploads[stored]!.increment()
        if stored { uploadBytes.increment(by: Int64(bytes)) }
    }

    // MARK: Scraping

    /// The text exposition format, with the read-at-scrape gauges brought up to date.
    func exposition() -> [UInt8] {
        if let (virtual, resident) = Self.memory() {
            virtualMemory.set(Double(virtual))
            residentMemory.set(Double(resident))
        }
        idleUpstreams.set(Double(engine.idleCount))
        if let cluster { members.set(Double(cluster.members.count)) }
        return registry.emitToBuffer()
    }

    /// Virtual and resident sizes in bytes, from the first two numbers of `/proc/self/statm` (in pages).
    static func memory() -> (virtual: Int, resident: Int)? {
        let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 128)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = bytes[..<count].split(separator: UInt8(ascii: " ")).prefix(2).compactMap { Int(String(decoding: $0, as: UTF8.self)) }
        guard fields.count == 2 else { return nil }
        let page = sysconf(Int32(_SC_PAGESIZE))
        return (fields[0] * page, fields[1] * page)
    }
}
