import Testing
@testable import HostFS

@Suite struct ConfinedPathTests {
    @Test(arguments: [
        ("", "/"), ("/", "/"), (".", "/"), ("a/b", "/a/b"), ("/a//b/./c/..", "/a/b"),
        ("../../etc/passwd", "/etc/passwd"), ("/a/../../..", "/"), ("a/b/../../../c", "/c"),
    ])
    func cleansLexicallyAndStopsAtTheRoot(input: String, expected: String) throws {
        #expect(try ConfinedPath(input).description == expected)
    }

    @Test func rejectsNulBytes() {
        #expect(failure { try ConfinedPath("a\0/../../etc") } == .invalidArgument)
    }

    @Test func relativeStringIsWhatTheKernelSees() {
        #expect(path("/").relativeString == ".")
        #expect(path("/a/b").relativeString == "a/b")
    }

    @Test(arguments: ["", ".", "..", "a/b", "/", "a\0b", String(repeating: "x", count: 256)])
    func fileNameRejects(name: String) {
        #expect(failure { try FileName(name) } == .invalidArgument)
    }

    @Test(arguments: ["a", ".hidden", "...", "name with spaces", "ünïcode", String(repeating: "x", count: 255)])
    func fileNameAccepts(name: String) throws {
        #expect(try FileName(name).value == name)
    }
}

@Suite struct HostPathMappingTests {
    @Test(arguments: [
        ("/host", "/"), ("/host/", "/"), ("/host/etc/hosts", "/etc/hosts"), ("//host//etc", "/etc"),
        ("/host/../etc", "/etc"), ("/hostile", "/hostile"), ("/etc/hosts", "/etc/hosts"),
        ("etc", "/etc"), ("host/etc", "/etc"), ("/host/../../host/x", "/x"), ("/var/host/x", "/var/host/x"),
    ])
    func dropsThePortainerPrefix(input: String, expected: String) throws {
        #expect(try HostPathMapping.portainer.confinedPath(for: input).description == expected)
    }

    @Test func aConfiguredMountPoint() throws {
        let mapping = try HostPathMapping(mountPoint: "/rootfs/")
        #expect(try mapping.confinedPath(for: "/rootfs/etc").description == "/etc")
        #expect(try mapping.confinedPath(for: "/host/etc").description == "/host/etc")
    }

    @Test func rejectsNulBytes() throws {
        #expect(failure { try HostPathMapping().confinedPath(for: "/host/etc\0/x") } == .invalidArgument)
    }
}
