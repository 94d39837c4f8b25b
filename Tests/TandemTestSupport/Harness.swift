import Foundation
import TandemCore
import TandemEngine
import TandemPostgres

/// The repository root, found from this file's location.
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The PostgreSQL server the tests use: `TANDEM_TEST_DATABASE_URL` (a libpq
/// conninfo naming any database of a server where we may create databases),
/// else a throwaway cluster started with scripts/pg-throwaway and stopped when
/// the test process exits.
public enum TestServer {
    nonisolated(unsafe) private static var started: String?
    nonisolated(unsafe) private static var directory: String?
    private static let lock = NSLock()

    public static var conninfo: String {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        if let url = ProcessInfo.processInfo.environment["TANDEM_TEST_DATABASE_URL"], !url.isEmpty {
            started = url
            return url
        }
        let dir = NSTemporaryDirectory() + "tandem-swift-tests-\(getpid())"
        let output = try! run(repositoryRoot.appendingPathComponent("scripts/pg-throwaway").path, ["start", dir])
        directory = dir
        started = output.trimmingCharacters(in: .whitespacesAndNewlines)
        atexit {
            if let dir = TestServer.directory {
                _ = try? TestServer.run(repositoryRoot.appendingPathComponent("scripts/pg-throwaway").path, ["stop", dir])
            }
        }
        return started!
    }

    /// Runs a program, returns its standard output; throws with its standard error.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TandemError(.error, "\(program) \(arguments.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// What a finished program said and how it ended.
    public struct Finished {
        public let status: Int32
        public let standardOutput: String
        public let standardError: String
    }

    /// Runs a program to its end, its output kept in files: after `timeout`
    /// seconds it is killed and this throws, naming the program.
    public static func execute(_ program: String, _ arguments: [String], timeout: TimeInterval) throws -> Finished {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outPath = folder.appendingPathComponent("stdout"), errPath = folder.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outPath.path, contents: nil)
        FileManager.default.createFile(atPath: errPath.path, contents: nil)
        let out = try FileHandle(forWritingTo: outPath), err = try FileHandle(forWritingTo: errPath)
        defer { try? out.close(); try? err.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let timedOut = Flag()
        let killer = DispatchWorkItem { timedOut.set(); kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        process.waitUntilExit()
        killer.cancel()
        if timedOut.isSet {
            throw TandemError(.error, "\(program) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s and was killed")
        }
        return Finished(status: process.terminationStatus,
                        standardOutput: String(decoding: try Data(contentsOf: outPath), as: UTF8.self),
                        standardError: String(decoding: try Data(contentsOf: errPath), as: UTF8.self))
    }

    private final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.lock(); value = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    }

    /// The conninfo with another database name.
    public static func conninfo(database: String) -> String {
        var parts = conninfo.split(separator: " ").map(String.init).filter { !$0.hasPrefix("dbname=") }
        parts.append("dbname=\(database)")
        return parts.joined(separator: " ")
    }
}

/// A fresh database for one test, with the reference apps loaded, dropped at
/// the end of the test.
public final class TestDatabase {
    public let name: String
    public let conninfo: String
    /// A connection for the test's own reads and writes (not the engine's).
    public let sql: Connection

    /// The default configuration for the reference apps.
    public static let defaultConfig = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"}}"#

    public init(apps: Bool = true, sample: Int? = 60, overlap: Int = 30) throws {
        name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try Connection(conninfo: TestServer.conninfo(database: "postgres"))
        try admin.execute("CREATE DATABASE \(identifier: name)")
        admin.close()
        conninfo = TestServer.conninfo(database: name)
        sql = try Connection(conninfo: conninfo)
        if apps {
            for file in ["pipeline", "crm", "sample"] {
                let path = repositoryRoot.appendingPathComponent("sql/apps/\(file).sql").path
                try sql.executeScript(String(contentsOfFile: path, encoding: .utf8))
            }
            if let sample {
                try sql.execute("SELECT tandem_sample.generate(\(sample), \(overlap))")
            }
        }
    }

    deinit {
        sql.close()
        if let admin = try? Connection(conninfo: TestServer.conninfo(database: "postgres")) {
            _ = try? admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
            admin.close()
        }
    }

    /// An engine on this database with the schema installed.
    public func engine() throws -> Engine {
        let engine = try Engine(conninfo: conninfo)
        try engine.install()
        return engine
    }

    /// An engine configured (default config unless given) with the first tab
    /// activated and its initial sync complete.
    public func syncedEngine(config: String = TestDatabase.defaultConfig) throws -> Engine {
        let engine = try engine()
        try engine.configure(config)
        try engine.activate("contacts_companies")
        try engine.passUntilQuiet()
        return engine
    }

    /// All four tabs configured, activated in order and synced.
    public static let allTabsConfig = #"{"pipeline":{"acting_user":"admin@example.com"},"crm":{"acting_user":"admin@example.com"},"tabs":{"contacts_companies":{},"pipelines_products":{},"activities":{},"notes":{}}}"#

    public func allTabsEngine(config: String = TestDatabase.allTabsConfig) throws -> Engine {
        let engine = try syncedEngine(config: config)
        for tab in ["pipelines_products", "activities", "notes"] {
            try engine.activate(tab)
            try engine.passUntilQuiet()
        }
        return engine
    }

    @discardableResult
    public func execute(_ statement: SQL) throws -> QueryResult { try sql.execute(statement) }

    /// The first column of the first row.
    public func scalar(_ statement: SQL) throws -> String? { try sql.execute(statement).scalar }

    public func count(_ statement: SQL) throws -> Int { Int(try scalar(statement) ?? "0") ?? 0 }

    /// The id of the record linked to `id` of `side` in `module`.
    public func linked(_ module: String, from side: Side, id: String) throws -> String? {
        let other = side.other.rawValue
        return try scalar("SELECT \(raw: other)_id FROM tandem.links WHERE module = \(module) AND \(raw: side.rawValue)_id = \(id)")
    }

    /// Waits until `condition` (a query answering true or false) is true:
    /// see `waitUntil(_:timeout:_:)`.
    public func waitUntil(_ what: String, timeout: TimeInterval = 10, _ condition: SQL) throws {
        try TandemTestSupport.waitUntil(what, timeout: timeout) { try scalar(condition) == "t" }
    }

    /// The id of the admin user of an app.
    public func adminID(_ side: Side) throws -> String {
        try scalar("SELECT id::text FROM \(identifier: side.rawValue).users WHERE email = 'admin@example.com'")!
    }
}

/// Waits until `condition` holds, looking again every few milliseconds, at
/// most `timeout` seconds; then throws, naming what never happened. Tests
/// wait for the state they need, never for a guessed time, and never forever.
public func waitUntil(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return }
        guard Date() < deadline else { throw TandemError(.error, "timed out after \(timeout) s waiting for \(what)") }
        usleep(5_000)
    }
}
