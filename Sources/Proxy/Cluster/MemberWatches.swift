import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Long polls that keep a fan-out's kept member answers (`MemberAnswerCache`) known to
/// be current, so that a fleet request asks no member whose answer it already knows.
///
/// Once a fan-out has had a member's answer to the same request twice within
/// `idleLimit` (a query asked once, by a person at a terminal, costs nothing after),
/// the asking agent watches that member's answer to it: it asks again with the kept
/// tag in `If-None-Match` and `Prefer: wait=N` (`wait`, 2 s unless configured), and the
/// member holds its `304` until its answer changes or the wait ends. Each answer confirms the kept one (a `304`) or replaces it (a `200`,
/// checked as any member's answer is), and the next poll goes out at once.
///
/// While the member was heard from within `wait + grace`, a fan-out takes the kept
/// answer (`current`) without asking. A member that falls silent (a cut link, a
/// stopped agent) is overdue after that long and is asked directly again, so it is
/// named as not answering within `wait + grace` plus the member timeout: the price of
/// not asking every member on every request. A poll that fails ends its watch; the
/// next fan-out asks the member directly and watches it anew.
///
/// Bounded: at most `maximumWatches` at once; a watch no fan-out has used for
/// `idleLimit` ends; polls to one member go out at most every `minimumGap` (a member
/// whose answer changes on every poll) and, to one that answers a held poll at once
/// (it does not hold), once per `wait`.
public final class MemberWatches: Sendable {
    public typealias Key = MemberAnswerCache.Key

    /// How long a member is asked to hold an unchanged answer.
    public let wait: TimeAmount
    /// How late a held answer may come before the member counts as not heard from.
    public let grace: TimeAmount
    public let idleLimit: TimeAmount
    public let minimumGap: TimeAmount
    public let maximumWatches: Int
    /// The answers the watches keep current: the fan-out's own.
    public let answers: MemberAnswerCache

    private struct Watch {
        var number: UInt64
        /// The tag of the answer the member last confirmed, and when.
        var confirmedTag: String
        var confirmedAt: NIODeadline
        var lastUsed: NIODeadline
    }

    private struct State {
        var watches: [Key: Watch] = [:]
        /// Answers had once, not watched yet, and when.
        var answeredOnce: [Key: NIODeadline] = [:]
        var nextNumber: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    /// What an agent's fleet route watches its members with.
    public static let defaultWait = TimeAmount.seconds(2)
    public static let defaultGrace = TimeAmount.seconds(1)

    public init(
        answers: MemberAnswerCache, wait: TimeAmount = defaultWait, grace: TimeAmount = defaultGrace, idleLimit: TimeAmount = .seconds(30),
        minimumGap: TimeAmount = .milliseconds(250), maximumWatches: Int = 256
    ) {
        self.answers = answers
        self.wait = wait
        self.grace = grace
        self.idleLimit = idleLimit
        self.minimumGap = minimumGap
        self.maximumWatches = maximumWatches
    }

    public var count: Int { state.withLockedValue { $0.watches.count } }

    /// The kept answer for `key` when its member confirmed it within `wait + grace`
    /// (the watch is live); nil otherwise, and the member is to be asked.
    public func current(_ key: Key, now: NIODeadline = .now()) -> CollectedResponse? {
        let confirmed: String? = state.withLockedValue { state in
            guard var watch = state.watches[key], now - watch.confirmedAt <= wait + grace else { return nil }
            watch.lastUsed = now
            state.watches[key] = watch
            return watch.confirmedTag
        }
        guard let confirmed, let entry = answers.entry(for: key), entry.entityTag == confirmed else { return nil }
        return entry.answer
    }

    /// Watches `key`'s member, which just answered `head` (targeted and signed for it)
    /// through `pool`, when it answered it once before within `idleLimit`, unless it is
    /// watched already, there is no kept answer for it, or `maximumWatches` are. Polls
    /// run on `eventLoop`; each may take `limit` bytes and `wait` plus `timeout`. Call
    /// on `eventLoop`.
    public func watch(_ key: Key, head: HTTPRequestHead, pool: UpstreamPool, on eventLoop: EventLoop, limit: Int, timeout: TimeAmount) {
        eventLoop.assertInEventLoop()
        guard let kept = answers.entry(for: key) else { return }
        let now = NIODeadline.now()
        let number: UInt64? = state.withLockedValue { state in
            guard state.watches[key] == nil, state.watches.count < maximumWatches else { return nil }
            guard let once = state.answeredOnce.removeValue(forKey: key), now - once <= idleLimit else {
                if state.answeredOnce.count >= 4 * maximumWatches {
                    state.answeredOnce = state.answeredOnce.filter { now - $0.value <= idleLimit }
                    if state.answeredOnce.count >= 4 * maximumWatches { state.answeredOnce.removeAll() }
                }
                state.answeredOnce[key] = now
                return nil
            }
            let number = state.nextNumber
            state.nextNumber += 1
            state.watches[key] = Watch(number: number, confirmedTag: kept.entityTag, confirmedAt: now, lastUsed: now)
            return number
        }
        guard let number else { return }
        let poll = Poll(watches: self, key: key, number: number, head: head, pool: pool, eventLoop: eventLoop, limit: limit, timeout: timeout)
        poll.send()
    }

