import Foundation
import TandemEngine

// What the CLI prints for people: aligned tables, grouped numbers, short
// times. Scripts use --json, which prints what the C API returns.

/// JSON as the library returns it, decoded strictly (a number is never a Bool).
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    static func parse(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// Indented by two spaces, keys sorted: for people, diff and jq alike.
    var pretty: String { written(indent: "") }

    /// One line, keys sorted.
    var compact: String { written(indent: nil) }

    private func written(indent: String?) -> String {
        let inner = indent.map { $0 + "  " }
        let open = inner.map { "\n" + $0 } ?? ""
        let close = indent.map { "\n" + $0 } ?? ""
        let separator = inner.map { ",\n" + $0 } ?? ","
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value): return "\(value)"
        case .string(let value): return Engine.jsonString(value)
        case .array(let values):
            if values.isEmpty { return "[]" }
            return "[" + open + values.map { $0.written(indent: inner) }.joined(separator: separator) + close + "]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            return "{" + open + members.keys.sorted().map { key in
                Engine.jsonString(key) + (indent == nil ? ":" : ": ") + members[key]!.written(indent: inner)
            }.joined(separator: separator) + close + "}"
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var string: String? { if case .string(let value) = self { return value }; return nil }
    var int: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value): return Int64(exactly: value.rounded())
        default: return nil
        }
    }
    var double: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }
    var bool: Bool? { if case .bool(let value) = self { return value }; return nil }
    var array: [JSONValue]? { if case .array(let value) = self { return value }; return nil }
    var isNull: Bool { self == .null }
    var isNumber: Bool {
        switch self {
        case .int, .double: return true
        default: return false
        }
    }

    /// The value in a table cell.
    var cell: String {
        switch self {
        case .null: return ""
        case .bool(let value): return value ? "yes" : "no"
        case .int(let value): return String(value)
        case .double(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
        case .string(let value): return Format.time(value) ?? value
        case .array, .object: return compact
        }
    }
}

enum Format {
    /// 12345 -> "12,345".
    static func count(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return value < 0 ? "-" + grouped : grouped
    }

    static func count(_ value: Int) -> String { count(Int64(value)) }

    /// A timestamp as PostgreSQL writes it in JSON ("2026-11-28T20:10:03.123+00:00")
    /// to the second, with its offset; nil for any other text.
    static func time(_ text: String) -> String? {
        let characters = Array(text)
        guard characters.count >= 19, characters[4] == "-", characters[10] == "T", characters[13] == ":" else { return nil }
        var result = String(characters[0..<10]) + " " + String(characters[11..<19])
        if let zone = text.lastIndex(where: { $0 == "+" || $0 == "-" }), text.distance(from: text.startIndex, to: zone) > 19 {
            let offset = String(text[zone...])
            result += offset == "+00:00" || offset == "+00" ? " UTC" : " " + offset
        }
        return result
    }

    static func seconds(_ value: TimeInterval) -> String { String(format: "%.1f s", value) }

    static func percent(_ read: Int64, of total: Int64) -> String {
        total > 0 ? "\(min(100, read * 100 / total))%" : "100%"
    }

    /// Cut to `width` characters, with an ellipsis.
    static func clip(_ text: String, _ width: Int) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > width ? String(flat.prefix(width - 1)) + "…" : flat
    }
}

/// Columns aligned with two spaces between them; numbers to the right.
struct TextTable {
    var headers: [String]
    var rows: [[String]]
    var numeric: Set<Int> = []

