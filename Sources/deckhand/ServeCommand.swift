import Agent
import ArgumentParser
import Dispatch
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import Proxy

/// `deckhand serve` (the default): runs the agent until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the agent (the default command).",
        discussion: "Every option can also be set through the environment variable named in its help; a flag wins over the variable."
    )

    /// Shared secrets shorter than this (bytes) are warned about at start: a guessed
    /// one opens the node to whoever signs with it. Not refused: Portainer's own
    /// examples use short ones, and a drop-in must start where the original did.
    static let shortSecret = 16

    @Option(name: .customLong("host"), help: "Address to listen on: IPv4, IPv6 (:: for both) or a host name (AGENT_HOST, default :: where the kernel has IPv6, else 0.0.0.0).")
    var host: String?
    @Option(name: .customLong("port"), help: "HTTPS port (AGENT_PORT, default 9001).")
    var port: String?
    @Option(name: .customLong("log-level"), help: "ERROR, WARN, INFO or DEBUG (LOG_LEVEL, default INFO).")
    var logLevel: String?
    @Option(name: .customLong("log-mode"), help: "PRETTY or JSON (LOG_MODE, default PRETTY).")
    var logMode: String?
    @Option(name: .customLong("secret"), help: "Shared secret Portainer signs instead of the default message; disables trust on first use (AGENT_SECRET).")
    var secret: String?
    @Option(name: .customLong("host-management"), help: "1 enables the host file browser and hardware inventory (CAP_HOST_MANAGEMENT, default 0).")
    var hostManagement: String?
    @Option(name: .customLong("cluster-addr"), help: "DNS name or host[:port] list of the cluster's agents (AGENT_CLUSTER_ADDR).")
    var clusterAddress: String?
    @Option(name: .customLong("node-name"), help: "Node name this agent answers to in a cluster instead of its engine's Name (DECKHAND_NODE_NAME); for several agents in front of one engine.")
    var nodeName: String?
    @Option(name: .customLong("engine-socket"), help: "Docker engine: a socket path, unix:///path or tcp://host[:port] (DECKHAND_ENGINE_SOCKET, else DOCKER_HOST, default /var/run/docker.sock).")
    var engineSocket: String?
    @Option(name: .customLong("engine-tls-verify"), help: "Any value: TLS to a tcp:// engine, its certificate checked against ca.pem (DOCKER_TLS_VERIFY).")
    var engineTLSVerify: String?
    @Option(name: .customLong("engine-cert-path"), help: "Folder of ca.pem, cert.pem and key.pem for a tcp:// engine; set alone, TLS without checking the engine's certificate (DOCKER_CERT_PATH, default ~/.docker).")
    var engineCertPath: String?
    @Option(name: .customLong("host-root"), help: "Where the host's / is mounted (DECKHAND_HOST_ROOT, default /host).")
    var hostRoot: String?
    @Option(name: .customLong("volumes-root"), help: "Where the engine's volumes folder is mounted, for volumes whose Mountpoint the engine gives is not in view (DECKHAND_VOLUMES_ROOT, default /var/lib/docker/volumes).")
    var volumesRoot: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain to serve instead of a fresh self-signed one (DECKHAND_TLS_CERT).")
    var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert (DECKHAND_TLS_KEY).")
    var tlsKey: String?
    @Option(name: .customLong("probe-interval"), help: "Seconds between cluster membership rounds (DECKHAND_PROBE_INTERVAL, default 5); a member silent for three rounds is dropped.")
    var probeInterval: String?
    @Option(name: .customLong("secret-timeout"), help: "Without AGENT_SECRET, how long a first Portainer has to associate before the agent refuses everyone until restarted (AGENT_SECRET_TIMEOUT, default 72h).")
    var secretTimeout: String?
    @Option(name: .customLong("header-timeout"), help: "Seconds a connection may take to send a request head, or idle between requests (DECKHAND_HEADER_TIMEOUT, default 30).")
    var headerTimeout: String?
    @Option(name: .customLong("body-timeout"), help: "Seconds a request body may go without a byte arriving while the agent reads it (DECKHAND_BODY_TIMEOUT, default 30).")
    var bodyTimeout: String?
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are closed with a log line (DECKHAND_MAX_CONNECTIONS, default 4096).")
    var maxConnections: String?
    @Option(name: .customLong("secret-file"), help: "File of shared secrets, one per line (AGENT_SECRET_FILE, e.g. a Docker secret); several are valid at once, for rotation. Re-read on SIGHUP and when it changes.")
    var secretFile: String?
    @Option(name: .customLong("allowed-clients"), help: "Addresses and CIDR networks (IPv4, IPv6, comma-separated) connections may come from; others are closed at accept. The cluster's agents are always let in (DECKHAND_ALLOWED_CLIENTS, default: anyone).")
    var allowedClients: String?
    @Option(name: .customLong("dockerhub-auth-url"), help: "Docker Hub's token service, for /v2/dockerhub (DECKHAND_DOCKERHUB_AUTH_URL, default https://auth.docker.io/token).")
    var dockerHubAuthURL: String?
    @Option(name: .customLong("dockerhub-registry-url"), help: "Docker Hub's registry, for /v2/dockerhub (DECKHAND_DOCKERHUB_REGISTRY_URL, default https://registry-1.docker.io).")
    var dockerHubRegistryURL: String?
    @Option(name: .customLong("dockerhub-ca"), help: "PEM trust roots for those two instead of the system's (DECKHAND_DOCKERHUB_CA).")
    var dockerHubCA: String?
    @Option(name: .customLong("member-timeout"), help: "Seconds one member may take to answer a probe or its part of an aggregated list (DECKHAND_MEMBER_TIMEOUT, default 5).")
    var memberTimeout: String?
    @Option(name: .customLong("member-watch"), help: "Seconds a member is asked to hold an unchanged host info answer while the fleet route watches it; a silent member is still listed for this long plus 1 s. 0: no watches, every fleet request asks every member (DECKHAND_MEMBER_WATCH, default 2).")
    var memberWatch: String?
    @Option(name: .customLong("metrics-addr"), help: "host:port (or [IPv6]:port) of a plain-HTTP Prometheus endpoint, GET /metrics; never the agent's port (DECKHAND_METRICS_ADDR, default: off, nothing recorded).")
    var metricsAddress: String?

    var flags: [Setting: String] {
        let pairs: [(Setting, String?)] = [
            (.host, host), (.port, port), (.logLevel, logLevel), (.logMode, logMode), (.secret, secret),
            (.hostManagement, hostManagement), (.clusterAddress, clusterAddress), (.engineSocket, engineSocket),
            (.hostRoot, hostRoot), (.volumesRoot, volumesRoot), (.tlsCertificate, tlsCertificate), (.tlsKey, tlsKey),
            (.probeInterval, probeInterval), (.memberTimeout, memberTimeout), (.memberWatch, memberWatch),
            (.headerTimeout, headerTimeout), (.bodyTimeout, bodyTimeout), (.maxConnections, maxConnections), (.secretTimeout, secretTimeout),
            (.nodeName, nodeName), (.allowedClients, allowedClients), (.secretFile, secretFile),
            (.dockerHubAuthURL, dockerHubAuthURL), (.dockerHubRegistryURL, dockerHubRegistryURL), (.dockerHubCA, dockerHubCA),
            (.engineTLSVerify, engineTLSVerify), (.engineCertPath, engineCertPath), (.metricsAddress, metricsAddress),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.compactMap { setting, value in value.map { (setting, $0) } })
    }

    func run() async throws {
        CrashReport.install()
        Glibc.signal(SIGHUP, SIG_IGN)
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.resolve(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            StandardError.write(Array("deckhand: \(error)\n".utf8))
            throw ExitCode(2)
        }
        LoggingSetup.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        let logger = Logger(label: "deckhand")

        let identity: TLSIdentity
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            do {
                identity = try TLSIdentity.load(certificatePath: certificate, keyPath: key)
            } catch {
                logger.error("cannot load the TLS certificate", metadata: ["cert": "\(certificate)", "key": "\(key)", "error": "\(error)"])
                throw ExitCode(2)
            }
        } else {
            identity = try TLSIdentity.selfSigned()
        }

        let server: AgentServer
        do {
            server = try await AgentServer.start(configuration: configuration, identity: identity, logger: logger)
        } catch let error as EngineTLSError {
            StandardError.write(Array("deckhand: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            logger.error("cannot listen", metadata: ["address": "\(HostPort.join(configuration.host ?? "::", configuration.port))", "error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info("listening", metadata: [
            "address": "\(server.boundAddress)",
            "engine": "\(configuration.engine)\(configuration.engineTLS.map { $0.verify ? " (TLS, verified)" : " (TLS)" } ?? "")",
            "mode": "\(configuration.secrets.isEmpty ? "trust on first use" : "shared secret")",
            "secrets": "\(configuration.secrets.count)",
            "allowed_clients": "\(configuration.allowedClients.map { "\($0) and the cluster's agents" } ?? "anyone")",
            "metrics": "\(configuration.metricsAddress.map { ListenAddress(host: $0.host, port: server.metricsPort ?? $0.port).description + "/metrics" } ?? "off")",
            "version": "\(AgentVersion.deckhand)",
        ])
        if let short = configuration.secrets.first(where: { $0.utf8.count < Self.shortSecret }) {
            logger.warning("a shared secret of \(short.utf8.count) bytes can be guessed: use a random one of \(Self.shortSecret) or more (README, Trust between peers)")
        }
        // Not fatal: the agent still answers /ping, and the health check says unhealthy.
        if let refusal = EngineSocketAccess.refusal(engine: configuration.engine) {
            logger.error("cannot use the engine socket: \(refusal)")
        }
        // SIGHUP re-reads AGENT_SECRET_FILE; without one it is logged, never fatal
        // (ignored from the start, above).
        let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangUp.setEventHandler {
            if !server.reloadSecrets(reason: "SIGHUP") {
                logger.info("SIGHUP: nothing to reload (no AGENT_SECRET_FILE)")
            }
        }
        hangUp.resume()
        defer { hangUp.cancel() }
        let signal = await ShutdownSignal.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        await server.stop()
    }
}

/// Waits for SIGTERM or SIGINT without blocking an event loop.
enum ShutdownSignal {
    static func wait() async -> String {
        let (names, continuation) = AsyncStream<String>.makeStream()
        let sources = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")].map { number, name in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(name) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        for await name in names { return name }
        return "end of signals"
    }
}