    /// Whether watch `number` of `key` still runs and has been used within `idleLimit`;
    /// ends it when it has not.
    fileprivate func continues(_ key: Key, number: UInt64, now: NIODeadline) -> Bool {
        state.withLockedValue { state in
            guard let watch = state.watches[key], watch.number == number else { return false }
            guard now - watch.lastUsed <= idleLimit else {
                state.watches.removeValue(forKey: key)
                return false
            }
            return true
        }
    }

    fileprivate func confirm(_ key: Key, number: UInt64, tag: String, at now: NIODeadline) {
        state.withLockedValue { state in
            guard var watch = state.watches[key], watch.number == number else { return }
            watch.confirmedTag = tag
            watch.confirmedAt = now
            state.watches[key] = watch
        }
    }

    fileprivate func end(_ key: Key, number: UInt64) {
        state.withLockedValue { state in
            if state.watches[key]?.number == number { state.watches.removeValue(forKey: key) }
        }
    }
}

/// One watch's polls, one at a time, on its event loop.
private final class Poll {
    let watches: MemberWatches
    let key: MemberWatches.Key
    let number: UInt64
    let head: HTTPRequestHead
    let pool: UpstreamPool
    let eventLoop: EventLoop
    let limit: Int
    let timeout: TimeAmount
    /// Ends the poll in flight when it has not ended within `wait` and the member timeout.
    private var timer: Scheduled<Void>?

    init(
        watches: MemberWatches, key: MemberWatches.Key, number: UInt64, head: HTTPRequestHead, pool: UpstreamPool, eventLoop: EventLoop,
        limit: Int, timeout: TimeAmount
    ) {
        self.watches = watches
        self.key = key
        self.number = number
        self.head = head
        self.pool = pool
        self.eventLoop = eventLoop
        self.limit = limit
        self.timeout = timeout
    }

    func send() {
        let sent = NIODeadline.now()
        guard watches.continues(key, number: number, now: sent), let kept = watches.answers.entry(for: key) else {
            return watches.end(key, number: number)
        }
        var head = head
        head.headers.replaceOrAdd(name: "If-None-Match", value: kept.entityTag)
        head.headers.replaceOrAdd(name: "Prefer", value: "wait=\(watches.wait.nanoseconds / 1_000_000_000)")
        let exchange = pool.startCollecting(head, on: eventLoop, limit: limit, statusOnly: true) { result in
            self.answered(result, asked: kept.entityTag, sent: sent)
        }
        guard !exchange.isFinished else { return }
        timer = eventLoop.assumeIsolated().scheduleTask(in: watches.wait + timeout) {
            exchange.cancel(CollectError.timedOut)
        }
    }

    private func answered(_ result: Result<CollectedResponse, Error>, asked tag: String, sent: NIODeadline) {
        timer?.cancel()
        timer = nil
        let now = NIODeadline.now()
        var next = sent + watches.minimumGap
        var changed = false
        switch result {
        case .success(let answer) where answer.head.status == .notModified:
            watches.confirm(key, number: number, tag: tag, at: now)
        case .success(var answer) where answer.head.status == .ok:
            answer.checkObject()
            watches.answers.keep(answer, for: key)
            // Kept only when it is one object with a usable tag; else the watch ends.
            guard let kept = watches.answers.entry(for: key), let newTag = answer.head.headers.first(name: "ETag"), kept.entityTag == newTag else {
                return watches.end(key, number: number)
            }
            watches.confirm(key, number: number, tag: newTag, at: now)
            changed = newTag != tag
        default:
            return watches.end(key, number: number)
        }
        // Unchanged and answered at once: the member does not hold (an agent without
        // long polls, or one that ignores the condition), so it is asked once per wait.
        if !changed, now - sent < .nanoseconds(watches.wait.nanoseconds / 2) { next = sent + watches.wait }
        guard next > now else { return send() }
        eventLoop.assumeIsolated().scheduleTask(deadline: next) { self.send() }
    }
}
