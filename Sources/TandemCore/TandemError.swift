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
        }
    }
}

/// An error with the result code the C ABI reports, a message for people and,
/// when PostgreSQL said it, the SQLSTATE.
public struct TandemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: ResultCode
    public let message: String
    public let sqlstate: String?

    public init(_ code: ResultCode, _ message: String, sqlstate: String? = nil) {
        self.code = code
        self.message = message
        self.sqlstate = sqlstate
    }

    /// Several problems found at once, each on its own line.
    public init(_ code: ResultCode, summary: String, problems: [String], sqlstate: String? = nil) {
        self.init(code, ([summary] + problems.map { "  - " + $0 }).joined(separator: "\n"), sqlstate: sqlstate)
    }

    /// A text argument that is not UTF-8: the C ABI and the CLI refuse it
    /// with this same error, rather than replacing the bad bytes.
    public static func notUTF8(_ argument: String) -> TandemError {
        TandemError(.misuse, "\(argument) is not valid UTF-8")
    }

    public var description: String { message }
}
