import Logging
import NIOCore

/// The two deadlines a client must meet: a complete request head within the header
/// timeout of the connection becoming idle, and, while the agent reads a request
/// body, new body bytes within the body timeout. Time the agent itself holds reads
/// (waiting for the engine, the disk, a peer) does not count.
///
/// Each timer is armed at most once per timeout, not per request: when it fires it
/// checks the latest activity and re-arms for what is left. Times come from the event
/// loop's clock, so an `EmbeddedEventLoop` drives them in tests.
final class RequestDeadlines {
    private let eventLoop: EventLoop
    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    private let logger: Logger
    private let peer: SocketAddress?
    private let status: () -> ConnectionStateMachine?
    private let expired: () -> Void
    private var headerTimer: Scheduled<Void>?
    private var bodyTimer: Scheduled<Void>?
    private var idleSince: NIODeadline
    private var bodyProgress: NIODeadline

    /// `status` is the connection's state, nil once it is gone; `expired` closes it.
    init(
        eventLoop: EventLoop, headerTimeout: TimeAmount, bodyTimeout: TimeAmount, logger: Logger, peer: SocketAddress?,
        status: @escaping () -> ConnectionStateMachine?, expired: @escaping () -> Void
    ) {
        self.logger = logger
        self.peer = peer
        self.eventLoop = eventLoop
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.status = status
        self.expired = expired
        self.idleSince = eventLoop.now
        self.bodyProgress = eventLoop.now
    }

    /// The connection started waiting for a request head.
    func becameIdle() {
        idleSince = eventLoop.now
        armHeaderTimer()
    }

    /// A request body started, a byte of it arrived, or reading it resumed.
    func bodyProgressed(starting: Bool = false) {
        bodyProgress = eventLoop.now
        if starting { armBodyTimer() }
    }

    func cancel() {
        headerTimer?.cancel()
        headerTimer = nil
        bodyTimer?.cancel()
        bodyTimer = nil
    }

    private func armHeaderTimer() {
        guard headerTimer == nil else { return }
        headerTimer = eventLoop.assumeIsolated().scheduleTask(deadline: idleSince + headerTimeout) { [weak self] in
            guard let self else { return }
            self.headerTimer = nil
            guard let status = self.status(), status.isIdle else { return }
            guard self.eventLoop.now >= self.idleSince + self.headerTimeout else { return self.armHeaderTimer() }
            self.expire("sent no request head in time")
        }
    }

    private func armBodyTimer() {
        guard bodyTimer == nil else { return }
        bodyTimer = eventLoop.assumeIsolated().scheduleTask(deadline: bodyProgress + bodyTimeout) { [weak self] in
            guard let self else { return }
            self.bodyTimer = nil
            guard let status = self.status(), status.requestBodyOpen else { return }
            if status.readsPaused { self.bodyProgress = self.eventLoop.now }
            guard self.eventLoop.now >= self.bodyProgress + self.bodyTimeout else { return self.armBodyTimer() }
            self.expire("stopped sending its request body")
        }
    }

    private func expire(_ what: String) {
        logger.debug("closing a connection that \(what)", metadata: ["peer": "\(peer.map { "\($0)" } ?? "?")"])
        expired()
    }
}
