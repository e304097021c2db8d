import HostFS
import NIOHTTP1

/// The file browser behind `/browse/*`: finds the root a request names (a volume's
/// `_data`, or the host root with host management on), and runs ls, get, delete and
/// rename on it. Every call blocks on the filesystem: run it on the thread pool.
struct FileBrowser: Sendable {
    let hostManagement: Bool
    let hostRoot: String
    let volumes: VolumeRoot

    init(configuration: AgentConfiguration) {
        hostManagement = configuration.hostManagement
        hostRoot = configuration.hostRoot
        volumes = VolumeRoot(path: configuration.volumesRoot)
    }

    /// The volume a request names, with the folder its engine keeps it in when the
    /// engine said (`VolumeMountpoints`).
    struct RequestedVolume: Sendable {
        let name: String
        let mountpoint: String?
    }

    /// A root opened for one request and how to read the client's paths under it.
    struct Location {
        let root: ConfinedRoot
        /// Volume paths are relative to the volume; host paths arrive under `/host`.
        let isHost: Bool

        func path(_ clientPath: String?) throws(AgentError) -> ConfinedPath {
            guard let clientPath, !clientPath.isEmpty else {
                throw AgentError(.badRequest, "The path query parameter is required")
            }
            do {
                return isHost ? try HostPathMapping.portainer.confinedPath(for: clientPath) : try ConfinedPath(clientPath)
            } catch {
                throw AgentError(error)
            }
        }
    }

    /// A volume is opened where its engine keeps it (beneath the host root with host
    /// management: the agent sees the host's `/` there), else, when the engine did not
    /// say or that folder is not in the agent's view, in the volumes root.
    func locate(volumeID volume: RequestedVolume?) throws(AgentError) -> Location {
        if let volume {
            do {
                if let mountpoint = volume.mountpoint {
                    do {
                        let root = try VolumeRoot.open(
                            volume: volume.name, mountpoint: mountpoint, hostRoot: hostManagement ? hostRoot : nil, resolution: volumes.resolution)
                        return Location(root: root, isHost: false)
                    } catch .notFound {}
                }
                return Location(root: try volumes.open(volume: volume.name), isHost: false)
            } catch {
                throw AgentError(error)
            }
        }
        guard hostManagement else { throw RouteTable.hostManagementDisabled }
        do {
            return Location(root: try ConfinedRoot(path: hostRoot), isHost: true)
        } catch {
            throw AgentError(error)
        }
    }

    /// One `ls` entry: the original's four fields, then additions.
    struct Entry: Encodable {
        var Name: String
        var Size: Int64
        var Dir: Bool
        var ModTime: Int64
        var Mode: UInt32
        var Kind: String
        var SymlinkTarget: String?
    }

    func list(volumeID: RequestedVolume?, path: String?) throws(AgentError) -> AgentResponse {
        let location = try locate(volumeID: volumeID)
        let directory = try location.path(path)
        let entries: [DirectoryEntry]
        do {
            entries = try location.root.list(directory)
        } catch {
            throw AgentError(error)
        }
        let body = entries.map {
            Entry(Name: $0.name, Size: $0.size, Dir: $0.isDirectory, ModTime: $0.modificationTime,
                  Mode: $0.mode, Kind: $0.kind.rawValue, SymlinkTarget: $0.symlinkTarget)
        }
        do {
            return .json(.ok, try AgentJSON.encode(body))
        } catch {
            throw AgentError(.internalServerError, "\(error)")
        }
    }

    func delete(volumeID: RequestedVolume?, path: String?) throws(AgentError) -> AgentResponse {
        let location = try locate(volumeID: volumeID)
        let target = try location.path(path)
        do {
            try location.root.remove(target)
        } catch {
            throw AgentError(error)
        }
        return .empty(.noContent)
    }

    /// `PUT /browse/rename` with `{"CurrentFilePath": …, "NewFilePath": …}`. An existing
    /// destination is a 409: a rename never silently destroys a file.
    struct RenameRequest: Decodable {
        var CurrentFilePath: String
        var NewFilePath: String
    }

    func rename(volumeID: RequestedVolume?, body: [UInt8]) throws(AgentError) -> AgentResponse {
        let request: RenameRequest
        do {
            request = try AgentJSON.decode(RenameRequest.self, from: body)
        } catch {
            throw AgentError(.badRequest, "Invalid JSON body: expected {\"CurrentFilePath\": string, \"NewFilePath\": string}")
        }
        let location = try locate(volumeID: volumeID)
        let source = try location.path(request.CurrentFilePath)
        let destination = try location.path(request.NewFilePath)
        do {
            try location.root.rename(source, to: destination)
        } catch {
            throw AgentError(error)
        }
        return .empty(.noContent)
    }

    /// Opens the file for `GET /browse/get` and decides the answer (200, 206, 304, 416)
    /// from the request's conditional and range headers.
    func download(volumeID: RequestedVolume?, path: String?, requestHeaders: HTTPHeaders) throws(AgentError) -> AgentResponse {
        let location = try locate(volumeID: volumeID)
        let target = try location.path(path)
        let file: ReadableFile
        do {
            file = try location.root.openForReading(target)
        } catch {
            throw AgentError(error)
        }
        return FileDownload.response(for: file, requestHeaders: requestHeaders)
    }
}
