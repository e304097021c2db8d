import FuzzSupport
import FoundationEssentials
import Proxy

// What the membership probe reads from the network: a peer agent's answer to
// GET /v2/cluster/member (MemberInfo) and the local engine's GET /info (NodeIdentity).
// Input: the response body, read by both.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let body = FuzzInput(data, size).bytes
    if let info = try? MemberInfo(probeAnswer: body) {
        if let member = try? ClusterMember(answer: info, host: "10.0.0.1", port: 9001) {
            require(member.nodeName == info.NodeName && member.version == info.Version ?? "", "the member is not the one that answered")
            require(member.isManager == (info.NodeRole == "manager"), "role \(info.NodeRole.debugDescription) read as \(member.role)")
            // What goes into headers and log lines as it is: nothing to escape.
            require(PeerText.quoted(member.nodeName, limit: 253) == "\"\(member.nodeName)\"", "node name \(member.nodeName.debugDescription) needs escaping")
            require(member.role == info.NodeRole, "role \(info.NodeRole.debugDescription) accepted")
        }
        // What a peer sends is what this agent itself would send for the same member.
        let again = try? MemberInfo(probeAnswer: JSONEncoder().encode(info))
        require(again == info, "\(info) did not survive encoding")
    }
    if let identity = try? NodeIdentity(engineInfo: body) {
        require(!identity.isManager || identity.role == "manager", "a manager reported as \(identity.role)")
    }
    return 0
}

runLibFuzzer(testOneInput)
