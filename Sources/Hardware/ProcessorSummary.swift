/// The host's processors and memory, counted as `lscpu` counts them (sysfs CPU
/// topology of the online CPUs) and sized as `/proc/meminfo` says.
public struct ProcessorSummary: Sendable, Hashable, Codable {
    /// `model name` from `/proc/cpuinfo` (`AMD EPYC`, `Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz`).
    public var model: String?
    /// `vendor_id` from `/proc/cpuinfo` (`GenuineIntel`, `AuthenticAMD`).
    public var vendor: String?
    /// Distinct physical packages among the online CPUs.
    public var sockets: Int?
    /// Distinct physical cores among the online CPUs.
    public var cores: Int?
    /// Online logical CPUs (hardware threads).
    public var threads: Int
    /// NUMA nodes the kernel reports; nil without NUMA support in sysfs.
    public var numaNodes: Int?
    /// `MemTotal` in bytes.
    public var memory: UInt64?

    public init(
        model: String? = nil, vendor: String? = nil, sockets: Int? = nil, cores: Int? = nil, threads: Int,
        numaNodes: Int? = nil, memory: UInt64? = nil
    ) {
        self.model = model
        self.vendor = vendor
        self.sockets = sockets
        self.cores = cores
        self.threads = threads
        self.numaNodes = numaNodes
        self.memory = memory
    }

    enum CodingKeys: String, CodingKey {
        case model = "Model"
        case vendor = "Vendor"
        case sockets = "Sockets"
        case cores = "Cores"
        case threads = "Threads"
        case numaNodes = "NUMANodes"
        case memory = "MemoryBytes"
    }
}

extension ProcessorSummary {
    /// Reads the CPU topology under the host root's sysfs and the model and memory
    /// from its `/proc`.
    static func read(hostRoot: HostRoot) -> ProcessorSummary {
        let cpuDirectory = hostRoot.sysfsPath("/devices/system/cpu")
        let present = SysfsFiles.list(cpuDirectory).filter { $0.hasPrefix("cpu") && Int($0.dropFirst(3)) != nil }
        let online = SysfsFiles.attribute("\(cpuDirectory)/online").map(cpuList).map { Set($0.map { "cpu\($0)" }) }
        let cpus = present.filter { online?.contains($0) ?? true }
        var packages = Set<String>()
        var cores = Set<String>()
        for cpu in cpus {
            guard let package = SysfsFiles.attribute("\(cpuDirectory)/\(cpu)/topology/physical_package_id") else { continue }
            packages.insert(package)
            let die = SysfsFiles.attribute("\(cpuDirectory)/\(cpu)/topology/die_id") ?? "0"
            if let core = SysfsFiles.attribute("\(cpuDirectory)/\(cpu)/topology/core_id") { cores.insert("\(package)/\(die)/\(core)") }
        }
        let nodeDirectory = hostRoot.sysfsPath("/devices/system/node")
        let nodes = SysfsFiles.list(nodeDirectory).filter { $0.hasPrefix("node") && Int($0.dropFirst(4)) != nil }
        let cpuinfo = SysfsFiles.read(hostRoot.procPath("/cpuinfo")).map(firstValues) ?? [:]
        let meminfo = SysfsFiles.read(hostRoot.procPath("/meminfo")).map(firstValues) ?? [:]
        // `MemTotal:       24684096 kB`
        let memory = meminfo["MemTotal"].flatMap { UInt64($0.split(separator: " ").first ?? "") }.flatMap { kibibytes in
            let (bytes, overflow) = kibibytes.multipliedReportingOverflow(by: 1024)
            return overflow ? nil : bytes
        }
        return ProcessorSummary(
            model: cpuinfo["model name"], vendor: cpuinfo["vendor_id"],
            sockets: packages.isEmpty ? nil : packages.count, cores: cores.isEmpty ? nil : cores.count,
            threads: cpus.isEmpty ? (cpuinfo.isEmpty ? 0 : processorCount(hostRoot)) : cpus.count,
            numaNodes: nodes.isEmpty ? nil : nodes.count, memory: memory)
    }

    /// `0-3,8,10-11` → [0, 1, 2, 3, 8, 10, 11]. CPU numbers stop at `maximumCPU`: a
    /// list naming more (`0-100000000000`) is not a machine's, and is cut there rather
    /// than made into an array of that length.
    static func cpuList(_ text: String) -> [Int] {
        var cpus: [Int] = []
        for range in text.split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            guard let first = bounds.first, first >= 0, first <= maximumCPU, bounds.count <= 2 else { continue }
            let last = bounds.count == 2 ? min(bounds[1], maximumCPU) : first
            guard first <= last, cpus.count + (last - first + 1) <= maximumCPU + 1 else { continue }
            cpus += first...last
        }
        return cpus
    }

    /// The highest CPU number read: Linux's limit (`CONFIG_NR_CPUS`) is 8192.
    static let maximumCPU = 8191

    /// `key : value` lines of a /proc file, the first value of each key.
    static func firstValues(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = trimmed(String(line[..<colon]))
            if result[key] == nil { result[key] = trimmed(String(line[line.index(after: colon)...])) }
        }
        return result
    }

    private static func processorCount(_ hostRoot: HostRoot) -> Int {
        (SysfsFiles.read(hostRoot.procPath("/cpuinfo")) ?? "").split(separator: "\n").count { $0.hasPrefix("processor") }
    }
}
