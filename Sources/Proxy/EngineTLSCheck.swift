import NIOCore
import NIOHTTP1
import NIOSSL

/// One `/_ping` to a TLS engine at start-up, so that certificates that cannot work
/// stop the agent with a line naming the problem instead of failing every request.
public enum EngineTLSCheck {
    /// Throws when TLS with the engine failed; returns why the engine did not answer
    /// otherwise (not running yet, say), nil when it answered.
    public static func run(engine: UpstreamPool, tls: EngineTLS, on eventLoop: EventLoop) async throws(EngineTLSError) -> String? {
        var ping = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/_ping")
        ping.headers.add(name: "Host", value: "docker")
        do {
            _ = try await engine.collect(ping, on: eventLoop, limit: 4096, timeout: .seconds(10)).get()
            return nil
        } catch {
            if let problem = problem(error, engine: engine.transport.description, tls: tls) { throw EngineTLSError(problem) }
            return "\(error)"
        }
    }

    /// What a TLS failure means, from BoringSSL's reason (which side refused, and why).
    public static func problem(_ error: Error, engine: String, tls: EngineTLS) -> EngineTLSError.Problem? {
        guard error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError else { return nil }
        let reason = Self.reason(error)
        if reason.contains("CERTIFICATE_VERIFY_FAILED") || reason.contains("certificate verify failed") {
            return .engineNotTrusted(engine: engine, caFile: tls.caFile, reason: reason)
        }
        // The engine's alerts: a missing certificate (TLS 1.3 says so; 1.2 says "bad"
        // or "handshake failure"), or one it does not trust.
        let refusals = ["CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE", "CERTIFICATE_UNKNOWN", "DECRYPT_ERROR"]
        if refusals.contains(where: reason.contains) {
            guard let (certificate, _) = tls.clientCertificate else {
                return .clientCertificateRequired(engine: engine, directory: tls.directory)
            }
            return .clientCertificateRefused(engine: engine, certificate: certificate, reason: reason)
        }
        return .handshakeFailed(engine: engine, reason: reason)
    }

    /// BoringSSL's reason names (`CERTIFICATE_VERIFY_FAILED`), without the codes and
    /// source paths around them; the whole error when it has none.
    static func reason(_ error: Error) -> String {
        let text = "\(error)"
        let marker = "OPENSSL_internal:"
        var reasons: [Substring] = []
        var rest = text[...]
        while let found = rest.firstRange(of: marker) {
            rest = rest[found.upperBound...]
            let name = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            if !name.isEmpty { reasons.append(name) }
        }
        return reasons.isEmpty ? text : reasons.joined(separator: ", ")
    }
}
