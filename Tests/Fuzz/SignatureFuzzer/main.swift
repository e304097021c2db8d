import ASCIIText
import Crypto
import FuzzSupport
import Proxy
@testable import Agent

// The signature headers: SignatureVerifier.verify on an X-PortainerAgent-PublicKey and an
// X-PortainerAgent-Signature value, and the hex and base64 codecs under them. Input: lines
// "public key", "signature", and optionally the agent's secret.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let publicKey = input.text()
    let signature = input.text()
    let secret = input.isEmpty ? nil : input.text()

    // A fresh verifier each time, so that one input never depends on the ones before.
    let verifier = SignatureVerifier(secret: secret)
    var accepted = false
    do {
        try verifier.verify(publicKey: publicKey, signature: signature)
        accepted = true
    } catch {}
    if accepted {
        // Only a pair that really verifies is accepted, and with trust on first use its key
        // is the one now associated; asking again is answered from the cache, the same way.
        let digest = Insecure.MD5.hash(data: Array((secret ?? SignatureVerifier.defaultMessage).utf8))
        require(SignatureVerifier.isValid(publicKeyHex: publicKey.lowercased(), signatureBase64: signature, digest: digest),
                "accepted a pair that does not verify")
        if secret == nil { require(verifier.associatedKey == publicKey.lowercased(), "accepted without associating the key") }
        require(verifier.cachedPairCount == 1, "a verified pair was not remembered")
        require((try? verifier.verify(publicKey: publicKey, signature: signature)) != nil, "a remembered pair was refused")
    } else {
        require(verifier.associatedKey == nil, "a refused pair associated its key")
        require(verifier.cachedPairCount == 0, "a refused pair was remembered")
    }
    checkCodecs(publicKey, signature)
    return 0
}

/// Hex and unpadded base64 decode what they encode, and hex decoding is exact.
func checkCodecs(_ hexText: String, _ base64Text: String) {
    if let bytes = HexEncoding.decode(hexText) {
        require(HexEncoding.encode(bytes) == hexText.lowercased(), "hex \(hexText.debugDescription) did not round-trip")
    }
    if let bytes = Base64Unpadded.decode(base64Text) {
        require(Base64Unpadded.decode(Base64Unpadded.encode(bytes)) == bytes, "base64 of \(base64Text.debugDescription) did not round-trip")
    }
    // Any bytes, encoded, decode to themselves.
    let raw = Array(base64Text.utf8)
    require(HexEncoding.decode(HexEncoding.encode(raw)) == raw, "hex encoding lost bytes")
    require(Base64Unpadded.decode(Base64Unpadded.encode(raw)) == raw, "base64 encoding lost bytes")
}

runLibFuzzer(testOneInput)
