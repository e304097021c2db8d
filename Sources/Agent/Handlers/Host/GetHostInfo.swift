import Hardware
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Proxy
#if canImport(Glibc)
import Glibc
#endif

/// `GET /host/info`: this node's hardware (PCI devices, physical disks, GPUs, USB,
/// network interfaces, CPU and memory, DMI, mounted filesystems), with
/// `CAP_HOST_MANAGEMENT=1`. `?filters=` (Docker's JSON form) narrows it on this node
/// (`Hardware/HostInfoFilter`); a bad one is a 400 naming what is wrong. Every answer
/// carries an `ETag`, and a request whose `If-None-Match` names it gets a `304`
/// (`HostInfoAnswers`): what the agent that asks for the fleet's inventory sends.
struct GetHostInfo: AgentHandler {
    let hostInfo: HostInfoCache?
    /// The answers encoded so far; present with `hostInfo`.
    let answers: HostInfoAnswers?
    let threadPool: NIOThreadPool
    /// Names this node for the `node` filter: the Swarm's name for it, else the configured one, else the host name.
    let cluster: ClusterMembership?
    let configuredNodeName: String?

    func respond(to request: AgentRequest, on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard hostInfo != nil, answers != nil else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        let filter: HostInfoFilter
        do {
            filter = try Self.filter(uri: request.head.uri)
        } catch {
            return eventLoop.makeSucceededFuture(.error(error))
        }
        let conditions = request.head.headers[canonicalForm: "If-None-Match"]
        let answer = self.answer(filter, conditions: conditions, on: eventLoop)
        guard let wait = Self.wait(request.head.headers), !conditions.isEmpty else { return answer }
        return answer.flatMap { response in
            guard response.status == .notModified else { return eventLoop.makeSucceededFuture(response) }
            return self.hold(filter, conditions: conditions, until: .now() + wait, on: eventLoop).map { response in
                var response = response
                response.headers.add(name: "Preference-Applied", value: "wait=\(wait.nanoseconds / 1_000_000_000)")
                return response
            }
        }
    }

    /// This node's answer, or a `304` when `conditions` name its tag.
    private func answer(_ filter: HostInfoFilter, conditions: [Substring], on eventLoop: EventLoop) -> EventLoopFuture<AgentResponse> {
        guard let hostInfo, let answers else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        let nodeName = self.nodeName
        // Warm and encoded already: answered here.
        if let snapshot = hostInfo.freshSnapshot(), let answer = answers.answer(for: snapshot, filter, nodeName: nodeName) {
            return eventLoop.makeSucceededFuture(Self.response(answer, conditions: conditions))
        }
        // A cache miss walks sysfs and udev: keep it off the event loop.
        return threadPool.runIfActive(eventLoop: eventLoop) {
            let snapshot = hostInfo.snapshot()
            let answer = try answers.answer(for: snapshot, filter, nodeName: nodeName) ?? answers.encode(snapshot, filter, nodeName: nodeName)
            return Self.response(answer, conditions: conditions)
        }.recover { error in
            .error(AgentError(.internalServerError, "Unable to read the host's hardware", details: "\(error)"))
        }
    }

    /// A long poll (`Prefer: wait=N` with `If-None-Match`, what an agent watching this
    /// node for the fleet route sends): the `304` is held until the answer changes
    /// (looked at again after every hardware event) or `deadline`, whichever is first.
    /// At most `HostInfoCache.maximumWaiters` requests are held at once; past that, the
    /// `304` goes at once, as to a plain conditional request.
    private func hold(_ filter: HostInfoFilter, conditions: [Substring], until deadline: NIODeadline, on eventLoop: EventLoop)
        -> EventLoopFuture<AgentResponse>
    {
        guard let hostInfo else { return eventLoop.makeSucceededFuture(.error(RouteTable.hostManagementDisabled)) }
        let woken = eventLoop.makePromise(of: Void.self)
        let fired = NIOLockedValueBox(false)
        let wake: @Sendable () -> Void = {
            guard fired.withLockedValue({ fired in defer { fired = true }; return !fired }) else { return }
            woken.succeed(())
        }
        guard let waiter = hostInfo.notifyOnInvalidation(wake) else { return self.answer(filter, conditions: conditions, on: eventLoop) }
        let timer = eventLoop.scheduleTask(deadline: deadline, wake)
        // Invalidated (or expired) between the answer and the wait: look again at once.
        if hostInfo.freshSnapshot() == nil { wake() }
        return woken.futureResult.flatMap {
            timer.cancel()
            hostInfo.cancelNotification(waiter)
            return self.answer(filter, conditions: conditions, on: eventLoop)
        }.flatMap { response in
            // A hardware event that left this answer as it was: held on, to the same deadline.
            guard response.status == .notModified, NIODeadline.now() < deadline else { return eventLoop.makeSucceededFuture(response) }
            return self.hold(filter, conditions: conditions, until: deadline, on: eventLoop)
        }
    }

    /// The longest a long poll is held, whatever it asks for.
    static let maximumWait = 10

    /// How long `Prefer: wait=N` (RFC 7240) asks a `304` to be held: N seconds, at most
    /// `maximumWait`; nil without it (or with `wait=0`, or a value that is not a number).
    static func wait(_ headers: HTTPHeaders) -> TimeAmount? {
        func trimmed(_ text: Substring) -> Substring {
            let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
            guard let first = text.firstIndex(where: { !isBlank($0) }), let last = text.lastIndex(where: { !isBlank($0) }) else { return "" }
            return text[first...last]
        }
        for preference in headers[canonicalForm: "Prefer"] {
            let token = preference.prefix { $0 != ";" }
            guard let equals = token.firstIndex(of: "="), trimmed(token[..<equals]).lowercased() == "wait" else { continue }
            var digits = trimmed(token[token.index(after: equals)...])
            if digits.count >= 2, digits.hasPrefix("\""), digits.hasSuffix("\"") { digits = digits.dropFirst().dropLast() }
            guard !digits.isEmpty, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
            // Overflow-proof: more than four digits is more than the most anyway.
            let seconds = digits.count > 4 ? maximumWait : min(Int(digits) ?? maximumWait, maximumWait)
            return seconds > 0 ? .seconds(Int64(seconds)) : nil
        }
        return nil
    }

    /// `answer`, or a `304` when the `If-None-Match` elements `conditions` name its tag.
    static func response(_ answer: HostInfoAnswers.Answer, conditions: [Substring]) -> AgentResponse {
        let tag: HTTPHeaders = ["ETag": answer.entityTag]
        if HostInfoAnswers.matches(conditions, entityTag: answer.entityTag) {
            return AgentResponse(status: .notModified, headers: tag)
        }
        var headers = tag
        headers.add(name: "Content-Type", value: "application/json")
        return AgentResponse(status: .ok, headers: headers, buffer: answer.body)
    }

    /// This node's name: the Swarm's name for it, else the configured one, else the host name.
    var nodeName: String { cluster?.localNode?.name ?? configuredNodeName ?? Self.hostName }

    static func filter(uri: String) throws(AgentError) -> HostInfoFilter {
        guard let query = QueryParameters(uri: uri) else {
            throw AgentError(.badRequest, "Malformed query string")
        }
        guard let json = query["filters"], !json.isEmpty else { return .none }
        do {
            return try HostInfoFilter(json: json)
        } catch {
            throw AgentError(.badRequest, error.description)
        }
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
