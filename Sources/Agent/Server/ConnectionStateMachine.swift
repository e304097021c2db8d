import NIOCore
import NIOHTTP1
import Proxy

/// The rules of one client connection, as plain values: whether a request is being
/// served, what waits behind it (HTTP pipelining), when reading stops and resumes,
/// and when the connection must end. It performs nothing: each event returns what
/// the `ConnectionHandler` is to do, so that every rule is tested without a channel.
///
/// One request at a time: a head that arrives while another request is served, or
/// while the client has not taken the answers so far (the channel is not writable),
/// is held with everything behind it, and served in order once the connection is
/// idle again. A client that holds more than `maxHeldRequests` requests or
/// `maxHeldBytes` bytes this way is not waiting for its answers: it is cut off.
struct ConnectionStateMachine {
    enum Phase: Equatable {
        /// Waiting for a request head.
        case idle
        /// A request is being served by an exchange.
        case busy
        /// After a `101`: the connection is no longer HTTP.
        case upgraded
    }

    static let maxHeldRequests = 128
    static let maxHeldBytes = 1 << 20
    /// Body bytes dropped unread past which the connection is not kept: a huge body is
    /// not read to its end for nothing.
    static let dropLimit = 1 << 20

    private(set) var phase = Phase.idle

    // MARK: The current request

    /// The answer being written is the connection's last (`Connection: close`).
    private(set) var closeAfterResponse = false
    /// The current request's end has arrived.
    private(set) var requestEnded = true
    /// The current request's body is still arriving (it has one and its end has not come).
    private(set) var requestBodyOpen = false
    /// The current request asked for an upgrade: the decoder reads nothing after its
    /// head, so any answer but the upstream's 101 is the connection's last.
    private(set) var isUpgradeRequest = false
    /// A HEAD request's answer carries headers only.
    private(set) var isHeadRequest = false
    /// Body bytes of the current request dropped unread.
    private(set) var droppedBodyBytes = 0

    // MARK: The connection

    /// The agent is stopping: every answer from now on is the connection's last.
    private(set) var quiescing = false
    /// Whether a request head has arrived on this connection yet.
    private(set) var receivedRequest = false
    /// The client will send nothing more.
    private(set) var inputClosed = false
    /// The connection is being cut off: whatever the decoder still delivers is dropped.
    private(set) var discardingInput = false
    /// The exchange cannot take more of the request now (its upstream or disk is behind).
    private(set) var readsPaused = false
    /// NIO asked to read while reading was held.
    private var readPending = false

    private var held: CircularBuffer<HTTPServerRequestPart> = []
    private var heldRequests = 0
    private var heldBytes = 0

    var isIdle: Bool { phase == .idle }
    var hasHeldParts: Bool { !held.isEmpty }

    // MARK: Reading

    enum ReceiveAction: Equatable {
        /// Hand the part to the current request (or start one with it).
        case serve(HTTPServerRequestPart)
        /// Held until the connection can serve it.
        case held
        /// Past the pipelining limits: close the connection now.
        case cutOff
        /// The connection is being cut off.
        case ignore
    }

    /// A part came from the decoder.
    mutating func received(_ part: HTTPServerRequestPart, isWritable: Bool) -> ReceiveAction {
        guard !discardingInput else { return .ignore }
        if !held.isEmpty { return hold(part) }
        if case .head = part, phase != .idle || !isWritable { return hold(part) }
        return .serve(part)
    }

    private mutating func hold(_ part: HTTPServerRequestPart) -> ReceiveAction {
        switch part {
        case .head: heldRequests += 1
        case .body(let body): heldBytes += body.readableBytes
        case .end: break
        }
        guard heldRequests <= Self.maxHeldRequests, heldBytes <= Self.maxHeldBytes else {
            discardingInput = true
            dropHeld()
            return .cutOff
        }
        held.append(part)
        return .held
    }

    /// The next held part that can be served now: a head only once the connection is
    /// idle and the client has taken the answers so far, the parts behind it at once.
    mutating func nextHeld(isWritable: Bool) -> HTTPServerRequestPart? {
        guard !discardingInput, let part = held.first else { return nil }
        if case .head = part, phase != .idle || !isWritable { return nil }
        held.removeFirst()
        switch part {
        case .head: heldRequests -= 1
        case .body(let body): heldBytes -= body.readableBytes
        case .end: break
        }
        return part
    }

    /// An upgrade request has ended and its answer is not a 101 yet: nothing more is read.
    var awaitingUpgrade: Bool { phase == .busy && isUpgradeRequest && requestEnded }

    /// How many requests and bytes are held, for logs.
    var heldSummary: (requests: Int, bytes: Int) { (heldRequests, heldBytes) }

    /// NIO asks to read. Reading waits while the exchange is busy with what was read,
    /// while parts are held, and, between requests, while the client has not taken
    /// the answers so far: a client that never reads costs its socket buffers and at
    /// most one write buffer's worth of answers. After an upgrade request's end, reading
    /// waits for the 101 (which hands the connection over and reads) or the end of the
    /// answer (the connection's last): the decoder parses nothing after such a request,
    /// so whatever it read would pile up in its buffer, unbounded, while a streamed
    /// answer (`/events`, logs that follow) goes on. Returns whether to read now.
    mutating func readRequested(isWritable: Bool) -> Bool {
        if readsPaused || !held.isEmpty || phase == .idle && !isWritable || awaitingUpgrade {
            readPending = true
            return false
        }
        return true
    }

