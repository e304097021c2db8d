import ASCIIText
import Glibc
import Logging
import NIOCore
import Proxy

/// Everything the agent is told at start-up, validated. Built once, by
/// `AgentConfiguration.resolve`, from command-line flags and the environment.
package struct AgentConfiguration: Sendable {
    /// `AGENT_HOST`, without brackets. Nil: `::`, every address, IPv4 and IPv6 (dual
    /// stack), or `0.0.0.0` where the kernel has no IPv6 (`AgentServer` says so).
    package var host: String?
    package var port = 9001
    package var logLevel: Logger.Level = .info
    package var logFormat: LogFormat = .text
    /// `AGENT_SECRET`, or the lines of `AGENT_SECRET_FILE`: any key that signs one of
    /// them is accepted. None: trust on first use.
    package var secrets: [String] = []
    /// `AGENT_SECRET_FILE`, re-read on SIGHUP and when it changes.
    package var secretFile: String?
    /// The one secret of `AGENT_SECRET` (or the first of the file's).
    package var secret: String? {
        get { secrets.first }
        set { secrets = newValue.map { [$0] } ?? [] }
    }
    /// `CAP_HOST_MANAGEMENT=1`: host file browser and hardware inventory.
    package var hostManagement = false
    package var clusterAddress: ClusterAddress?
    /// `DECKHAND_NODE_NAME`: the node name this agent answers to in a cluster, instead
    /// of its engine's `Name` (several agents in front of one engine, as in the scaling
    /// benchmark, must each be a distinct member).
    package var nodeName: String?
    /// How often the cluster address is resolved and its agents probed.
    package var probeInterval: Double = 5
    /// How long one member may take: a probe, or its part of an aggregated list.
    package var memberTimeout: Double = 5
    /// `DECKHAND_MEMBER_WATCH`: the seconds a member is asked to hold an unchanged
    /// answer when the fleet route watches it (`MemberWatches`); 0 turns watches off,
    /// and every fleet request asks every member.
    package var memberWatch = 2
    /// How long a connection may take to send a request head (and may idle between requests).
    package var headerTimeout: Double = 30
    /// How long a request body may go without a byte arriving (while the agent reads).
    package var bodyTimeout: Double = 30
    /// `AGENT_SECRET_TIMEOUT`: with no secret, how long a first Portainer has to associate.
    package var associationTimeout: Double = 72 * 3600
    /// Connections served at once; more are closed on arrival, with a log line.
    package var maxConnections = 4096
    /// `DECKHAND_ALLOWED_CLIENTS`: where connections may come from (besides the
    /// cluster's members); nil lets anyone connect.
    package var allowedClients: ClientAllowlist?
    /// `DECKHAND_ENGINE_SOCKET` (or `DOCKER_HOST`): the engine's unix socket or TCP port.
    package var engine = EngineAddress.unixSocket(path: "/var/run/docker.sock")
    /// TLS to a TCP engine (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`); nil for plain TCP
    /// and for a unix socket.
    package var engineTLS: EngineTLS?
    package var hostRoot = "/host"
    package var volumesRoot = "/var/lib/docker/volumes"
    package var tlsCertificatePath: String?
    package var tlsKeyPath: String?
    /// Docker Hub's token service and registry, for `/v2/dockerhub` (tests use a stand-in).
    var dockerHubAuthURL = HTTPSAddress("https://auth.docker.io/token")!
    var dockerHubRegistryURL = HTTPSAddress("https://registry-1.docker.io")!
    /// PEM trust roots for those two instead of the system's.
    package var dockerHubCAFile: String?
    /// `DECKHAND_METRICS_ADDR`: where the plain-HTTP Prometheus endpoint listens; nil
    /// (the default) means no endpoint and no metrics recorded at all.
    package var metricsAddress: ListenAddress?
}

/// A host and port to listen on, as `host:port` or `[ipv6]:port` reads.
package struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `127.0.0.1:9100`, `[::1]:9100`, `0.0.0.0:9100`; the port is required. Read by
    /// the one address parser (`HostPort`), with port 0 allowed.
    package init?(_ text: String) {
        guard let parsed = try? HostPort(parsing: text, allowingPortZero: true), let port = parsed.port else { return nil }
        self.init(host: parsed.host, port: port)
    }

    package var description: String { HostPort.join(host, port) }

    /// Whether a listener here would take connections meant for `other` (same port,
    /// and the same host or a wildcard on either side). Port 0 is never taken twice.
    func overlaps(_ other: ListenAddress) -> Bool {
        guard port == other.port, port != 0 else { return false }
        let wildcards: Set<String> = ["0.0.0.0", "::", "*"]
        return host == other.host || wildcards.contains(host) || wildcards.contains(other.host)
    }
}