    var lines: [String] {
        let widths = headers.indices.map { column in
            max(headers[column].count, rows.map { $0[column].count }.max() ?? 0)
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (column, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                text += (column == 0 ? "" : "  ") + (numeric.contains(column) ? padding + cell : cell + padding)
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return [line(headers), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)
    }
}

/// `tandem status` for people.
struct StatusView {
    let status: JSONValue

    init(_ status: JSONValue) { self.status = status }

    var lines: [String] {
        var lines: [String] = []
        var heading = "integration '\(status["integration"]?.string ?? "?")': conflict policy \(status["conflict_policy"]?.string ?? "?")"
        if let version = status["schema_version"]?.int { heading += ", schema version \(version)" }
        lines.append(heading)
        if let syncer = status["active_syncer"], !syncer.isNull {
            var who = "pid \(syncer["pid"]?.int.map(String.init) ?? "?")"
            var about: [String] = []
            if let name = syncer["application_name"]?.string, !name.isEmpty { about.append("application \"\(name)\"") }
            if let address = syncer["client_addr"]?.string, !address.isEmpty { about.append("from \(address)") }
            if !about.isEmpty { who += " (\(about.joined(separator: ", ")))" }
            if let since = syncer["since"]?.string { who += ", connected since \(Format.time(since) ?? since)" }
            lines.append("active syncer: \(who)")
        } else {
            lines.append("active syncer: none (no host holds the integration's syncer lock now)")
        }
        let tabs = status["tabs"]?.array ?? []
        guard !tabs.isEmpty else {
            lines.append("no tab is set up")
            return lines
        }
        lines.append("")
        var rows: [[String]] = []
        for tab in tabs {
            let scans = tab["job_progress"]?.array ?? []
            var job = tab["job"]?.string ?? "-"
            if !scans.isEmpty {
                let (read, total) = Self.sums(scans)
                job += " " + Format.percent(read, of: total)
            }
            var state = tab["state"]?.string ?? "?"
            if state == "inactive", let since = tab["inactive_since"]?.string { state += " since " + (Format.time(since) ?? since) }
            rows.append([
                tab["tab"]?.string ?? "?", state, job,
                Self.count(tab["linked_records"]), Self.count(tab["pending_changes"]), Self.count(tab["waiting_records"]),
                Self.count(tab["open_errors"]), Self.count(tab["conflicts"]),
                tab["last_pass_at"]?.cell.nonEmpty ?? "-",
            ])
        }
        lines += TextTable(headers: ["tab", "state", "job", "linked", "pending", "waiting", "errors", "conflicts", "last pass"],
                           rows: rows, numeric: [3, 4, 5, 6, 7]).lines
        for tab in tabs {
            let scans = tab["job_progress"]?.array ?? []
            guard !scans.isEmpty else { continue }
            let (read, total) = Self.sums(scans)
            lines.append("")
            lines.append("\(tab["tab"]?.string ?? "?"): \(tab["job"]?.string ?? "job") \(Format.percent(read, of: total)), \(Format.count(read)) of \(Format.count(total)) records read (totals: read + still to read, counted now)")
            lines += TextTable(headers: ["module", "records of", "read", "total", "", "scan"], rows: scans.map { scan in
                let scanRead = scan["read"]?.int ?? 0
                let scanTotal = scan["total"]?.int ?? 0
                let done = scan["done"]?.bool == true
                return [scan["module"]?.string ?? "?", Self.scanLabel(scan["scan"]?.string ?? ""), Format.count(scanRead),
                        Format.count(scanTotal), Format.percent(scanRead, of: scanTotal),
                        done ? "done" : (scanRead > 0 ? "running" : "to do")]
            }, numeric: [2, 3, 4]).lines.map { "  " + $0 }
        }
        return lines
    }

    static func count(_ value: JSONValue?) -> String { value?.int.map(Format.count) ?? "" }

    static func sums(_ scans: [JSONValue]) -> (Int64, Int64) {
        (scans.reduce(0) { $0 + ($1["read"]?.int ?? 0) }, scans.reduce(0) { $0 + ($1["total"]?.int ?? 0) })
    }

    static func scanLabel(_ scan: String) -> String {
        switch scan {
        case "pipeline": return "pipeline app"
        case "crm": return "CRM app view"
        case "links": return "linked pairs"
        default: return scan
        }
    }
}

/// `tandem report NAME` for people: the columns that say most, newest first.
struct ReportView {
    let name: String
    let rows: [JSONValue]
    let limit: Int
    let limited: Bool

    static let columns: [String: [String]] = [
        "tab_status": ["tab", "state", "job", "linked_records", "pending_changes", "waiting_records", "open_errors", "conflicts", "last_pass_at"],
        "pending_changes": ["tab", "module", "side", "record_id", "change", "next_action", "since"],
        "links": ["tab", "module", "link_id", "pipeline_id", "crm_id", "origin", "status", "last_synced_at"],
        "conflicts": ["module", "link_id", "field", "pipeline_value", "crm_value", "winner", "policy", "reason", "decided_at"],
        "record_errors": ["module", "from_side", "record_id", "operation", "sqlstate", "message", "attempts", "next_retry_at"],
        "runs": ["run_id", "kind", "started_at", "duration_ms", "changes_read", "matched", "created_in_pipeline", "created_in_crm",
                 "updated_in_pipeline", "updated_in_crm", "conflicts", "errors", "waiting", "deferred"],
        "events": ["event_id", "created_at", "type", "tab", "payload"],
    ]

    var lines: [String] {
        guard !rows.isEmpty else { return ["(no rows)"] }
        var keys: [String] = []
        for row in rows { if case .object(let object) = row { keys += object.keys.filter { !keys.contains($0) } } }
        let wanted = Self.columns[name] ?? keys.sorted()
        let headers = wanted.filter { keys.contains($0) }
        let width = headers.count > 6 ? 40 : 60
        let table = TextTable(
            headers: headers,
            rows: rows.map { row in headers.map { Format.clip(row[$0]?.cell ?? "", width) } },
            numeric: Set(headers.indices.filter { column in
                rows.allSatisfy { row in row[headers[column]].map { $0.isNumber || $0.isNull } ?? true }
                    && rows.contains { $0[headers[column]]?.isNumber == true }
            }))
        var footer = "(\(rows.count) row\(rows.count == 1 ? "" : "s")"
        if rows.count == limit { footer += limited ? "; there may be more" : "; there may be more: --limit N shows N" }
        footer += "; --json for every column)"
        return table.lines + [footer]
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
