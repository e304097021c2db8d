import Glibc
import HostFS

extension AgentError {
    /// The status each HostFS failure means for the client. Messages name only the
    /// client's own paths.
    init(_ error: HostFSError) {
        switch error {
        case .invalidArgument, .unfollowableLink, .notADirectory, .isADirectory, .specialFile:
            self.init(.badRequest, error.description)
        case .notFound:
            self.init(.notFound, error.description)
        case .alreadyExists:
            self.init(.conflict, error.description)
        case .forbidden, .permissionDenied:
            self.init(.forbidden, error.description)
        case .io(_, _, let code) where code == ENOSPC || code == EDQUOT:
            self.init(.insufficientStorage, error.description)
        case .io:
            self.init(.internalServerError, error.description)
        case .tooManyEntries, .listingTooLarge:
            self.init(.unprocessableEntity, error.description)
        }
    }
}
