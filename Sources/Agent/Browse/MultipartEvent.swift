/// What the multipart parser found in the bytes it was fed, in body order.
/// A part is `partBegin`, any number of `body` chunks (possibly none), then `partEnd`;
/// `end` follows the closing boundary, after which nothing more is reported.
enum MultipartEvent: Equatable, Sendable {
    /// A new part starts; its headers are complete.
    case partBegin(MultipartPartHeaders)
    /// The next bytes of the current part's content (never empty; any size up to the
    /// chunk that was fed, so memory does not grow with the part).
    case body([UInt8])
    /// The current part's content is complete.
    case partEnd
    /// The closing boundary was read: the form is complete.
    case end
}
