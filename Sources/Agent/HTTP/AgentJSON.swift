import FoundationEssentials

/// The agent's one JSON set-up, for every body it writes and reads.
package enum AgentJSON {
    package static func encode<Value: Encodable>(_ value: Value, pretty: Bool = false, sortedKeys: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.withoutEscapingSlashes]
        if sortedKeys { encoder.outputFormatting.insert(.sortedKeys) }
        return Array(try encoder.encode(value))
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from bytes: some Collection<UInt8>) throws -> Value {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
