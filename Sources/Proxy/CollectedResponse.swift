import ASCIIText
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

    /// The same answer with its body in a buffer of its own, exactly its size (a body
    /// kept for long must not hold the whole read buffer it arrived in), and what
    /// `checkObject()` found, carried over.
    public func compacted() -> CollectedResponse {
        var copy = CollectedResponse(head: head, body: ByteBuffer(bytes: body.readableBytesView))
        copy.checkedObject = checkedObject
        return copy
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
    /// A status no answer to a plain request may have: 000–099 (which llhttp reads),
    /// 101, or a 304 to a request that was not conditional.
    case unexpectedStatus(Int)

    public var description: String {
        switch self {
        case .tooLarge(let limit): return "response larger than \(limit) bytes"
        case .closedEarly: return "connection closed before the response ended"
        case .timedOut: return "no complete response in time"
        case .unexpectedStatus(let code): return "unexpected status \(code)"
        }
    }
}

extension UpstreamPool {
    /// Sends one bodiless request and reads the whole response, up to `limit` bytes,
    /// within `timeout`. The connection goes back to the pool when it can be reused.
    /// Callable from any thread; the exchange runs on `eventLoop`.
    ///
    /// With `statusOnly`, the response's head carries its status and no fields but its
    /// `ETag`, for a caller that reads nothing else of it (a fan-out's member answers,
    /// which `MemberAnswerCache` may ask again conditionally): an answer
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
        let exchange = startCollecting(head, on: eventLoop, limit: limit, statusOnly: statusOnly) { promise.completeWith($0) }
        exchange.expire(in: timeout)
        return promise.futureResult
    }

    /// `collect`'s exchange without a future or a timer: `done` is called once, on
    /// `eventLoop`, which this must be called on. Whoever starts it bounds its time
    /// with `CollectingExchange.cancel` (a fan-out keeps one timer for all its members'
    /// exchanges, not one each, and hands answers on without a future per member).
    public func startCollecting(
        _ head: HTTPRequestHead,
        on eventLoop: EventLoop,
        limit: Int,
        statusOnly: Bool = false,
        done: @escaping (Result<CollectedResponse, Error>) -> Void
    ) -> CollectingExchange {
        eventLoop.assertInEventLoop()
        let exchange = CollectingExchange(pool: self, eventLoop: eventLoop, limit: limit, statusOnly: statusOnly, done: done)
        if let channel = idleChannel(on: eventLoop) {
            exchange.start(head, on: channel)
        } else {
            connect(on: eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .failure(let error): exchange.finish(.failure(error), reusable: false)
                case .success(let channel): exchange.start(head, on: channel)
                }
            }
        }
        return exchange
    }
}

/// One collected exchange (`UpstreamPool.startCollecting`): the delegate of its
/// connection while the answer comes. Lives on its event loop.
public final class CollectingExchange: UpstreamDelegate {
    private let pool: UpstreamPool
    private let eventLoop: EventLoop
    private let limit: Int
    private let statusOnly: Bool
    private var done: ((Result<CollectedResponse, Error>) -> Void)?
    private var channel: Channel?
    private var upstream: UpstreamHandler?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var timer: Scheduled<Void>?
    /// Itself, from start to finish: its upstream holds it weakly, and whoever started
    /// it need not hold it.
    private var inFlight: CollectingExchange?

    fileprivate init(
        pool: UpstreamPool, eventLoop: EventLoop, limit: Int, statusOnly: Bool, done: @escaping (Result<CollectedResponse, Error>) -> Void
    ) {
        self.pool = pool
        self.eventLoop = eventLoop
        self.limit = limit
        self.statusOnly = statusOnly
        self.done = done
        self.inFlight = self
    }

    /// Whether the exchange has ended (answered, failed or cancelled).
    public var isFinished: Bool { done == nil }

    /// Ends the exchange now with `error`, unless it has ended: its connection, if it
    /// has one yet, is closed, not reused. Call on its event loop.
    public func cancel(_ error: Error) {
        eventLoop.assertInEventLoop()
        finish(.failure(error), reusable: false)
    }

    /// Cancels the exchange with `CollectError.timedOut` if it has not ended within `timeout`.
    fileprivate func expire(in timeout: TimeAmount) {
        guard !isFinished else { return }
        timer = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.finish(.failure(CollectError.timedOut), reusable: false)
        }
    }

    fileprivate func start(_ request: HTTPRequestHead, on channel: Channel) {
        guard !isFinished else {
            // Cancelled while its connection was being made: the connection is unused.
            return pool.release(channel, reusable: true)
        }
        let upstream: UpstreamHandler
        do {
            upstream = try UpstreamHandler.of(channel)
        } catch {
            channel.close(promise: nil)
            return finish(.failure(error), reusable: false)
        }
        self.channel = channel
        self.upstream = upstream
        upstream.begin(delegate: self, rawResponses: statusOnly ? .lengthFramed : .never)
        upstream.write(.head(request))
        upstream.write(.end(nil))
        upstream.flush()
    }

    fileprivate func finish(_ result: Result<CollectedResponse, Error>, reusable: Bool) {
        guard let done else { return }
        self.done = nil
        timer?.cancel()
        timer = nil
        if let channel, let upstream {
            upstream.delegate = nil
            pool.release(channel, reusable: reusable)
        }
        channel = nil
        upstream = nil
        inFlight = nil
        done(result)
    }

    public func upstreamDidReceive(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let responseHead):
            let code = Int(responseHead.status.code)
            guard code >= 200 else {
                if code < 100 || code == 101 { finish(.failure(CollectError.unexpectedStatus(code)), reusable: false) }
                return
            }
            if statusOnly {
                head = Self.statusOnly(responseHead.status, entityTag: responseHead.headers.first(name: "ETag").map(ASCII.trimmingWhitespace))
            } else {
                head = responseHead
            }
        case .body(let chunk):
            append(chunk)
        case .end:
            end()
        }
    }

    public func upstreamDidReceive(raw part: RawResponsePart) {
        switch part {
        case .head(let responseHead):
            // Only an answer framed by its length comes raw (`.lengthFramed`): refuse a
            // too large one before its body is read.
            if case .length(let length) = responseHead.body, length > limit {
                return finish(.failure(CollectError.tooLarge(limit: limit)), reusable: false)
            }
            head = Self.statusOnly(HTTPResponseStatus(statusCode: responseHead.statusCode), entityTag: responseHead.entityTagValue)
        case .body(let chunk):
            append(chunk)
        case .end:
            end()
        }
    }

    /// A head with `status` and, if the answer had one, its `ETag`: nothing else.
    private static func statusOnly(_ status: HTTPResponseStatus, entityTag: String?) -> HTTPResponseHead {
        guard let entityTag else { return HTTPResponseHead(version: .http1_1, status: status) }
        return HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders([("ETag", entityTag)]))
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
            finish(.success(CollectedResponse(head: head, body: body)), reusable: upstream?.isReusable ?? false)
        }
    }

    public func upstreamDidFinishRead() {}

    public func upstreamDidClose(error: Error?) {
        finish(.failure(error ?? CollectError.closedEarly), reusable: false)
    }

    public func upstreamWritabilityChanged(isWritable: Bool) {}
}
