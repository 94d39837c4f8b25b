import ArgumentParser
import CTandemHeader
import Foundation
import TandemCore
import TandemEngine

/// The `tandem` command: the Swift API behind the C ABI, from a shell.
/// Parsing, help and usage errors come from swift-argument-parser; every
/// failure of the library exits with the code of its result code family
/// (`ExitStatus`, the README's table), so a script can tell them apart.
struct TandemCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Two-way sync between the pipeline app and the CRM app, kept in PostgreSQL.",
        discussion: """
            Every command takes --database CONNINFO (default: $TANDEM_DATABASE_URL); the commands that \
            work on an integration take --integration NAME (default: "default"). Options follow the command.

            Exit status: \(ExitStatus.summary)
            """,
        version: TANDEM_VERSION,
        subcommands: [
            Install.self, Validate.self, Configure.self, Activate.self, Edit.self, Deactivate.self, Reactivate.self,
            Remove.self, Uninstall.self, Sync.self, Run.self, Status.self, Report.self, Demo.self,
        ]
    )

    /// `tandem` alone: the help, on stderr, as a usage error.
    func run() throws {
        FileHandle.standardError.write(Data((Self.helpMessage() + "\n").utf8))
        throw ExitCode(ExitStatus.usage)
    }
}

/// The exit status of every outcome, one per result code family of
/// include/tandem.h, sysexits(3) numbers where one fits. Documented in the
/// README ("The CLI"); never renumbered.
enum ExitStatus {
    static let ok: Int32 = 0
    /// EX_USAGE: an unknown command or option, a missing or extra argument, a bad value, no database.
    static let usage: Int32 = 64
    /// EX_NOINPUT: the --config FILE cannot be read.
    static let noInput: Int32 = 66
    /// 128 + SIGINT: `sync` or `run` was interrupted (SIGINT or SIGTERM).
    static let interrupted: Int32 = 130

    static let byResultCode: [ResultCode: Int32] = [
        .ok: 0,
        .error: 70,  // EX_SOFTWARE: an internal error
        .connect: 69,  // EX_UNAVAILABLE: the server cannot be reached, or the connection was lost
        .busy: 75,  // EX_TEMPFAIL: another host is the active syncer; try later or sync --wait
        .permission: 77,  // EX_NOPERM
        .config: 78,  // EX_CONFIG: the configuration is invalid (R5-R9)
        .misuse: 79,
        .database: 80,
        .state: 81,
        .notFound: 82,
        .removed: 83,
    ]

    /// A result code added to the header later exits 70 until it has a line here.
    static func code(for result: ResultCode) -> Int32 { byResultCode[result] ?? 70 }

    static let summary = """
        0 done; 64 usage; 66 --config file unreadable; 69 connection (TANDEM_CONNECT); 70 internal \
        (TANDEM_ERROR); 75 another host syncs (TANDEM_BUSY); 77 permission (TANDEM_PERMISSION); 78 \
        configuration (TANDEM_CONFIG); 79 TANDEM_MISUSE; 80 database (TANDEM_DATABASE); 81 state \
        (TANDEM_STATE); 82 not found (TANDEM_NOTFOUND); 83 removed (TANDEM_REMOVED); 130 interrupted.
        """
}

/// A failure of the CLI itself (not of the library), with its exit status.
struct Failure: Error {
    let status: Int32
    let message: String
}

func printError(_ text: String) {
    fflush(nil)
    FileHandle.standardError.write(Data("tandem: \(text)\n".utf8))
}

do {
    var command = try TandemCommand.parseAsRoot()
    try command.run()
    exit(ExitStatus.ok)
} catch let error as TandemError {
    var text = error.message
    if let sqlstate = error.sqlstate, !text.contains(sqlstate) { text += " (SQLSTATE \(sqlstate))" }
    if error.code == .busy { text += "; `tandem sync --wait` waits to take over" }
    printError(text)
    exit(ExitStatus.code(for: error.code))
} catch let failure as Failure {
    printError(failure.message)
    exit(failure.status)
} catch {
    TandemCommand.exit(withError: error)
}
