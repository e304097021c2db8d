/// `AGENT_CLUSTER_ADDR`: a DNS name (in Swarm, `tasks.<agent service>`, which
/// resolves to every running agent task) or a comma-separated list of
/// `host[:port]`, each resolved at every probe round.
public struct ClusterAddress: Sendable, Equatable, CustomStringConvertible {
    public struct Seed: Sendable, Equatable {
        public var host: String
        public var port: Int?
    }

    public var seeds: [Seed]

    /// Nil when any entry is not a `host[:port]` (`HostPort`).
    public init?(_ text: String) {
        guard let parsed = try? Self(parsing: text) else { return nil }
        self = parsed
    }

    /// Throws the first entry that is not a `host[:port]` (`HostPort`): an IPv6
    /// address in brackets, a port from 1 to 65535.
    public init(parsing text: String) throws(HostPortError) {
        var seeds: [Seed] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = entry.trimmingCharacters(in: " ")
            let parsed = try HostPort(parsing: item)
            seeds.append(Seed(host: parsed.host, port: parsed.port))
        }
        self.seeds = seeds
    }

    public var description: String {
        seeds.map { HostPort(host: $0.host, port: $0.port).description }.joined(separator: ",")
    }
}

extension StringProtocol {
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
