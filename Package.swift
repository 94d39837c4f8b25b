// swift-tools-version:6.0
import PackageDescription

// Rooms, each named for what it does:
//   CLibPQ         - the system libpq (libpq-dev), nothing else
//   TandemPostgres - a small, safe Swift wrapper over libpq (connections, bind parameters, errors)
//   TandemCore     - configuration, validation rules, SQL compilation, conflict policies (no I/O)
//   TandemEngine   - runs the compiled SQL: migrations, activation, sync passes, LISTEN/NOTIFY
//   Tandem         - the C ABI (exports only) declared in include/tandem.h; built as libTandem.so
//   tandem         - the command-line tool and the demo
let package = Package(
    name: "Tandem",
    products: [
        .library(name: "Tandem", type: .dynamic, targets: ["Tandem"]),
        .executable(name: "tandem", targets: ["tandem-cli"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "TandemPostgres", dependencies: ["CLibPQ"]),
        .target(name: "TandemCore", dependencies: ["TandemPostgres"]),
        .target(name: "TandemEngine", dependencies: ["TandemCore", "TandemPostgres"]),
        .target(name: "Tandem", dependencies: ["TandemEngine"]),
        .executableTarget(name: "tandem-cli", dependencies: ["TandemEngine", "TandemCore", "TandemPostgres"]),
        .target(name: "TandemTestSupport", dependencies: ["TandemEngine", "TandemCore", "TandemPostgres"], path: "Tests/TandemTestSupport"),
        .testTarget(name: "TandemCoreTests", dependencies: ["TandemCore", "TandemPostgres"]),
        .testTarget(name: "TandemEngineTests", dependencies: ["TandemEngine", "TandemCore", "TandemPostgres", "TandemTestSupport"]),
    ]
)
