import CLibPQ
import Foundation

/// One libpq connection. Not thread-safe: one thread at a time, except
/// `cancel()`, which any thread may call.
public final class Connection {
    private var handle: OpaquePointer?
    /// libpq's cancel object for this session (PQgetCancel), kept beside the
    /// connection so that another thread can interrupt the statement in
    /// flight; guarded by `cancelLock`, as `close()` frees it.
    private var cancelObject: OpaquePointer?
    /// A cancel asked for but not yet seen by a statement: the server ignores
    /// a cancel that arrives between statements, so the next statement this
    /// connection starts fails instead, as the server would have failed it.
    private var cancelPending = false
    private let cancelLock = NSLock()
    /// Receives the server's notices and warnings (libpq would print them to
    /// stderr): severity, SQLSTATE, message. Nil drops them.
    public var noticeHandler: ((String, String?, String) -> Void)?

    /// The SQLSTATE of query_canceled, which a canceled statement fails with.
    public static let queryCanceled = "57014"

    /// Connects with a libpq connection string or URI.
    public init(conninfo: String) throws {
        guard let connection = PQconnectdb(conninfo) else {
            throw PostgresError(kind: .connection, message: "out of memory while connecting")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Connection.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(kind: .connection, message: "could not connect to PostgreSQL: \(message)")
        }
        handle = connection
        // The library never prints: notices go to `noticeHandler`, or nowhere.
        PQsetNoticeReceiver(connection, { context, result in
            guard let context, let result else { return }
            let owner = Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue()
            guard let handler = owner.noticeHandler else { return }
            let field = { (code: UInt8) -> String? in
                PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
            }
            handler(field(UInt8(ascii: "S")) ?? "NOTICE", field(UInt8(ascii: "C")),
                    PostgresError.redactingSecrets(field(UInt8(ascii: "M")) ?? ""))
        }, Unmanaged.passUnretained(self).toOpaque())
        cancelObject = PQgetCancel(connection)
        // Results are text; dates and numbers must not depend on the session defaults.
        try executeScript("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET client_min_messages = warning")
    }

    deinit { close() }

