import Foundation
import TandemCore
import TandemPostgres

/// An event for hosts: JSON, delivered after the transaction that caused it committed.
public typealias EventHandler = (String) -> Void

/// How much a log message matters; the values are those of include/tandem.h
/// (TANDEM_LOG_ERROR ...): lower is more severe.
public enum LogLevel: Int32, Sendable, CaseIterable {
    case error = 1
    case warning = 2
    case info = 3
    case debug = 4
}

/// Where the library's diagnostics go. The library never prints by itself:
/// with no handler it is silent. Messages never carry connection strings,
/// passwords or values of records.
public typealias LogHandler = (LogLevel, String) -> Void

/// Lets another thread interrupt the pass in flight (tandem_cancel). The
/// connection is replaced when a lost one is restored, so the current one is
/// kept here, under a lock, rather than read from the engine.
final class CancelState: @unchecked Sendable {
    private let lock = NSLock()
    private var connection: Connection?
    private var passRunning = false
    private var requested = false

    func use(_ connection: Connection) {
        lock.lock()
        self.connection = connection
        lock.unlock()
    }

    /// A pass begins: earlier cancels are forgotten (a cancel when nothing
    /// runs is harmless).
    func beginPass() {
        lock.lock()
        passRunning = true
        requested = false
        connection?.clearCancel()
        lock.unlock()
    }

    func endPass() {
        lock.lock()
        passRunning = false
        requested = false
        connection?.clearCancel()
        lock.unlock()
    }

    /// Whether tandem_cancel interrupted the pass in flight.
    var wasRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }

    /// Any thread. Does nothing unless a pass runs.
    func cancel() {
        lock.lock()
        defer { lock.unlock() }
        guard passRunning, let connection else { return }
        requested = true
        connection.cancel()
    }
}

/// Runs the compiled SQL of one integration over one libpq connection.
/// One thread at a time, except `requestStop()`.
public final class Engine {
    /// The session; replaced when a lost connection is restored (B11).
    var connection: Connection
    /// Kept to reconnect; never shown (errors never contain the password).
    let conninfo: String
    /// How long `run()` keeps trying to restore a lost connection before it
    /// gives up with `.connect`; 0 never tries.
    public var reconnectTimeout: TimeInterval = 300
    /// The bound integration, resolved against the catalog.
    var bound: Bound?
    public var eventHandler: EventHandler?
    /// Diagnostics for the host (tandem_set_log_callback); nil: silent.
    public var logHandler: LogHandler? {
        didSet { routeNotices() }
    }
    let cancelState = CancelState()
    /// Whether this connection holds the integration's syncer lock (B9).
    var isActiveSyncer = false
    /// Passes, and records they read, since the temporary work tables were
    /// last truncated.
    var passesSinceTruncate = 0
    var recordsSinceTruncate: Int64 = 0
    /// tandem.links's rows per module as its statistics counted them when a
    /// job's pass last analyzed it (nil: never in this session), and the
    /// links job passes made per module since.
    var linksPlanned: [String: Int64]?
    var linksMadeSinceAnalyze: [String: Int64] = [:]
    /// How many times this session has bound: its work tables are made
    /// again each time (`chunkStatistics`).
    var binds = 0
    /// Batches of more records go through the large merge (tests lower it
    /// to run every batch through it).
    var largeBatchAbove = PassFunction.analyzeAbove
    /// Writers that skipped NOTIFY while this follower was awake are still
    /// running: it polls until it has waited them out and read their changes.
    var skippedWritersPending = false
    /// The session (backend pid) listed in tandem._followers; 0: none yet.
    var followerSession: Int32 = 0
    let stopSignal: StopSignal

    struct Bound {
        let id: Int64
        let integration: Integration
        let compilers: [ModuleCompiler]
        /// The statements of every module, built once.
        let compiled: [CompiledModule]
        /// tandem.integrations.config_version when bound: a pass that finds
        /// another version binds again first (another host edited the sync).
        let configVersion: Int64
    }

    /// Connects. The error never contains the password.
    public init(conninfo: String) throws {
        self.conninfo = conninfo
        connection = try Self.openSession(conninfo)
        stopSignal = try StopSignal()
        cancelState.use(connection)
    }

