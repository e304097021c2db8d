import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// The signature libFuzzer calls each input with (`LLVMFuzzerTestOneInput`).
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

/// Hands the process to libFuzzer's driver with the command line's flags. Each harness's
/// top-level code calls this: SwiftPM makes that code the executable's `main`, which
/// shadows the one libFuzzer's runtime brings.
public func runLibFuzzer(_ testOneInput: FuzzTestOneInput) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// Stops the run with `message` when a property the harness checks does not hold; libFuzzer
/// saves the input as a crash file.
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("property violated: \(message())", file: file, line: line)
    }
}