    public func close() {
        cancelLock.lock()
        if let cancelObject { PQfreeCancel(cancelObject) }
        cancelObject = nil
        cancelPending = false
        cancelLock.unlock()
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Interrupts the statement in flight (PQcancel, thread-safe); when none
    /// is, the next statement fails the same way, with SQLSTATE 57014, until
    /// `clearCancel()`. Any thread. Returns false when the connection is closed.
    @discardableResult
    public func cancel() -> Bool {
        cancelLock.lock()
        defer { cancelLock.unlock() }
        guard let cancelObject else { return false }
        cancelPending = true
        var buffer = [CChar](repeating: 0, count: 256)
        // A failure to reach the server leaves the pending flag to do the work.
        _ = PQcancel(cancelObject, &buffer, Int32(buffer.count))
        return true
    }

    /// Forgets a cancel not yet seen by a statement.
    public func clearCancel() {
        cancelLock.lock()
        cancelPending = false
        cancelLock.unlock()
    }

    /// Consumes a pending cancel: true once per cancel.
    private func takeCancel() -> Bool {
        cancelLock.lock()
        defer { cancelLock.unlock() }
        let pending = cancelPending
        cancelPending = false
        return pending
    }

    private func throwIfCanceled(_ statement: String?) throws {
        if takeCancel() {
            throw PostgresError(kind: .statement, message: "canceling statement due to user request",
                                sqlstate: Connection.queryCanceled, statement: statement)
        }
    }

    /// The socket to poll for readability (notifications), or -1.
    public var socket: Int32 {
        guard let handle else { return -1 }
        return PQsocket(handle)
    }

    /// The server process of this session, or 0 when closed.
    public var backendPID: Int32 {
        guard let handle else { return 0 }
        return PQbackendPID(handle)
    }

    /// Whether a statement failed inside the open transaction, which then
    /// accepts nothing but ROLLBACK.
    public var inFailedTransaction: Bool {
        guard let handle else { return false }
        return PQtransactionStatus(handle) == PQTRANS_INERROR
    }

    /// Whether a transaction is open (in progress or failed).
    public var inTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    public var isOpen: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Statements (or batches of them) sent to the server: each is one
    /// round trip. Tests read it to show what a pass costs.
    public private(set) var roundTrips = 0

    /// Runs one statement with its values as bind parameters.
    @discardableResult
    public func execute(_ sql: SQL) throws -> QueryResult {
        let connection = try open()
        roundTrips += 1
        let (text, values) = sql.render()
        try throwIfCanceled(text)
        let result = Self.withCStrings(values) { PQexecParams(connection, text, Int32(values.count), nil, $0, nil, nil, 0) }
        return try check(result, statement: text)
    }

    /// Calls `body` with the values as C strings (NULL for nil), kept alive
    /// for the duration of the call; nil when there are none.
    private static func withCStrings<Result>(_ values: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> Result) -> Result {
        if values.isEmpty { return body(nil) }
        let cStrings: [UnsafeMutablePointer<CChar>?] = values.map { $0.flatMap { strdup($0) } }
        defer { cStrings.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = cStrings.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// The statements prepared in this session, by name, with their text.
    private var prepared: [String: String] = [:]

    /// Prepares `sql` as this session's statement `name` (its values only
    /// give their number): nothing to do if it is prepared with this text
    /// already, else one round trip (two if another text had the name).
    public func prepare(_ name: String, _ sql: SQL) throws {
        let connection = try open()
        let (text, values) = sql.render()
        guard prepared[name] != text else { return }
        if prepared[name] != nil {
            _ = try execute("DEALLOCATE \(identifier: name)")
            prepared[name] = nil
        }
        try throwIfCanceled(text)
        roundTrips += 1
        _ = try check(PQprepare(connection, name, text, Int32(values.count), nil), statement: text)
        prepared[name] = text
    }

    /// Runs `sql` as this session's prepared statement `name`, prepared
    /// first if need be (`prepare`): a statement run all day is parsed and
    /// planned once, not at every call.
    @discardableResult
    public func execute(prepared name: String, _ sql: SQL) throws -> QueryResult {
        try prepare(name, sql)
        let connection = try open()
        let (text, values) = sql.render()
        roundTrips += 1
        try throwIfCanceled(text)
        let result = Self.withCStrings(values) { PQexecPrepared(connection, name, Int32(values.count), $0, nil, nil, 0) }
        return try check(result, statement: text)
    }

    /// Runs several statements in one round trip when none carries a value
    /// (simple query protocol); else one by one. Returns the last result; the
    /// first failure stops the rest, as in a script.
    @discardableResult
    public func execute(batch statements: [SQL]) throws -> QueryResult {
        let texts = statements.map { $0.renderWithoutValues() }
        if texts.contains(where: { $0 == nil }) || statements.count < 2 {
            var last: QueryResult?
            for statement in statements { last = try execute(statement) }
            guard let last else { throw PostgresError(kind: .statement, message: "empty batch") }
            return last
        }
        let script = texts.compactMap { $0 }.joined(separator: ";\n")
        let connection = try open()
        roundTrips += 1
        try throwIfCanceled(script)
        return try check(PQexec(connection, script), statement: script)
    }

    /// Runs a script of several statements (migrations, reference schemas).
    /// No values may be part of it.
    public func executeScript(_ script: String) throws {
        let connection = try open()
        roundTrips += 1
        var result = PQexec(connection, script)
        // PQexec returns only the last result; errors stop the script.
        _ = try check(result, statement: nil)
        result = nil
    }

    /// Reads what arrived on the socket and returns the notifications.
    public func notifications() throws -> [Notification] {
        let connection = try open()
        if PQconsumeInput(connection) == 0 {
            throw PostgresError(kind: .connection, message: "connection lost: \(Connection.trimmed(PQerrorMessage(connection)))")
        }
        var received: [Notification] = []
        while let notify = PQnotifies(connection) {
            received.append(Notification(channel: String(cString: notify.pointee.relname),
                                         payload: String(cString: notify.pointee.extra)))
            PQfreemem(notify)
        }
        return received
    }

    private func open() throws -> OpaquePointer {
        guard let handle else {
            throw PostgresError(kind: .connection, message: "the connection is closed")
        }
        return handle
    }

    private func check(_ result: OpaquePointer?, statement: String?) throws -> QueryResult {
        guard let result else {
            throw PostgresError(kind: .connection, message: "connection lost: \(Connection.trimmed(PQerrorMessage(handle)))", statement: statement)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return QueryResult(result)
        default:
            defer { PQclear(result) }
            let field = { (code: Int32) -> String? in
                guard let value = PQresultErrorField(result, code) else { return nil }
                return String(cString: value)
            }
            let primary = field(Int32(UInt8(ascii: "M"))) ?? Connection.trimmed(PQresultErrorMessage(result))
            // A session the server is ending (terminated, shut down) is lost
            // even while libpq has not read the end of the stream yet.
            let sqlstate = field(Int32(UInt8(ascii: "C")))
            let ending = sqlstate.map { ["57P01", "57P02", "57P03"].contains($0) || $0.hasPrefix("08") } ?? false
            let lost = ending || (handle.map { PQstatus($0) != CONNECTION_OK } ?? true)
            // The server saw the cancel: nothing is left pending.
            if field(Int32(UInt8(ascii: "C"))) == Connection.queryCanceled { clearCancel() }
            throw PostgresError(kind: lost ? .connection : .statement,
                                message: primary,
                                sqlstate: field(Int32(UInt8(ascii: "C"))),
                                detail: field(Int32(UInt8(ascii: "D"))),
                                statement: statement)
        }
    }

    static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown error" }
        return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public struct Notification: Sendable, Equatable {
    public let channel: String
    public let payload: String
}

/// A result, copied out of libpq at once; only small results are ever read.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [[String?]]
    /// Rows affected by INSERT/UPDATE/DELETE.
    public let affected: Int

    init(_ result: OpaquePointer) {
        defer { PQclear(result) }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            rows.append((0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        self.rows = rows
        affected = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The first column of the first row.
    public var scalar: String? { rows.first?.first ?? nil }

    public func column(_ name: String) -> Int? { columns.firstIndex(of: name) }

    /// Rows as dictionaries, for reporting. Of two columns with one name
    /// (`SELECT a.id, b.id`), the first is kept: a duplicate must not trap.
    public var records: [[String: String?]] {
        rows.map { row in Dictionary(zip(columns, row), uniquingKeysWith: { first, _ in first }) }
    }
}
