// swift-tools-version:6.0
import Foundation
import PackageDescription

// Rooms, each named for what it does:
//   CLibPQ         - the system libpq (libpq-dev), nothing else
//   TandemPostgres - a small, safe Swift wrapper over libpq (connections, bind parameters, errors)
//   TandemCore     - configuration, validation rules, SQL compilation, conflict policies (no I/O)
//   TandemEngine   - runs the compiled SQL: migrations, activation, sync passes, LISTEN/NOTIFY
//   Tandem         - the C ABI (exports only) declared in include/tandem.h; built as libTandem.so
//   tandem         - the command-line tool (swift-argument-parser) and the demo
//
// The version lives in include/tandem.h (TANDEM_VERSION). The library's SONAME,
// libTandem.so.<major>, takes the major number from there.
let root = Context.packageDirectory
let header = (try? String(contentsOfFile: root + "/include/tandem.h", encoding: .utf8)) ?? ""
let versionLine = header.split(separator: "\n").first { $0.hasPrefix("#define TANDEM_VERSION \"") }
let major = versionLine.flatMap { $0.split(separator: "\"").dropFirst().first?.split(separator: ".").first }.map(String.init) ?? "0"

// A library a C host can ship (README "Shipping the library"):
//  - only tandem_* is exported (a version script; lld, because gold leaves the
//    hidden Swift symbols in .dynsym as LOCAL entries);
//  - release builds carry the Swift runtime and Foundation inside (-static-stdlib),
//    so neither the library nor the CLI needs the toolchain at run time, and
//    the library has its SONAME. Debug builds stay dynamic and fast to link.
let exportsOnlyTheABI: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "--version-script=\(root)/Sources/Tandem/exports.map"]),
    .unsafeFlags(["-static-stdlib", "-Xlinker", "-soname=libTandem.so.\(major)"], .when(configuration: .release)),
]
// Compiled against the static runtime modules too, so that Foundation's
// autolinked libraries are the static ones.
let staticRuntime: [SwiftSetting] = [
    .unsafeFlags(["-static-stdlib"], .when(configuration: .release)),
]
let standalone: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-static-stdlib"], .when(configuration: .release)),
]

let package = Package(
    name: "Tandem",
    products: [
        .library(name: "Tandem", type: .dynamic, targets: ["Tandem"]),
        .executable(name: "tandem", targets: ["tandem-cli"]),
    ],
    dependencies: [
        // The CLI's parser only; the library depends on nothing but libpq.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "TandemPostgres", dependencies: ["CLibPQ"], swiftSettings: staticRuntime),
        .target(name: "TandemCore", dependencies: ["TandemPostgres"], swiftSettings: staticRuntime),
        .target(name: "TandemEngine", dependencies: ["TandemCore", "TandemPostgres"], swiftSettings: staticRuntime),
        .systemLibrary(name: "CTandemHeader"),
        .target(name: "Tandem", dependencies: ["TandemEngine", "CTandemHeader"], exclude: ["exports.map"],
                swiftSettings: staticRuntime, linkerSettings: exportsOnlyTheABI),
        .executableTarget(name: "tandem-cli",
                          dependencies: ["TandemEngine", "TandemCore", "TandemPostgres", "CTandemHeader",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: staticRuntime, linkerSettings: standalone),
        .target(name: "TandemTestSupport", dependencies: ["TandemEngine", "TandemCore", "TandemPostgres"], path: "Tests/TandemTestSupport"),
        .testTarget(name: "TandemCoreTests", dependencies: ["TandemCore", "TandemPostgres"]),
        .testTarget(name: "TandemEngineTests", dependencies: ["TandemEngine", "TandemCore", "TandemPostgres", "TandemTestSupport"]),
    ]
)
