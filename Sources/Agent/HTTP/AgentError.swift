import NIOHTTP1
import Proxy

/// The agent's one HTTP error: a status and the JSON body Portainer understands,
/// `{"message": …, "details": …}`.
struct AgentError: Error, Sendable {
    var status: HTTPResponseStatus
    var message: String
    var details: String

    init(_ status: HTTPResponseStatus, _ message: String, details: String? = nil) {
        self.status = status
        self.message = message
        self.details = details ?? status.reasonPhrase
    }

    /// A request the HTTP decoder could not read.
    init(_ parserError: HTTPParserError) {
        if parserError == .headerOverflow {
            self.init(.requestHeaderFieldsTooLarge, "Request headers too large", details: Self.headLimits)
        } else {
            self.init(.badRequest, "Malformed HTTP request", details: "\(parserError)")
        }
    }

    /// What a request's head may have (`HTTPDecoding`).
    static let headLimits = "at most 80 KiB of headers in at most \(HTTPDecoding.maximumFieldCount) fields"

    /// A head whose undecoded bytes (whitespace llhttp skips, mostly) outgrew the decoder's buffer.
    static let headTooLarge = AgentError(.requestHeaderFieldsTooLarge, "Request head too large", details: headLimits)

    static let missingSignature = AgentError(.forbidden, "Missing request signature headers", details: "Unauthorized")
    static let invalidSignature = AgentError(.forbidden, "Invalid request signature", details: "Unauthorized")
    /// Secret mode: a request marked as forwarded by another agent, without that agent's proof.
    static let unprovenPeer = AgentError(.forbidden, "Forwarded request without a valid peer proof", details: "Unauthorized")
    /// `GET /v2/cluster/member` from anyone but a cluster peer.
    static let notAPeer = AgentError(.forbidden, "This route answers the cluster's agents only", details: "Unauthorized")

    private struct Body: Encodable {
        var message: String
        var details: String
    }

    var jsonBody: [UInt8] {
        // Two strings always encode.
        (try? AgentJSON.encode(Body(message: message, details: details))) ?? []
    }
}