    /// Logs through the host's handler; the text is built only when one is set.
    func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard let logHandler else { return }
        logHandler(level, message())
    }

    /// The server's notices and warnings go to the log handler (libpq would
    /// print them to stderr).
    func routeNotices() {
        guard logHandler != nil else {
            connection.noticeHandler = nil
            return
        }
        connection.noticeHandler = { [weak self] severity, sqlstate, message in
            let level: LogLevel = ["ERROR", "FATAL", "PANIC"].contains(severity) ? .error
                : severity == "WARNING" ? .warning : severity == "DEBUG" ? .debug : .info
            self?.log(level, "PostgreSQL \(severity)\(sqlstate.map { " [SQLSTATE \($0)]" } ?? ""): \(message)")
        }
    }

    /// Interrupts the pass in flight from any thread: it rolls back and its
    /// call fails with `.canceled`. Does nothing when no pass runs.
    public func requestCancel() { cancelState.cancel() }

    /// A new session with the settings every pass relies on.
    static func openSession(_ conninfo: String) throws -> Connection {
        let connection: Connection
        do {
            connection = try Connection(conninfo: conninfo)
        } catch let error as PostgresError {
            throw TandemError(.connect, error.description, sqlstate: error.sqlstate)
        }
        do {
            // The work tables of a pass are temporary tables, kept in this
            // session's local buffers: the default 8 MB spills a large chunk of an
            // initial sync to temp files. It can only be set before their first use.
            try connection.execute("SET temp_buffers = '256MB'")
            // A host that dies in the middle of a long statement is noticed by
            // the server within a quarter of a second, so its session ends and
            // a standby takes the syncer lock over at once (B11).
            try connection.execute("SET client_connection_check_interval = '250ms'")
            // A live pass is one statement in its own transaction, which must
            // run in READ COMMITTED whatever the database's default (B11).
            try connection.execute("SET default_transaction_isolation = 'read committed'")
            // JIT compiles a statement's expressions anew at every execution
            // whose estimate passes jit_above_cost: 50-300 ms for each large
            // statement of an initial sync's pass, far more than it saves on
            // set-based statements that read each row once.
            try connection.execute("SET jit = off")
            // Operators see which sessions are Tandem's (pg_stat_activity).
            try connection.execute("SELECT set_config('application_name', 'tandem', false) WHERE current_setting('application_name') = ''")
        } catch let error as PostgresError {
            connection.close()
            throw TandemError(error.kind == .connection ? .connect : .database, error.description, sqlstate: error.sqlstate)
        }
        return connection
    }

    /// The process id of this handle's server session (pg_stat_activity.pid).
    public var backendPID: Int32 { connection.backendPID }

    public func close() {
        if bound != nil { leaveFollowers() }
        connection.close()
        bound = nil
    }

    /// A handle dropped without close() (the CLI's) still leaves
    /// tandem._followers: its row would make every writer notify.
    deinit {
        if bound != nil { leaveFollowers() }
    }

    /// The integration this engine is bound to.
    public var integration: Integration? { bound?.integration }

    func requireBound() throws -> Bound {
        guard let bound else {
            throw TandemError(.state, "no integration is bound to this handle: call configure or attach first", extended: ExtendedCode.stateNotBound)
        }
        return bound
    }

    /// Installs or upgrades the tandem schema.
    public func install() throws {
        try database {
            // Name the missing privilege rather than "permission denied for database".
            let row = try connection.execute("""
                SELECT n.oid IS NOT NULL, has_database_privilege(current_database(), 'CREATE'),
                       n.oid IS NULL OR pg_has_role(n.nspowner, 'USAGE'), current_user::text, current_database()::text,
                       n.nspowner::regrole::text
                  FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = 'tandem'
                """).rows.first ?? []
            if row.count == 6, let role = row[3], let database = row[4] {
                let (role, database) = (SQL.quote(identifier: role), SQL.quote(identifier: database))
                if row[0] == "f" && row[1] == "f" {
                    throw TandemError(.permission, "install creates schema tandem, which needs CREATE on database \(database): GRANT CREATE ON DATABASE \(database) TO \(role), or, as a superuser, CREATE SCHEMA tandem AUTHORIZATION \(role) (README, \"Roles\")", sqlstate: "42501")
                }
                if row[2] == "f" {
                    throw TandemError(.permission, "schema tandem belongs to \(row[5] ?? "another role"); Tandem runs as the owner of its schema: ALTER SCHEMA tandem OWNER TO \(role) (README, \"Roles\")", sqlstate: "42501")
                }
            }
            try Migrator.migrate(connection)
        }
    }

    /// Runs database work, turning libpq failures into result codes.
    @discardableResult
    func database<T>(_ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch let error as PostgresError {
            // The statement text has $n placeholders, never values; the
            // server's message may quote a value, so it is not logged.
            log(.debug, "statement failed\(error.sqlstate.map { " with SQLSTATE \($0)" } ?? "")\(error.statement.map { ": \($0)" } ?? "")")
            switch error.kind {
            case .connection: throw TandemError(.connect, error.description, sqlstate: error.sqlstate)
            case .statement:
                if error.sqlstate == Connection.queryCanceled, cancelState.wasRequested {
                    throw TandemError(.canceled, "the pass was canceled (tandem_cancel) and rolled back; the next pass does its work", sqlstate: error.sqlstate)
                }
                if error.sqlstate == "3F000" || error.sqlstate == "42P01", try schemaIsMissing() {
                    throw TandemError(.state, "the tandem schema is not installed in this database: call install first (\(error.message))",
                                      sqlstate: error.sqlstate, extended: ExtendedCode.stateNotInstalled)
                }
                if error.sqlstate == "42501" {
                    throw TandemError(.permission, "\(error.description): the role that runs Tandem lacks a privilege (README, \"Roles\", lists the grants it needs)", sqlstate: error.sqlstate)
                }
                throw TandemError(.database, error.description, sqlstate: error.sqlstate)
            }
        }
    }

    /// Whether the tandem schema is missing, asked of the catalog (an
    /// undefined table may as well be one of the apps'). In a failed
    /// transaction the catalog cannot be asked until it rolls back.
    func schemaIsMissing() throws -> Bool {
        // The failed transaction is lost anyway: every caller rolls it back.
        if connection.inFailedTransaction { _ = try? connection.execute("ROLLBACK") }
        guard let installed = try? connection.execute("SELECT to_regclass('tandem.integrations') IS NOT NULL").scalar else { return false }
        return installed == "f"
    }

    func emit(_ events: [String]) {
        guard let eventHandler else { return }
        for event in events { eventHandler(event) }
    }

    /// JSON text of an object, for events: keys sorted.
    static func json(_ pairs: KeyValuePairs<String, Any>) -> String {
        var object: [String: Any] = [:]
        for (key, value) in pairs { object[key] = value }
        return json(object)
    }

    /// Every pass builds an event, so the values events carry (strings,
    /// integers, doubles, booleans, NSNull, arrays and objects of them) are
    /// written here directly: Foundation's writer sorts keys through ICU's
    /// collation and took a quarter of a millisecond per pass, a tenth of a
    /// one-change pass. Anything else (an NSNumber read from JSON, say) goes
    /// through Foundation.
    static func json(_ object: [String: Any]) -> String {
        var text = ""
        if writeJSON(object, to: &text) { return text }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
              let text = String(data: data, encoding: .utf8) else { return "{}" }
        return text
    }

    /// Appends `value` as JSON; false when it holds a type this does not write.
    static func writeJSON(_ value: Any, to out: inout String) -> Bool {
        // An NSNumber would cast to Bool and to every integer type alike.
        if type(of: value) is NSNumber.Type { return false }
        switch value {
        case let string as String:
            writeJSON(string: string, to: &out)
        case let flag as Bool:
            out += flag ? "true" : "false"
        case let number as Int64:
            out += String(number)
        case let number as Int:
            out += String(number)
        case let number as Int32:
            out += String(number)
        case let number as Double:
            guard number.isFinite else { return false }
            out += String(number)
        case is NSNull:
            out += "null"
        case let array as [Any]:
            out += "["
            for (index, element) in array.enumerated() {
                if index > 0 { out += "," }
                guard writeJSON(element, to: &out) else { return false }
            }
            out += "]"
        case let object as [String: Any]:
            out += "{"
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                writeJSON(string: key, to: &out)
                out += ":"
                guard let element = object[key], writeJSON(element, to: &out) else { return false }
            }
            out += "}"
        default:
            return false
        }
        return true
    }

    /// `text` as a JSON string (the CLI prints JSON with it too).
    public static func jsonString(_ text: String) -> String {
        var out = ""
        writeJSON(string: text, to: &out)
        return out
    }

    static func writeJSON(string: String, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// A self-pipe that lets another thread (or a signal handler) wake `run()`.
final class StopSignal: @unchecked Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw TandemError(.error, "could not create the stop pipe: errno \(errno)") }
        readEnd = ends[0]
        writeEnd = ends[1]
        for end in ends { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        Foundation.close(readEnd)
        Foundation.close(writeEnd)
    }

    /// Async-signal-safe.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// True if a stop was requested since the last drain.
    func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64)
        var stopped = false
        while read(readEnd, &buffer, buffer.count) > 0 { stopped = true }
        return stopped
    }
}