/// How log lines are written: for people, or one JSON object per line (`LOG_MODE=JSON`).
package enum LogFormat: String, Sendable {
    case text
    case json
}

/// A start-up setting that cannot be used. Its description is the one line the
/// operator sees: which variable (and flag), and what it accepts.
package struct ConfigurationError: Error, CustomStringConvertible {
    var setting: Setting
    var value: String
    var accepted: String

    package var description: String {
        "invalid \(setting.environmentName) (--\(setting.flag)) \"\(value)\": expected \(accepted)"
    }
}

/// One configurable setting: its flag, its environment variable and its help.
/// The single table that ties the CLI and the environment together.
package enum Setting: String, CaseIterable, Sendable {
    case host, port, logLevel, logMode, secret, hostManagement, clusterAddress
    case engineSocket, hostRoot, volumesRoot, tlsCertificate, tlsKey, probeInterval, memberTimeout, memberWatch
    case headerTimeout, bodyTimeout, maxConnections, secretTimeout, nodeName, allowedClients, secretFile
    case dockerHubAuthURL, dockerHubRegistryURL, dockerHubCA, engineTLSVerify, engineCertPath, metricsAddress

    var environmentName: String {
        switch self {
        case .host: return "AGENT_HOST"
        case .port: return "AGENT_PORT"
        case .logLevel: return "LOG_LEVEL"
        case .logMode: return "LOG_MODE"
        case .secret: return "AGENT_SECRET"
        case .hostManagement: return "CAP_HOST_MANAGEMENT"
        case .clusterAddress: return "AGENT_CLUSTER_ADDR"
        case .engineSocket: return "DECKHAND_ENGINE_SOCKET"
        case .hostRoot: return "DECKHAND_HOST_ROOT"
        case .volumesRoot: return "DECKHAND_VOLUMES_ROOT"
        case .tlsCertificate: return "DECKHAND_TLS_CERT"
        case .tlsKey: return "DECKHAND_TLS_KEY"
        case .probeInterval: return "DECKHAND_PROBE_INTERVAL"
        case .memberTimeout: return "DECKHAND_MEMBER_TIMEOUT"
        case .memberWatch: return "DECKHAND_MEMBER_WATCH"
        case .headerTimeout: return "DECKHAND_HEADER_TIMEOUT"
        case .bodyTimeout: return "DECKHAND_BODY_TIMEOUT"
        case .maxConnections: return "DECKHAND_MAX_CONNECTIONS"
        case .secretTimeout: return "AGENT_SECRET_TIMEOUT"
        case .nodeName: return "DECKHAND_NODE_NAME"
        case .allowedClients: return "DECKHAND_ALLOWED_CLIENTS"
        case .secretFile: return "AGENT_SECRET_FILE"
        case .dockerHubAuthURL: return "DECKHAND_DOCKERHUB_AUTH_URL"
        case .dockerHubRegistryURL: return "DECKHAND_DOCKERHUB_REGISTRY_URL"
        case .dockerHubCA: return "DECKHAND_DOCKERHUB_CA"
        case .engineTLSVerify: return "DOCKER_TLS_VERIFY"
        case .engineCertPath: return "DOCKER_CERT_PATH"
        case .metricsAddress: return "DECKHAND_METRICS_ADDR"
        }
    }

    /// A variable read when the setting's own is not set: the docker CLI's name for
    /// the same thing, as the original agent's Docker client reads it.
    var fallbackEnvironmentName: String? {
        self == .engineSocket ? "DOCKER_HOST" : nil
    }

    var flag: String {
        switch self {
        case .host: return "host"
        case .port: return "port"
        case .logLevel: return "log-level"
        case .logMode: return "log-mode"
        case .secret: return "secret"
        case .hostManagement: return "host-management"
        case .clusterAddress: return "cluster-addr"
        case .engineSocket: return "engine-socket"
        case .hostRoot: return "host-root"
        case .volumesRoot: return "volumes-root"
        case .tlsCertificate: return "tls-cert"
        case .tlsKey: return "tls-key"
        case .probeInterval: return "probe-interval"
        case .memberTimeout: return "member-timeout"
        case .memberWatch: return "member-watch"
        case .headerTimeout: return "header-timeout"
        case .bodyTimeout: return "body-timeout"
        case .maxConnections: return "max-connections"
        case .secretTimeout: return "secret-timeout"
        case .nodeName: return "node-name"
        case .allowedClients: return "allowed-clients"
        case .secretFile: return "secret-file"
        case .dockerHubAuthURL: return "dockerhub-auth-url"
        case .dockerHubRegistryURL: return "dockerhub-registry-url"
        case .dockerHubCA: return "dockerhub-ca"
        case .engineTLSVerify: return "engine-tls-verify"
        case .engineCertPath: return "engine-cert-path"
        case .metricsAddress: return "metrics-addr"
        }
    }
}

