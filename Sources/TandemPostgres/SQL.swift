import Foundation

/// A piece of SQL text with its values kept apart as bind parameters.
///
/// This is the only way SQL text is built in Tandem. Interpolating a value
/// (`"... WHERE id = \(id)"`) never splices it into the text: it becomes `$n`.
/// Identifiers go through `\(identifier:)`, which quotes them; they must have
/// been checked against the catalog first. Pieces of already-compiled SQL are
/// joined with `\(sql)`, which keeps their parameters. Text that is neither
/// needs the loud `\(raw:)` and must never come from input.
public struct SQL: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case text(String)
        case parameter(String?)
    }

    var parts: [Part]

    public init() { parts = [] }

    /// A bind parameter on its own.
    public init(parameter value: String?) { parts = [.parameter(value)] }

    /// Raw SQL text, for compiled fragments and fixed statements only.
    public init(raw text: String) { parts = [.text(text)] }

    public static func + (lhs: SQL, rhs: SQL) -> SQL {
        var joined = lhs
        joined.parts += rhs.parts
        return joined
    }

    public static func += (lhs: inout SQL, rhs: SQL) { lhs.parts += rhs.parts }

    /// Joins fragments with a separator (", ", " AND ", ...).
    public static func join(_ fragments: [SQL], separator: String) -> SQL {
        var out = SQL()
        for (index, fragment) in fragments.enumerated() {
            if index > 0 { out.parts.append(.text(separator)) }
            out.parts += fragment.parts
        }
        return out
    }

    /// The text with `$1`, `$2`, ... and the values in the same order.
    public func render() -> (text: String, values: [String?]) {
        var text = ""
        var values: [String?] = []
        for part in parts {
            switch part {
            case .text(let fragment): text += fragment
            case .parameter(let value):
                values.append(value)
                text += "$\(values.count)"
            }
        }
        return (text, values)
    }

    /// The text with every parameter written as NULL, when every value is NULL
    /// (an apply statement run over its whole batch); nil when any value is set.
    public func renderWithoutValues() -> String? {
        var text = ""
        for part in parts {
            switch part {
            case .text(let fragment): text += fragment
            case .parameter(nil): text += "NULL"
            case .parameter(.some): return nil
            }
        }
        return text
    }

    /// The statement text with placeholders, never the values.
    public var description: String { render().text }

    public var isEmpty: Bool { parts.isEmpty }
}

extension SQL: ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) { parts = [.text(value)] }

    public init(stringInterpolation: Interpolation) { parts = stringInterpolation.parts }

    public struct Interpolation: StringInterpolationProtocol {
        var parts: [Part] = []

        public init(literalCapacity: Int, interpolationCount: Int) {}

        public mutating func appendLiteral(_ literal: String) { parts.append(.text(literal)) }

        /// A value: becomes a bind parameter.
        public mutating func appendInterpolation(_ value: String?) { parts.append(.parameter(value)) }
        public mutating func appendInterpolation(_ value: Int) { parts.append(.parameter(String(value))) }
        public mutating func appendInterpolation(_ value: Int64) { parts.append(.parameter(String(value))) }
        public mutating func appendInterpolation(_ value: Bool) { parts.append(.parameter(value ? "true" : "false")) }

        /// An identifier checked against the catalog: quoted.
        public mutating func appendInterpolation(identifier: String) {
            parts.append(.text(SQL.quote(identifier: identifier)))
        }

        /// A schema-qualified name checked against the catalog: both parts quoted.
        public mutating func appendInterpolation(qualified schema: String, _ name: String) {
            parts.append(.text(SQL.quote(identifier: schema) + "." + SQL.quote(identifier: name)))
        }

        /// Compiled SQL: its text and its parameters are kept.
        public mutating func appendInterpolation(_ sql: SQL) { parts += sql.parts }

        /// A constant the engine compiled in (a module or field name, already checked):
        /// single-quoted. Values from data are parameters, never this.
        public mutating func appendInterpolation(literal text: String) {
            parts.append(.text(SQL.quote(literal: text)))
        }

        /// Raw text. Never pass anything that came from input.
        public mutating func appendInterpolation(raw text: String) { parts.append(.text(text)) }
    }

    /// Single-quotes a compiled constant, doubling embedded quotes (as quote_literal does).
    public static func quote(literal: String) -> String {
        "'" + literal.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// Double-quotes an identifier, doubling embedded quotes (as quote_ident does).
    public static func quote(identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
