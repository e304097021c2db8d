import ASCIIText

/// The words another agent sends about itself (node name, role, version) are
/// checked before any use: they end up in response headers, log lines and target
/// lookups, so a peer is held to what a host name or a version can be.
public enum PeerText {
    /// A host name: dot-separated labels of 1 to 63 ASCII letters, digits, '-' or
    /// '_' (Docker allows it in node names), each starting with a letter or digit;
    /// 253 characters at most. Nothing in it needs escaping in a header or a log.
    public static func isNodeName(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...253).contains(bytes.count) else { return false }
        var labelLength = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { return false }
                labelLength = 0
                continue
            }
            let isAlphanumeric = ASCII.isAlphanumeric(byte)
            guard isAlphanumeric || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") else { return false }
            guard labelLength > 0 || isAlphanumeric else { return false }
            labelLength += 1
            guard labelLength <= 63 else { return false }
        }
        return labelLength > 0
    }

    /// A software version as agents write it (`1.4.0`, `2.19.4-rc1+abc`): 1 to 64
    /// ASCII letters, digits, '.', '-', '+' or '_'.
    public static func isVersion(_ text: String) -> Bool {
        let bytes = text.utf8
        return (1...64).contains(bytes.count) && bytes.allSatisfy {
            ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "_")
        }
    }

    /// A value a peer sent, made safe for one log line: printable ASCII as it is,
    /// anything else (CR, LF, other controls, non-ASCII) as `\u{XX}`, quoted, and cut
    /// to `limit` characters of input with `…` after.
    public static func quoted(_ text: String, limit: Int = 64) -> String {
        var out = "\""
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else {
                out += "…"
                break
            }
            count += 1
            switch scalar.value {
            case 0x22, 0x5C: out += "\\" + String(scalar)
            case 0x20..<0x7F: out.unicodeScalars.append(scalar)
            default: out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out + "\""
    }
}
