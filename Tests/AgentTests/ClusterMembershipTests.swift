import Logging
import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// What the membership keeps per address, in this process: nothing for an address the
/// cluster address no longer names and no member holds.
@Suite("What the membership keeps for addresses")
struct ClusterMembershipTests {
    @Test("a thousand replaced tasks, each at a new address, leave one address's connections behind, not a thousand")
    func replacedAddressesAreForgotten() throws {
        let settings = ClusterMembership.Settings(
            address: try #require(ClusterAddress("tasks.deckhand-test")), defaultPort: 9001, probeInterval: .seconds(3600), memberTimeout: .seconds(1))
        let membership = try ClusterMembership(
            settings: settings, engine: UpstreamPool(transport: .unixSocket(path: "/nonexistent/deckhand-test.sock")),
            eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "membership-test"))
        defer { membership.stop() }
        for round in 0..<1000 {
            // What one round's look-up gives (the task replaced since the round before), and its probe's pool.
            let address = (host: "10.0.\(round / 256).\(round % 256)", port: 9001)
            membership.resolved([address])
            _ = membership.pool(for: ClusterMember(nodeName: "", isManager: false, host: address.host, port: address.port, version: ""))
        }
        #expect(membership.pooledAddresses == 1)
    }
}
