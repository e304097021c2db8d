import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import Prometheus
import Proxy

/// What every connection shares: settings, the signature check, the engine pool
/// and the table of the agent's own routes.
struct AgentServices: Sendable {
    let configuration: AgentConfiguration
    let verifier: SignatureVerifier
    let authenticationFailures: AuthenticationFailureLog
    let engine: UpstreamPool
    let routes: RouteTable
    let logger: Logger
    /// Present when a cluster address is configured.
    let cluster: ClusterMembership?
    let aggregator: Aggregator?
    /// Present with `DECKHAND_METRICS_ADDR`; nil costs the request path nothing.
    var metrics: AgentMetrics? = nil
    /// The server's connection bound, told when a connection authenticates (nil for
    /// connections made outside the listener, as in tests).
    var connections: ConnectionLimit? = nil

    /// The cluster, when this node is an active Swarm member of one.
    var activeCluster: ClusterMembership? {
        guard let cluster, cluster.localNode?.isSwarmMember == true else { return nil }
        return cluster
    }
}

/// The HTTPS listener: TLS, the HTTP/1.1 codec and a `ConnectionHandler` per
/// connection, on one event loop per core.
package final class AgentServer: Sendable {
    let services: AgentServices
    private let sslContext: NIOSSLContext
    private let group: EventLoopGroup
    private let listener: Channel
    private let quiescing: ServerQuiescingHelper
    private let connections: ConnectionLimit
    private let trimming: RepeatedTask
    /// Present with `AGENT_SECRET_FILE`, with the task that watches the file.
    private let secretRotation: (rotation: SecretRotation, watch: RepeatedTask)?
    private let metricsEndpoint: MetricsEndpoint?

    /// The address actually bound, `[::]:9001` or `0.0.0.0:9001`, for the log.
    package var boundAddress: String {
        guard let address = listener.localAddress, let ip = address.ipAddress else { return "?" }
        return HostPort.join(ip, address.port ?? 0)
    }

    /// The port actually bound (useful when configured with port 0).
    package var port: Int { listener.localAddress?.port ?? 0 }
    /// The metrics listener's port, when there is one.
    package var metricsPort: Int? { metricsEndpoint?.port }

    private init(
        services: AgentServices, sslContext: NIOSSLContext, group: EventLoopGroup, listener: Channel,
        quiescing: ServerQuiescingHelper, connections: ConnectionLimit, trimming: RepeatedTask,
        secretRotation: (rotation: SecretRotation, watch: RepeatedTask)?, metricsEndpoint: MetricsEndpoint?
    ) {
        self.secretRotation = secretRotation
        self.metricsEndpoint = metricsEndpoint
        self.services = services
        self.sslContext = sslContext
        self.group = group
        self.listener = listener
        self.quiescing = quiescing
        self.connections = connections
        self.trimming = trimming
    }

    package static func start(
        configuration: AgentConfiguration,
        identity: TLSIdentity,
        logger: Logger,
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> AgentServer {
        fixMmapThreshold()
        // Before the pools and the prober exist: they record through swift-metrics.
        let registry = configuration.metricsAddress.map { _ in PrometheusCollectorRegistry() }
        if let registry { AgentMetrics.bootstrap(registry) }
        let engine = UpstreamPool(transport: try configuration.engineTransport())
        if let tls = configuration.engineTLS {
            // Certificates that cannot work stop start-up, named; an engine that is
            // not up yet does not (the socket's rule: 502 until it is).
            if let unreachable = try await EngineTLSCheck.run(engine: engine, tls: tls, on: group.next()) {
                logger.warning("the engine does not answer yet", metadata: ["engine": "\(engine.transport)", "error": "\(unreachable)"])
            }
        }
        var cluster: ClusterMembership?
        let verifier = SignatureVerifier(secrets: configuration.secrets)
        var clusterAddress = configuration.clusterAddress
        if clusterAddress == nil {
            clusterAddress = try await ServiceDiscovery.clusterAddress(from: engine, on: group.next()).get()
            if let clusterAddress {
                logger.info("cluster address derived from this container's service", metadata: ["address": "\(clusterAddress)"])
            }
        }
        if let address = clusterAddress {
            let settings = ClusterMembership.Settings(
                address: address, defaultPort: configuration.port == 0 ? 9001 : configuration.port,
                probeInterval: .fromSeconds(configuration.probeInterval),
                memberTimeout: .fromSeconds(configuration.memberTimeout),
                nodeName: configuration.nodeName, secrets: configuration.secrets)
            // A fan-out asks which secret the request's signature signs: checked already, so
            // the verifier answers from the pairs it remembers.
            cluster = try ClusterMembership(settings: settings, engine: engine, eventLoop: group.next(), logger: logger) { headers in
                try? verifier.verify(publicKey: headers.first(name: AgentHeaderName.publicKey), signature: headers.first(name: AgentHeaderName.signature))
            }
        }
        // Connections the open-file limit has room for, so that the oldest unsigned
        // one is evicted before `accept` runs out of descriptors (`DescriptorLimit`).
        let descriptors = DescriptorLimit.raise()
        var maximumConnections = configuration.maxConnections
        if DescriptorLimit.connections(for: descriptors) < maximumConnections {
            maximumConnections = DescriptorLimit.connections(for: descriptors)
            logger.warning("the open-file limit has room for fewer connections than the connection limit: fewer are admitted", metadata: [
                "open_files": "\(descriptors)", "max_connections": "\(configuration.maxConnections)", "admitted": "\(maximumConnections)",
            ])
        }
        let limit = ConnectionLimit(maximum: maximumConnections, logger: logger)
        // A large fan-out's member exchanges are spread over every loop (`Aggregator`).
        let aggregator = cluster.map { Aggregator(membership: $0, engine: engine, memberLoops: Array(group.makeIterator())) }
        let services = AgentServices(
            configuration: configuration,
            verifier: verifier,
            authenticationFailures: AuthenticationFailureLog(logger: logger),
            engine: engine,
            routes: try RouteTable(configuration: configuration, engine: engine, cluster: cluster, aggregator: aggregator),
            logger: logger,
            cluster: cluster,
            aggregator: aggregator,
            metrics: registry.map { AgentMetrics(engine: engine, cluster: cluster, registry: $0) },
            connections: limit
        )
        // With a secret, peers (and `deckhand status --secret`) check this agent's peer
        // certificate: served standalone too, its key rotated with the secrets.
        let peerKey = cluster?.peerKey ?? (configuration.secrets.isEmpty ? nil : PeerKey(secrets: configuration.secrets))
        let sslContext = try identity.serverContext(peerCertificate: peerKey.map { PeerCertificate(peerKey: $0) })
        let quiescing = ServerQuiescingHelper(group: group)
        let admission = ClientAdmission(allowlist: configuration.allowedClients, cluster: cluster, logger: logger)
        // IPV6_V6ONLY off, whatever the machine's default: `::` takes IPv4 clients too.
        let bootstrap = { (ipv6: Bool) -> ServerBootstrap in
            let server = ServerBootstrap(group: group)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // A failed accept (no descriptor left) waits a little before the
                        // next, instead of spinning on the connection still queued.
                        try channel.pipeline.syncOperations.addHandler(
                            AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { _ in .milliseconds(100) })
                        try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                    }
                }
                .serverChannelOption(ChannelOptions.backlog, value: 512)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                // At most 4 socket reads (256 KiB) per wake-up: whatever one read cycle
                // brings is decoded at once, so this bounds what a client that pipelines
                // without reading makes the loop parse (and hold) before it is cut off.
                .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Before TLS and before any byte is read: a client from elsewhere
                        // costs neither a handshake nor a connection slot.
                        guard admission.admit(channel), limit.admit(channel) else { return }
                        try Self.configureConnection(channel.pipeline.syncOperations, services: services, sslContext: sslContext)
                    }
                }
            return ipv6 ? server.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0) : server
        }
        // The metrics listener first: once the agent answers, its metrics can be scraped.
        let metricsEndpoint: MetricsEndpoint?
        if let address = configuration.metricsAddress, let metrics = services.metrics {
            metricsEndpoint = try await MetricsEndpoint.start(at: address, metrics: metrics, group: group)
        } else {
            metricsEndpoint = nil
        }
        let listener: Channel
        do {
            listener = try await Self.listen(host: configuration.host, port: configuration.port, bootstrap: bootstrap, logger: logger)
        } catch {
            await metricsEndpoint?.stop()
            throw error
        }
        if configuration.secrets.isEmpty {
            let window = TimeAmount.fromSeconds(configuration.associationTimeout)
            let verifier = services.verifier
            group.next().scheduleTask(in: window) {
                if verifier.closeAssociationIfUnused() {
                    logger.error("no Portainer associated within AGENT_SECRET_TIMEOUT: refusing every signed request until restarted", metadata: [
                        "timeout_seconds": "\(configuration.associationTimeout)",
                    ])
                }
            }
        }
        // Listening first: peers probing this agent during its first round find it.
        try await cluster?.start().get()
        // glibc keeps what a burst of connections freed in its per-thread arenas: once
        // the burst is over (32 or more connections fewer than at its peak), hand it
        // back, then twice more 10 s apart for what is freed later (idle engine
        // connections close 15 s after their last use), so the agent's memory
        // returns to its idle level.
        let pendingTrims = NIOLockedValueBox(0)
        let trimming = group.next().scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { _ in
            let (peak, open) = limit.takePeak()
            let trim = pendingTrims.withLockedValue { pending -> Bool in
                if peak - open >= 32 { pending = 3 }
                guard pending > 0 else { return false }
                pending -= 1
                return true
            }
            if trim { Self.trimHeap() }
        }
        let secretRotation = configuration.secretFile.map { path in
            let rotation = SecretRotation(
                path: path, secrets: configuration.secrets, verifier: services.verifier, peerKey: peerKey, connections: limit, logger: logger)
            return (rotation, rotation.watch(on: group.next(), every: Self.secretFileCheckInterval))
        }
        return AgentServer(
            services: services, sslContext: sslContext, group: group, listener: listener, quiescing: quiescing,
            connections: limit, trimming: trimming, secretRotation: secretRotation, metricsEndpoint: metricsEndpoint)
    }

    /// Binds `host` (nil: `::`, dual stack, or `0.0.0.0` where the kernel has no IPv6,
    /// with a log line saying so).
    private static func listen(
        host: String?, port: Int, bootstrap: (_ ipv6: Bool) -> ServerBootstrap, logger: Logger
    ) async throws -> Channel {
        if let host {
            return try await bootstrap(HostPort.isIPv6(host)).bind(host: host, port: port).get()
        }
        do {
            return try await bootstrap(true).bind(host: "::", port: port).get()
        } catch let error where meansNoIPv6(error) {
            logger.warning("IPv6 is not available on this machine: listening on IPv4 only", metadata: [
                "address": "\(HostPort.join("0.0.0.0", port))", "error": "\(error)",
            ])
            return try await bootstrap(false).bind(host: "0.0.0.0", port: port).get()
        }
    }

    /// What binding `::` meets where there is no IPv6: a kernel without it refuses the
    /// socket's family; a container or host with IPv6 turned off has no IPv6 address,
    /// so the resolver has nothing for `::` (`EAI_FAMILY`, seen in Docker's default
    /// bridge network), or the address cannot be assigned.
    static func meansNoIPv6(_ error: Error) -> Bool {
        if let error = error as? IOError { return [EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT].contains(error.errnoCode) }
        if let error = error as? SocketAddressError.UnknownHost { return error.host == "::" }
        return false
    }

    /// How often `AGENT_SECRET_FILE` is checked for a change.
    static let secretFileCheckInterval = TimeAmount.seconds(2)

    /// `SIGHUP`: reads `AGENT_SECRET_FILE` again. False when there is none to read.
    @discardableResult
    package func reloadSecrets(reason: String) -> Bool {
        guard let secretRotation else { return false }
        secretRotation.rotation.reload(reason: reason)
        return true
    }

    private static func configureConnection(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        services: AgentServices,
        sslContext: NIOSSLContext
    ) throws {
        if let metrics = services.metrics { try pipeline.addHandler(ConnectionMeter(metrics: metrics)) }
        try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
        try addHTTP(to: pipeline, services: services)
    }

    /// The HTTP/1.1 codec and the connection's handler, behind TLS (or, in tests, on
    /// a plain byte stream).
    static func addHTTP(to pipeline: ChannelPipeline.SynchronousOperations, services: AgentServices) throws {
        // Responses pass through as the engine framed them; agent answers set
        // their own Content-Length.
        var encoderConfiguration = HTTPResponseEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let encoder = HTTPResponseEncoder(configuration: encoderConfiguration)
        let decoder = HTTPDecoding.requestDecoder()
        // No HTTPServerPipelineHandler: it holds reads from each request's end to its
        // answer's, and NIO pays two epoll_ctl calls for every such pause.
        // ConnectionHandler queues pipelined requests itself and handles quiescing.
        let handler = ConnectionHandler(services: services, httpHandlers: [decoder, encoder], encoder: encoder)
        try pipeline.addHandlers([encoder, decoder, handler])
    }

    /// Stops accepting, lets requests in flight finish (idle keep-alive connections
    /// close at once, busy ones after their response; hijacked streams and consoles
    /// are closed at once, having no end of their own) for at most `grace`, then
    /// closes what is left and drops idle engine connections.
    package func stop(grace: TimeAmount = .seconds(10)) async {
        let drained = group.next().makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: drained)
        if await !Self.wait(for: drained.futureResult, atMost: grace, on: group.next()) {
            let cut = connections.closeAll()
            services.logger.warning("shutdown grace over: closing the connections still open", metadata: [
                "connections": "\(cut)", "grace_seconds": "\(grace.nanoseconds / 1_000_000_000)",
            ])
            // Each close waits at most the TLS shutdown timeout for the peer's close_notify.
            _ = await Self.wait(for: drained.futureResult, atMost: .seconds(2), on: group.next())
        }
        try? await listener.close()
        await metricsEndpoint?.stop()
        trimming.cancel()
        secretRotation?.watch.cancel()
        services.cluster?.stop()
        services.engine.closeIdle()
    }

    /// Large blocks (128 KiB and up: the buffers of a client that pipelines up to the
    /// connection's bound, collected member answers) get mappings of their own, which
    /// go back to the kernel when freed. glibc's default threshold rises to the largest
    /// block freed so far (up to 32 MiB), after which such buffers come from the heap
    /// and stay there as fragments once the burst is over (in `bench/soak.sh`, its
    /// pipeliners alone left 3.0–4.4 MiB of heap behind with the default, 2.3–2.7 MiB
    /// with this). `mallopt` is found by name, as `malloc_trim` is; `M_MMAP_THRESHOLD`
    /// is -3 in glibc's malloc.h.
    private static func fixMmapThreshold() {
        guard let symbol = dlsym(nil, "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)(-3, 128 * 1024)
    }

    /// glibc's `malloc_trim(0)`, found by name: the Glibc module does not import it.
    private static func trimHeap() {
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)(0)
    }

    /// Whether `future` completed within `limit`.
    private static func wait(for future: EventLoopFuture<Void>, atMost limit: TimeAmount, on eventLoop: EventLoop) async -> Bool {
        let bounded = eventLoop.makePromise(of: Bool.self)
        // Whichever comes first, the future or the deadline, settles `bounded` once.
        let settled = NIOLockedValueBox(false)
        let settle: @Sendable (Bool) -> Void = { completed in
            if settled.withLockedValue({ done in defer { done = true }; return !done }) { bounded.succeed(completed) }
        }
        future.whenComplete { _ in settle(true) }
        let deadline = eventLoop.scheduleTask(in: limit) { settle(false) }
        let completed = (try? await bounded.futureResult.get()) ?? false
        deadline.cancel()
        return completed
    }
}
