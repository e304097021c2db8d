import Glibc
import HostFS
import NIOHTTP1

/// The answer to a file download, with the behaviour of Go's `http.ServeContent`:
/// `Last-Modified` and `If-Modified-Since` (304), one `Range` (206, or 416 when it
/// starts past the end), `Content-Type` from the extension, and an attachment
/// `Content-Disposition`. Several ranges, or a malformed one, get the whole file (a
/// server may ignore Range), as does an If-Modified-Since that is not a date.
enum FileDownload {
    static func response(for file: ReadableFile, requestHeaders: HTTPHeaders) -> AgentResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Last-Modified", value: HTTPDate.format(file.modificationTime))
        headers.add(name: "Accept-Ranges", value: "bytes")
        headers.add(name: "Content-Type", value: MediaType.forFileName(file.name))
        headers.add(name: "Content-Disposition", value: contentDisposition(file.name))

        if let since = requestHeaders.first(name: "If-Modified-Since").flatMap(HTTPDate.parse),
           requestHeaders.first(name: "If-None-Match") == nil, file.modificationTime <= since {
            close(file.descriptor)
            headers.remove(name: "Content-Type")
            return AgentResponse(status: .notModified, headers: headers)
        }
        var range: Range<Int64> = 0..<file.size
        var status = HTTPResponseStatus.ok
        if let header = requestHeaders.first(name: "Range") {
            switch ByteRange.parse(header, size: file.size) {
            case .whole:
                break
            case .unsatisfiable:
                close(file.descriptor)
                headers.replaceOrAdd(name: "Content-Range", value: "bytes */\(file.size)")
                let error = AgentError(.rangeNotSatisfiable, "Requested range not satisfiable", details: "the file has \(file.size) bytes")
                var response = AgentResponse.error(error)
                response.headers.add(contentsOf: headers.filter { $0.name != "Content-Type" })
                return response
            case .part(let part):
                range = part
                status = .partialContent
                headers.add(name: "Content-Range", value: "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(file.size)")
            }
        }
        return AgentResponse(status: status, headers: headers, file: file, range: range)
    }

    /// `attachment; filename="…"` with an RFC 5987 `filename*` for names that are not
    /// plain ASCII, so browsers keep the real name.
    static func contentDisposition(_ name: String) -> String {
        let plain = String(name.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && scalar.value >= 0x20 && scalar != "\"" && scalar != "\\" ? Character(scalar) : "_"
        })
        var value = "attachment; filename=\"\(plain)\""
        if plain != name {
            let encoded = name.utf8.map { byte -> String in
                let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
                return unreserved ? String(UnicodeScalar(byte)) : "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }.joined()
            value += "; filename*=UTF-8''\(encoded)"
        }
        return value
    }
}

/// `Content-Type` from a file name's extension, for the types a host or volume
/// browser meets most; anything else is `application/octet-stream`.
enum MediaType {
    private static let byExtension: [String: String] = [
        "txt": "text/plain; charset=utf-8", "log": "text/plain; charset=utf-8", "conf": "text/plain; charset=utf-8",
        "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
        "js": "text/javascript; charset=utf-8", "json": "application/json", "xml": "text/xml; charset=utf-8",
        "yaml": "application/yaml", "yml": "application/yaml", "sh": "text/x-sh; charset=utf-8",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "svg": "image/svg+xml",
        "webp": "image/webp", "ico": "image/vnd.microsoft.icon", "pdf": "application/pdf",
        "zip": "application/zip", "gz": "application/gzip", "tgz": "application/gzip", "tar": "application/x-tar",
        "bz2": "application/x-bzip2", "xz": "application/x-xz", "zst": "application/zstd",
        "wasm": "application/wasm", "mp4": "video/mp4", "mp3": "audio/mpeg",
    ]

    static func forFileName(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "application/octet-stream" }
        return byExtension[name[name.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