    /// After the held parts that could go have been served: whether the read held
    /// back meanwhile is to be issued now.
    mutating func readAfterServingHeld(isWritable: Bool) -> Bool {
        guard held.isEmpty, !readsPaused, !awaitingUpgrade, readPending, phase != .idle || isWritable else { return false }
        readPending = false
        return true
    }

    mutating func pauseReads() {
        readsPaused = true
    }

    enum ResumeAction: Equatable {
        /// Serve the held parts (reading resumes once none are left).
        case serveHeld
        /// Issue the read held back.
        case read
        case none
    }

    /// Reading may go on. While held parts are being served, the loop serving them
    /// goes on and issues the read held back at its end.
    mutating func resumeReads(whileServingHeld: Bool = false) -> ResumeAction {
        readsPaused = false
        if !held.isEmpty { return .serveHeld }
        if whileServingHeld || awaitingUpgrade { return .none }
        if readPending {
            readPending = false
            return .read
        }
        return .none
    }

    // MARK: Requests

    /// A request head is to be served. Returns the head framed the one way it is passed
    /// on, or the framing problem that makes its body's end unknowable (the request is
    /// then refused and nothing after it is read as a request).
    mutating func beginRequest(_ head: HTTPRequestHead) -> Result<HTTPRequestHead, MessageFraming.Problem> {
        phase = .busy
        isUpgradeRequest = head.method == .CONNECT || head.headers.contains(name: "upgrade")
        closeAfterResponse = quiescing || !head.isKeepAlive || isUpgradeRequest
        droppedBodyBytes = 0
        receivedRequest = true
        requestEnded = false
        isHeadRequest = head.method == .HEAD
        switch MessageFraming.requestBody(of: head) {
        case .failure(let problem):
            requestBodyOpen = false
            closeAfterResponse = true
            return .failure(problem)
        case .success(let body):
            requestBodyOpen = body != .none && body != .length(0)
            var head = head
            head.headers = MessageFraming.normalized(head.headers, body: body)
            return .success(head)
        }
    }

    /// The current request's end arrived.
    mutating func endRequest() {
        requestBodyOpen = false
        requestEnded = true
    }

    /// The answer being written must be the connection's last.
    mutating func closeAfterThisResponse() {
        closeAfterResponse = true
    }

    enum DropAction: Equatable {
        case none
        /// Past the drop limit with the answer written: close now.
        case close
    }

    /// Body bytes nobody reads were dropped. Past `dropLimit` the connection is not
    /// kept: closed now if the answer is written, else once it is.
    mutating func droppedBody(_ count: Int, answered: Bool) -> DropAction {
        let wasOver = droppedBodyBytes > Self.dropLimit
        droppedBodyBytes += count
        guard !wasOver, droppedBodyBytes > Self.dropLimit else { return .none }
        closeAfterResponse = true
        return answered ? .close : .none
    }

    /// The dropped body is already past the limit: the answer ends the connection.
    var droppedPastLimit: Bool { droppedBodyBytes > Self.dropLimit }

    enum FinishAction: Equatable {
        case close
        /// Serve what is held, or read the next request.
        case next
    }

    /// The exchange is done: the answer is written and the request has ended.
    mutating func finishExchange() -> FinishAction {
        phase = .idle
        guard closeAfterResponse || inputClosed && held.isEmpty else { return .next }
        // The close takes a moment (TLS's close_notify), while the decoder goes on with
        // what it has: a request behind `Connection: close`, or behind a refusal whose
        // body's end was unknowable, must not be served meanwhile.
        discardingInput = true
        dropHeld()
        return .close
    }

    /// The exchange failed before answering, the request having ended: the connection
    /// goes on only if nothing asks for a close.
    var canAnswerAndGoOn: Bool { requestEnded && !closeAfterResponse }

    /// The exchange failed and answered; the connection waits for the next request.
    mutating func abandonExchange() {
        phase = .idle
    }

    mutating func upgraded() {
        phase = .upgraded
    }

    // MARK: Connection events

    enum QuiesceAction: Equatable {
        case none
        case closeNow
        /// Accepted just before shutdown: its first request may be on its way.
        case closeIfStillIdleAfterGrace
    }

    /// The agent is stopping: a busy connection closes after its answer, an idle one
    /// now; one that has not sent its first request yet gets a moment to send it.
    mutating func quiesce() -> QuiesceAction {
        quiescing = true
        closeAfterResponse = true
        dropHeld()
        guard phase == .idle else { return .none }
        guard receivedRequest else { return .closeIfStillIdleAfterGrace }
        discardingInput = true
        return .closeNow
    }

    enum InputClosedAction: Equatable {
        case closeNow
        /// Let the exchange decide: it answers what was asked, then the connection closes.
        case tellExchange
    }

    mutating func closeInput() -> InputClosedAction {
        inputClosed = true
        return phase == .idle ? .closeNow : .tellExchange
    }

    /// The channel went away.
    mutating func closed() {
        dropHeld()
        requestBodyOpen = false
        phase = .idle
    }

    private mutating func dropHeld() {
        held.removeAll()
        heldRequests = 0
        heldBytes = 0
    }
}
