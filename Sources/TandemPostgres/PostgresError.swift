import Foundation

/// A failure talking to PostgreSQL.
///
/// `description` is safe to show and log: it never contains the connection
/// string or a password. The failing statement text (with `$n` placeholders,
/// never values) is kept in `statement` for `debugDescription`.
public struct PostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// Could not connect, or the connection was lost.
        case connection
        /// The server rejected a statement.
        case statement
    }

    public let kind: Kind
    public let message: String
    /// The five-character SQLSTATE, when the server sent one.
    public let sqlstate: String?
    public let detail: String?
    public let statement: String?

    public init(kind: Kind, message: String, sqlstate: String? = nil, detail: String? = nil, statement: String? = nil) {
        self.kind = kind
        self.message = PostgresError.redactingSecrets(message)
        self.sqlstate = sqlstate
        self.detail = detail.map(PostgresError.redactingSecrets)
        self.statement = statement
    }

    public var description: String {
        var text = message
        if let detail, !detail.isEmpty { text += " (\(detail))" }
        return text
    }

    public var debugDescription: String {
        var text = description
        if let sqlstate { text += " [SQLSTATE \(sqlstate)]" }
        if let statement { text += "\nstatement: \(statement)" }
        return text
    }

    /// True for errors that a retry of the same transaction can cure.
    public var isSerializationFailure: Bool { sqlstate == "40001" || sqlstate == "40P01" }

    /// Failures that say nothing about the data and pass when retried: a
    /// serialization failure, a deadlock, a lock not available (lock_timeout).
    public var isTransient: Bool { isSerializationFailure || sqlstate == "55P03" }

    /// Whether the failure can be caused by the data of a record (a type,
    /// constraint or value error), as opposed to the statement or the server:
    /// class 42 (syntax, undefined objects, privileges) and transaction
    /// conflicts are never a record's fault.
    public var isRecordError: Bool {
        guard let sqlstate else { return false }
        return !sqlstate.hasPrefix("42") && !sqlstate.hasPrefix("40") && !sqlstate.hasPrefix("08")
            && !sqlstate.hasPrefix("53") && !sqlstate.hasPrefix("57") && !sqlstate.hasPrefix("XX")
    }

    /// libpq does not echo passwords, but a conninfo fragment can reach a
    /// message ("invalid connection option ..."): cut `password=...` out.
    static func redactingSecrets(_ text: String) -> String {
        var result = text
        for pattern in ["password\\s*=\\s*'(?:[^'\\\\]|\\\\.)*'", "password\\s*=\\s*\\S+", "(postgres(?:ql)?://[^:/@\\s]*:)[^@\\s]*@"] {
            guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) else { continue }
            let range = NSRange(result.startIndex..., in: result)
            let template = pattern.hasPrefix("(postgres") ? "$1***@" : "password=***"
            result = regex.stringByReplacingMatches(in: result, range: range, withTemplate: template)
        }
        return result
    }
}
