import Crypto
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy

/// A client of a running agent that signs as Portainer does: for the commands that
/// ask an agent something (`deckhand status`, `deckhand host-info --address`). With
/// the agent's secret, the agent must first prove it holds it too (its peer
/// certificate, `PeerCertificate`), so the signature is never sent to anyone else.
package struct SignedClient {
    package enum Failure: Error, CustomStringConvertible {
        case badAddress(String)
        case badKey(String)
        case unreachable(String, any Error)
        case notVouched(String)
        case refused(String, status: UInt, body: String)

        package var description: String {
            switch self {
            case .badAddress(let address): return "--address must be host:port, not \(address)"
            case .badKey(let path): return "\(path): not a readable P-256 private key in PEM"
            case .unreachable(let address, let error): return "\(address) did not answer: \(error)"
            case .notVouched(let address):
                return "\(address)'s TLS certificate is not vouched for under this secret (an agent without it, one older than peer certificates, or an interceptor): nothing was sent"
            case .refused(let address, let status, let body): return "\(address) answered \(status): \(body)"
            }
        }
    }

    let address: String
    let host: String
    let port: Int
    let privateKey: P256.Signing.PrivateKey
    let secret: String?

    /// `keyPath` is a PEM file; `address` is `host:port` (IPv6 in brackets).
    package init(address: String, keyPath: String, secret: String?) throws(Failure) {
        guard let (host, port) = Self.split(address) else { throw .badAddress(address) }
        guard let pem = try? String(contentsOfFile: keyPath, encoding: .utf8),
              let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) else { throw .badKey(keyPath) }
        self.address = address
        self.host = host
        self.port = port
        self.privateKey = key
        self.secret = secret
    }

    /// The body of a signed `GET path`, asked of `node` through this agent when given;
    /// anything but a 200 throws.
    package func get(_ path: String, node: String? = nil, limit: Int = 16 << 20) async throws(Failure) -> [UInt8] {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: ["Host": HostPort.join(host, port)])
        for (name, value) in PortainerSignature.headers(signingWith: privateKey, secret: secret) { head.headers.add(name: name, value: value) }
        if let node { head.headers.add(name: AgentHeaderName.target, value: node) }
        let response: CollectedResponse
        do {
            let context = try UpstreamTransport.peerTLSContext(proven: secret != nil)
            let pool = UpstreamPool(transport: .tls(host: host, port: port, context: context, vouchedBy: secret.map { PeerKey(secret: $0) }))
            defer { pool.closeIdle() }
            response = try await pool.collect(head, on: MultiThreadedEventLoopGroup.singleton.next(), limit: limit, timeout: .seconds(30)).get()
        } catch {
            if secret != nil, PeerCertificate.isRefusal(error) { throw .notVouched(address) }
            throw .unreachable(address, error)
        }
        let body = Array(response.body.readableBytesView)
        guard response.head.status == .ok else {
            throw .refused(address, status: response.head.status.code, body: String(decoding: body, as: UTF8.self))
        }
        return body
    }

    /// `host:port`, `[v6]:port` (`HostPort`): the port is required.
    package static func split(_ address: String) -> (String, Int)? {
        guard let parsed = try? HostPort(parsing: address), let port = parsed.port else { return nil }
        return (parsed.host, port)
    }
}