extension AgentConfiguration {
    /// Go's duration syntax, as the original agent takes it: `72h`, `1h30m`, `90s`, `500ms`,
    /// in seconds. Nil past Go's own limit, an `Int64` of nanoseconds (about 292 years),
    /// so that the value always converts to NIO's nanoseconds.
    static func parseDuration(_ text: String) -> Double? {
        var total = 0.0
        var rest = Array(text.utf8)[...]
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { ASCII.isDigit($0) || $0 == UInt8(ascii: ".") }
            guard let value = Double(String(decoding: number, as: UTF8.self)) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: ASCII.isLetter)
            rest = rest.dropFirst(unit.count)
            switch String(decoding: unit, as: UTF8.self) {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            case "ms": total += value / 1000
            default: return nil
            }
        }
        guard total.isFinite, total * 1e9 < Double(Int64.max) else { return nil }
        return total
    }

    /// `AGENT_HOST` as it is bound: an IPv4 or IPv6 address (bare, or in brackets as
    /// in a URL) or a host name; nil for anything else (a port, a path, spaces).
    static func listenHost(_ text: String) -> String? {
        if text.hasPrefix("["), text.hasSuffix("]") {
            let inner = text.dropFirst().dropLast()
            return HostPort.isIPv6(inner) ? String(inner) : nil
        }
        return HostPort.isIPv6(text) || HostPort.isHostName(text) ? text : nil
    }

    /// A name that can travel in the target and unreachable-nodes headers as it is:
    /// the one rule peers are held to too (`PeerText`).
    static func isNodeName(_ text: String) -> Bool {
        PeerText.isNodeName(text)
    }

    /// Flags win over the environment, the environment over the defaults.
    /// Throws the first setting that cannot be used.
    package static func resolve(
        flags: [Setting: String],
        environment: [String: String]
    ) throws(ConfigurationError) -> AgentConfiguration {
        func value(_ setting: Setting) -> String? {
            if let flag = flags[setting] { return flag }
            for name in [setting.environmentName, setting.fallbackEnvironmentName].compactMap({ $0 }) {
                if let env = environment[name], !env.isEmpty { return env }
            }
            return nil
        }
        /// A variable set to nothing where nothing means the open door: a stack file's
        /// `${UNSET}` for a secret file or an allowlist must not start the agent without
        /// either (an empty `AGENT_SECRET` stays trust on first use, as in the original).
        func refuseEmptyVariable(_ setting: Setting, accepted: String) throws(ConfigurationError) {
            guard flags[setting] == nil, environment[setting.environmentName]?.isEmpty == true else { return }
            throw ConfigurationError(setting: setting, value: "", accepted: accepted)
        }
        try refuseEmptyVariable(.secretFile, accepted: "the path of a file of secrets (leave the variable unset for trust on first use)")
        try refuseEmptyVariable(.allowedClients, accepted: "addresses or CIDR ranges, comma-separated (leave the variable unset to allow any client)")
        var configuration = AgentConfiguration()

        if let host = value(.host) {
            guard let listen = Self.listenHost(host) else {
                throw ConfigurationError(
                    setting: .host, value: host,
                    accepted: "an IPv4 address, an IPv6 address (:: for every address, IPv4 and IPv6), or a host name to listen on")
            }
            configuration.host = listen
        }
        if let port = value(.port) {
            guard let number = Int(port), (0...65535).contains(number) else {
                throw ConfigurationError(setting: .port, value: port, accepted: "a TCP port number from 0 to 65535")
            }
            configuration.port = number
        }
        if let level = value(.logLevel) {
            switch level.uppercased() {
            case "ERROR": configuration.logLevel = .error
            case "WARN", "WARNING": configuration.logLevel = .warning
            case "INFO": configuration.logLevel = .info
            case "DEBUG": configuration.logLevel = .debug
            case "TRACE": configuration.logLevel = .trace
            default:
                throw ConfigurationError(setting: .logLevel, value: level, accepted: "one of ERROR, WARN, INFO, DEBUG")
            }
        }
        if let mode = value(.logMode) {
            switch mode.uppercased() {
            case "JSON": configuration.logFormat = .json
            case "PRETTY", "TEXT": configuration.logFormat = .text
            default:
                throw ConfigurationError(setting: .logMode, value: mode, accepted: "PRETTY or JSON")
            }
        }
        configuration.secret = value(.secret)
        // An empty or blank secret (`--secret "$UNSET"`) is one anyone can sign with:
        // refused, never shared-secret mode on nothing.
        if let secret = configuration.secret, SecretFile.isBlank(secret) {
            throw ConfigurationError(setting: .secret, value: secret, accepted: "a secret that is not empty or blank (leave it unset for trust on first use)")
        }
        if let path = value(.secretFile) {
            guard configuration.secret == nil else {
                throw ConfigurationError(
                    setting: .secretFile, value: path,
                    accepted: "one of AGENT_SECRET and AGENT_SECRET_FILE, not both")
            }
            do {
                configuration.secrets = try SecretFile.read(path)
            } catch {
                throw ConfigurationError(setting: .secretFile, value: path, accepted: "\(error)")
            }
            configuration.secretFile = path
        }
        if let management = value(.hostManagement) {
            switch management.lowercased() {
            case "1", "true": configuration.hostManagement = true
            case "0", "false": configuration.hostManagement = false
            default:
                throw ConfigurationError(setting: .hostManagement, value: management, accepted: "1 to enable or 0 to disable")
            }
        }
        if let address = value(.clusterAddress) {
            do {
                configuration.clusterAddress = try ClusterAddress(parsing: address)
            } catch {
                throw ConfigurationError(
                    setting: .clusterAddress, value: address,
                    accepted: "a DNS name such as tasks.agent, or a comma-separated list of host[:port] ([address]:port for IPv6); \(error)")
            }
        }
        if let name = value(.nodeName) {
            // The name other agents will check it against (`PeerText`), and one that
            // travels in the target and unreachable-nodes headers as it is.
            guard PeerText.isNodeName(name) else {
                throw ConfigurationError(setting: .nodeName, value: name, accepted: "a host name: dot-separated labels of 1 to 63 letters, digits, '-' or '_', each starting with a letter or digit, 253 characters at most")
            }
            configuration.nodeName = name
        }
        for (setting, keyPath) in [
            (Setting.probeInterval, \AgentConfiguration.probeInterval), (.memberTimeout, \.memberTimeout), (.headerTimeout, \.headerTimeout), (.bodyTimeout, \.bodyTimeout),
        ] {
            if let text = value(setting) {
                guard let seconds = Double(text), seconds >= 0.1, seconds <= 3600 else {
                    throw ConfigurationError(setting: setting, value: text, accepted: "a number of seconds from 0.1 to 3600")
                }
                configuration[keyPath: keyPath] = seconds
            }
        }
        if let text = value(.memberWatch) {
            guard text.utf8.count <= 2, let seconds = Int(text), (0...10).contains(seconds) else {
                throw ConfigurationError(setting: .memberWatch, value: text, accepted: "a whole number of seconds from 0 (off) to 10")
            }
            configuration.memberWatch = seconds
        }
        if let text = value(.engineSocket) {
            guard let address = EngineAddress(text) else {
                throw ConfigurationError(setting: .engineSocket, value: text, accepted: "an absolute socket path, unix:///path or tcp://host[:port]")
            }
            configuration.engine = address
        }
        try configuration.resolveEngineTLS(verify: value(.engineTLSVerify), directory: value(.engineCertPath), home: environment["HOME"])
        for (setting, keyPath) in [
            (Setting.hostRoot, \AgentConfiguration.hostRoot),
            (.volumesRoot, \.volumesRoot),
        ] {
            if let path = value(setting) {
                guard path.hasPrefix("/"), !path.contains("\0") else {
                    throw ConfigurationError(setting: setting, value: path, accepted: "an absolute path")
                }
                configuration[keyPath: keyPath] = path
            }
        }
        if let text = value(.maxConnections) {
            guard let count = Int(text), (1...1_000_000).contains(count) else {
                throw ConfigurationError(setting: .maxConnections, value: text, accepted: "a number of connections from 1 to 1000000")
            }
            configuration.maxConnections = count
        }
        if let text = value(.allowedClients) {
            guard let allowlist = ClientAllowlist(text) else {
                let problem = ClientAllowlist.firstInvalidEntry(text).map { "; \"\($0)\" is not one" } ?? ""
                throw ConfigurationError(
                    setting: .allowedClients, value: text,
                    accepted: "IPv4 or IPv6 addresses or CIDR networks (host bits zero), separated by commas\(problem)")
            }
            configuration.allowedClients = allowlist
        }
        if let text = value(.secretTimeout) {
            guard let seconds = Self.parseDuration(text), seconds > 0 else {
                throw ConfigurationError(setting: .secretTimeout, value: text, accepted: "a duration such as 72h, 30m or 90s, at most 2562047h")
            }
            configuration.associationTimeout = seconds
        }
        for (setting, keyPath) in [
            (Setting.dockerHubAuthURL, \AgentConfiguration.dockerHubAuthURL), (.dockerHubRegistryURL, \.dockerHubRegistryURL),
        ] {
            if let text = value(setting) {
                guard let address = HTTPSAddress(text) else {
                    throw ConfigurationError(setting: setting, value: text, accepted: "an https://host[:port][/path] address")
                }
                configuration[keyPath: keyPath] = address
            }
        }
        if let path = value(.dockerHubCA) {
            guard path.hasPrefix("/"), access(path, R_OK) == 0 else {
                throw ConfigurationError(setting: .dockerHubCA, value: path, accepted: "the absolute path of a readable PEM file")
            }
            configuration.dockerHubCAFile = path
        }
        if let text = value(.metricsAddress) {
            guard let address = ListenAddress(text) else {
                throw ConfigurationError(setting: .metricsAddress, value: text, accepted: "host:port or [IPv6]:port to serve /metrics on")
            }
            // Never on the agent's port: the metrics are plain HTTP and unsigned. No
            // AGENT_HOST means `::`, every address.
            let agent = ListenAddress(host: String((configuration.host ?? "::").filter { $0 != "[" && $0 != "]" }), port: configuration.port)
            guard !address.overlaps(agent) else {
                throw ConfigurationError(
                    setting: .metricsAddress, value: text, accepted: "an address other than the agent's own (\(agent))")
            }
            configuration.metricsAddress = address
        }
        configuration.tlsCertificatePath = value(.tlsCertificate)
        configuration.tlsKeyPath = value(.tlsKey)
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            let given = configuration.tlsCertificatePath == nil ? Setting.tlsKey : .tlsCertificate
            throw ConfigurationError(
                setting: given, value: value(given) ?? "",
                accepted: "to be given together with \(given == .tlsKey ? Setting.tlsCertificate.environmentName : Setting.tlsKey.environmentName)")
        }
        return configuration
    }
}

