/// The headers of one part of a multipart/form-data body, with the parameters of its
/// Content-Disposition read out: the form field `name` and, for a file, its `filename`.
struct MultipartPartHeaders: Equatable, Sendable {
    /// Every header of the part, by lowercased name (a repeated header keeps the last).
    let fields: [String: String]
    /// The form field name (`Content-Disposition: form-data; name="..."`).
    let name: String?
    /// The uploaded file's name as the client sent it, unvalidated; nil for plain fields.
    /// `filename*` (RFC 5987, UTF-8) wins over `filename` when both are present.
    let filename: String?
    /// The part's Content-Type, if it has one.
    var contentType: String? { fields["content-type"] }
}
