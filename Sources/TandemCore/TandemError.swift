/// Result codes of the C ABI (`include/tandem.h`). Append-only: never renumber.
public enum ResultCode: Int32, Sendable, CaseIterable {
    case ok = 0
    case error = 1
    case misuse = 2
    case config = 3
    case permission = 4
    case database = 5
    case connect = 6
    case busy = 7
    case state = 8
    case notFound = 9
    /// The integration was removed (R17): a host following it stops.
    case removed = 10
    /// The call was interrupted by tandem_cancel(); its pass rolled back.
    case canceled = 11

    /// The static text of tandem_errstr().
    public var text: String {
        switch self {
        case .ok: return "not an error"
        case .error: return "internal error"
        case .misuse: return "library used incorrectly"
        case .config: return "configuration error"
        case .permission: return "permission denied"
        case .database: return "database error"
        case .connect: return "connection error"
        case .busy: return "another host is the active syncer"
        case .state: return "not allowed in the current state"
        case .notFound: return "not found"
        case .removed: return "the integration was removed"
        case .canceled: return "the pass was canceled"
        }
    }
}

/// Extended result codes (tandem_extended_errcode): the primary code in the
/// low 8 bits, which case of it in the bits above, as sqlite does
/// (SQLITE_BUSY_RECOVERY). Append-only, like the primary codes. A failure
/// with no more to say has the primary code as its extended code.
public enum ExtendedCode {
    static func state(_ reason: Int32) -> Int32 { ResultCode.state.rawValue | (reason << 8) }
    /// No integration is bound to the handle: configure or attach first.
    public static let stateNotBound = state(1)
    /// The tandem schema is not installed in this database: install first.
    public static let stateNotInstalled = state(2)
    /// The tab order forbids it (R2): contacts_companies first.
    public static let stateTabOrder = state(3)
    /// The tab is inactive (R15): reactivate it.
    public static let stateInactive = state(4)
    /// The tab was never activated: activate it.
    public static let stateNotActivated = state(5)
    /// A background job of the tab (initial sync, edit sync, reactivation) is running.
    public static let stateJobRunning = state(6)
    /// The integration has no sync cursor: configure it again.
    public static let stateNoCursor = state(7)
    /// The schema is newer than this library, or was changed by hand.
    public static let stateSchemaVersion = state(8)
    /// The integration was removed; its name is taken until purged.
    public static let stateRemoved = state(9)
    /// The tab cannot do this at all (deactivate contacts_companies, edit
    /// sync of activities or notes), or the configuration would change tabs
    /// in use, or the schema still serves integrations.
    public static let stateNotAllowed = state(10)
    /// The tab is not set up in the integration's configuration ("tabs").
    public static let stateTabNotConfigured = state(11)
}

/// An error with the result code the C ABI reports, a message for people and,
/// when PostgreSQL said it, the SQLSTATE.
public struct TandemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: ResultCode
    public let message: String
    public let sqlstate: String?
    /// Which case of `code` this is (`ExtendedCode`); the primary code itself
    /// when there is nothing more to say.
    public let extended: Int32

    public init(_ code: ResultCode, _ message: String, sqlstate: String? = nil, extended: Int32? = nil) {
        self.code = code
        self.message = message
        self.sqlstate = sqlstate
        self.extended = extended ?? code.rawValue
    }

    /// Several problems found at once, each on its own line.
    public init(_ code: ResultCode, summary: String, problems: [String], sqlstate: String? = nil, extended: Int32? = nil) {
        self.init(code, ([summary] + problems.map { "  - " + $0 }).joined(separator: "\n"), sqlstate: sqlstate, extended: extended)
    }

    /// A text argument that is not UTF-8: the C ABI and the CLI refuse it
    /// with this same error, rather than replacing the bad bytes.
    public static func notUTF8(_ argument: String) -> TandemError {
        TandemError(.misuse, "\(argument) is not valid UTF-8")
    }

    public var description: String { message }
}