extension AgentConfiguration {
    /// TLS for a TCP engine, as the Docker client the original agent uses reads it:
    /// `DOCKER_TLS_VERIFY` set (to anything, as the docker CLI reads it) verifies the
    /// engine's certificate; `DOCKER_CERT_PATH` set alone means TLS without that
    /// check; the folder defaults to `~/.docker`. A unix socket ignores both, as the
    /// CLI does. What is wrong with the files stops start-up here.
    mutating func resolveEngineTLS(verify: String?, directory: String?, home: String?) throws(ConfigurationError) {
        guard case .tcp = engine, verify != nil || directory != nil else {
            engineTLS = nil
            return
        }
        let folder = directory ?? "\(home ?? "/root")/.docker"
        let setting = directory != nil ? Setting.engineCertPath : .engineTLSVerify
        do {
            engineTLS = try EngineTLS(directory: folder, verify: verify != nil)
            _ = try engineTransport()
        } catch {
            throw ConfigurationError(setting: setting, value: directory ?? verify ?? "", accepted: "ca.pem, cert.pem and key.pem that work together, but \(error)")
        }
    }

    /// How to reach the engine: its socket, or its TCP port with the TLS files read.
    package func engineTransport() throws(EngineTLSError) -> UpstreamTransport {
        try UpstreamTransport.engine(engine, tls: engineTLS)
    }
}

extension TimeAmount {
    /// A setting's seconds as NIO's nanoseconds. `resolve` keeps every setting within
    /// range; the clamp (to the largest Double below 2^63 ns, about 292 years) makes sure
    /// a conversion never traps.
    package static func fromSeconds(_ seconds: Double) -> TimeAmount {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        return .nanoseconds(Int64(min(seconds * 1e9, Double(Int64.max).nextDown)))
    }
}
