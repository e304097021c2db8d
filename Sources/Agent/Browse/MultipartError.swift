/// Why a multipart/form-data body (or its Content-Type) was refused. Every case is the
/// client's fault, so the HTTP layer answers 400 with `description` as the message.
enum MultipartError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The Content-Type is not `multipart/form-data`.
    case notMultipartFormData(contentType: String)
    /// The Content-Type has no `boundary` parameter.
    case missingBoundary
    /// The boundary is empty, longer than 70 characters or has characters RFC 2046 forbids.
    case invalidBoundary(String)
    /// A boundary line is followed by something other than `--` or a line end.
    case malformedDelimiter
    /// A part header line is not `Name: value`, or its Content-Disposition cannot be read.
    case malformedHeader(String)
    /// A part's header block is larger than the parser keeps in memory.
    case headersTooLarge(limit: Int)
    /// The body ended before its closing boundary: a cut-off upload.
    case truncated

    var description: String {
        switch self {
        case .notMultipartFormData(let contentType):
            return "expected a multipart/form-data body, got Content-Type \"\(contentType)\""
        case .missingBoundary:
            return "the multipart Content-Type has no boundary parameter"
        case .invalidBoundary(let boundary):
            return "invalid multipart boundary \"\(boundary)\""
        case .malformedDelimiter:
            return "malformed multipart body: a boundary is followed by unexpected bytes"
        case .malformedHeader(let line):
            return "malformed multipart part header: \(line)"
        case .headersTooLarge(let limit):
            return "multipart part headers larger than \(limit) bytes"
        case .truncated:
            return "the multipart body ended before its closing boundary"
        }
    }
}
