import NIOCore
import NIOHTTP1

/// A whole response read into memory: only for the agent's own small exchanges
/// (engine info, member probes) and for aggregation, which must merge whole lists.
public struct CollectedResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: ByteBuffer {
        didSet { checkedObject = nil }
    }
    /// Where the body's one JSON object lies (offsets from its reader index), once
    /// `checkObject()` has found it; nil otherwise. A new body clears it.
    public private(set) var checkedObject: Range<Int>?

    public init(head: HTTPResponseHead, body: ByteBuffer) {
        self.head = head
        self.body = body
    }

    /// Checks that the body is exactly one JSON object (`StrictJSON`), and remembers
    /// where it lies, so that whoever copies it need not scan it again.
    @discardableResult
    public mutating func checkObject() -> Bool {
        checkedObject = StrictJSON.objectRange(body)
        return checkedObject != nil
    }
}

public enum CollectError: Error, Sendable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case closedEarly
    case timedOut

    public var description: String {
        switch self {
        case .tooLarge(let limit): return "response larger than \(limit) bytes"
        case .closedEarly: return "connection closed before the response ended"
        case .timedOut: return "no complete response in time"
        }
    }
}

extension UpstreamPool {
    /// Sends one bodiless request and reads the whole response, up to `limit` bytes,
    /// within `timeout`. The connection goes back to the pool when it can be reused.
    /// Callable from any thread; the exchange runs on `eventLoop`.
    ///
    /// With `statusOnly`, the response's head carries its status and no fields, for a
    /// caller that reads nothing else of it (a fan-out's member answers): an answer
    /// framed plainly by its length is then taken in bytes (`RawResponses.lengthFramed`)
    /// and its head never decoded into fields, which was most of NIO's decoding cost
    /// per member.
    public func collect(
        _ head: HTTPRequestHead,
        on eventLoop: EventLoop,
        limit: Int,
        timeout: TimeAmount,
        statusOnly: Bool = false
    ) -> EventLoopFuture<CollectedResponse> {
        guard eventLoop.inEventLoop else {
            // E.g. at start, from the async command (a Swarm task deriving its cluster
            // address): the exchange's handlers must run on the loop.
            return eventLoop.flatSubmit { self.collect(head, on: eventLoop, limit: limit, timeout: timeout, statusOnly: statusOnly) }
        }
        let promise = eventLoop.makePromise(of: CollectedResponse.self)
        acquire(on: eventLoop).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let channel):
                do {
                    let upstream = try UpstreamHandler.of(channel)
                    let collector = ResponseCollector(
                        pool: self, channel: channel, upstream: upstream, limit: limit, statusOnly: statusOnly, promise: promise)
                    collector.start(head, timeout: timeout)
                } catch {
                    channel.close(promise: nil)
                    promise.fail(error)
                }
            }
        }
        return promise.futureResult
    }
}

/// The delegate of one collected exchange.
private final class ResponseCollector: UpstreamDelegate {
    private let pool: UpstreamPool
    private let channel: Channel
    private let upstream: UpstreamHandler
    private let limit: Int
    private let statusOnly: Bool
    private let promise: EventLoopPromise<CollectedResponse>
    private var head: HTTPResponseHead?
    private var body: ByteBuffer
    private var done = false
    private var timer: Scheduled<Void>?

    init(
        pool: UpstreamPool, channel: Channel, upstream: UpstreamHandler, limit: Int, statusOnly: Bool, promise: EventLoopPromise<CollectedResponse>
    ) {
        self.pool = pool
        self.channel = channel
        self.upstream = upstream
        self.limit = limit
        self.statusOnly = statusOnly
        self.promise = promise
        self.body = channel.allocator.buffer(capacity: 0)
    }

    func start(_ request: HTTPRequestHead, timeout: TimeAmount) {
        // The upstream holds its delegate weakly; the timer keeps this collector alive.
        timer = channel.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.finish(.failure(CollectError.timedOut), reusable: false)
        }
        upstream.begin(delegate: self, rawResponses: statusOnly ? .lengthFramed : .never)
        upstream.write(.head(request))
        upstream.write(.end(nil))
        upstream.flush()
    }

    private func finish(_ result: Result<CollectedResponse, Error>, reusable: Bool) {
        guard !done else { return }
        done = true
        timer?.cancel()
        upstream.delegate = nil
        pool.release(channel, reusable: reusable)
        promise.completeWith(result)
    }

    func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let responseHead):
            guard responseHead.status.code >= 200 else { return }
            head = statusOnly ? HTTPResponseHead(version: responseHead.version, status: responseHead.status) : responseHead
        case .body(let chunk):
            append(chunk)
        case .end:
            end()
        }
    }

    func upstreamDidReceive(raw part: RawResponsePart) {
        switch part {
        case .head(let responseHead):
            // Only an answer framed by its length comes raw (`.lengthFramed`): refuse a
            // too large one before its body is read.
            if case .length(let length) = responseHead.body, length > limit {
                return finish(.failure(CollectError.tooLarge(limit: limit)), reusable: false)
            }
            head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: responseHead.statusCode))
        case .body(let chunk):
            append(chunk)
        case .end:
            end()
        }
    }

    private func append(_ chunk: ByteBuffer) {
        if body.readableBytes + chunk.readableBytes > limit {
            finish(.failure(CollectError.tooLarge(limit: limit)), reusable: false)
        } else if body.readableBytes == 0 {
            // Most answers arrive in one read: keep the read's buffer, no copy.
            body = chunk
        } else {
            var chunk = chunk
            body.writeBuffer(&chunk)
        }
    }

    private func end() {
        if let head {
            finish(.success(CollectedResponse(head: head, body: body)), reusable: upstream.isReusable)
        }
    }

    func upstreamDidFinishRead() {}

    func upstreamDidClose(error: Error?) {
        finish(.failure(error ?? CollectError.closedEarly), reusable: false)
    }

    func upstreamWritabilityChanged(isWritable: Bool) {}
}
