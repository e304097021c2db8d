/// `AGENT_CLUSTER_ADDR`: a DNS name (in Swarm, `tasks.<agent service>`, which
/// resolves to every running agent task) or a comma-separated list of
/// `host[:port]`, each resolved at every probe round.
public struct ClusterAddress: Sendable, Equatable, CustomStringConvertible {
    public struct Seed: Sendable, Equatable {
        public var host: String
        public var port: Int?
    }

    public var seeds: [Seed]

    /// Nil when any entry is not a host name or address with an optional port.
    public init?(_ text: String) {
        var seeds: [Seed] = []
        for entry in text.split(separator: ",") {
            let item = entry.trimmingCharacters(in: " ")
            guard !item.isEmpty else { return nil }
            var host = Substring(item)
            var port: Int?
            if item.hasPrefix("[") {
                guard let close = item.firstIndex(of: "]") else { return nil }
                host = item[item.index(after: item.startIndex)..<close]
                let rest = item[item.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":"), let number = Int(rest.dropFirst()) else { return nil }
                    port = number
                }
            } else if let colon = item.lastIndex(of: ":"), item.firstIndex(of: ":") == colon {
                host = item[..<colon]
                guard let number = Int(item[item.index(after: colon)...]) else { return nil }
                port = number
            }
            if let port, !(1...65535).contains(port) { return nil }
            // ASCII only: `isLetter` and `isNumber` alone would let any script's letters through to the resolver.
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-_:".contains($0)) }) else {
                return nil
            }
            seeds.append(Seed(host: String(host), port: port))
        }
        guard !seeds.isEmpty else { return nil }
        self.seeds = seeds
    }

    public var description: String {
        seeds.map { seed in seed.port.map { "\(seed.host):\($0)" } ?? seed.host }.joined(separator: ",")
    }
}

extension StringProtocol {
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
