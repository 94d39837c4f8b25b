import Foundation
import TandemCore
import TandemPostgres

/// Status and reports as JSON, built by PostgreSQL from the reporting views.
extension Engine {
    /// The reports a host may ask for, by name, and the view behind each:
    /// every view by its own name, and the short names of earlier versions.
    public static let reports: [String: String] = [
        "tab_status": "tab_status",
        "pending_changes": "pending_changes",
        "linked_records": "linked_records",
        "conflicts": "conflicts",
        "record_errors": "record_errors",
        "run_history": "run_history",
        "event_history": "event_history",
        "links": "linked_records",
        "runs": "run_history",
        "events": "event_history",
    ]

    /// The report names to show people: the views' own names.
    static var reportNames: String {
        Set(reports.values).sorted().joined(separator: ", ")
    }

    /// The order of each view, total: the natural order first, then a unique
    /// key as tie-breaker, all in one direction so that a page can start
    /// after a row with one row comparison. Each key is an expression over
    /// `v` and the type its value is read back as from a page key.
    struct ReportOrder {
        let keys: [(expression: String, type: String)]
        let descending: Bool

        var orderBy: String { keys.map { $0.expression + (descending ? " DESC" : "") }.joined(separator: ", ") }
    }

    static let reportOrders: [String: ReportOrder] = [
        "tab_status": ReportOrder(keys: [("v.tab", "text")], descending: false),
        "pending_changes": ReportOrder(keys: [("coalesce(v.since, '-infinity')", "timestamptz"), ("v.module", "text"), ("v.side", "text"),
                                              ("v.record_id::text", "text"), ("v.change", "text")], descending: false),
        "linked_records": ReportOrder(keys: [("v.link_id", "bigint")], descending: false),
        // A field of a link is decided at most once per pass (one transaction, one now()).
        "conflicts": ReportOrder(keys: [("v.decided_at", "timestamptz"), ("v.link_id", "bigint"), ("v.field", "text")], descending: true),
        // One open failure per record of a module and side (record_failures_pk).
        "record_errors": ReportOrder(keys: [("v.last_failed_at", "timestamptz"), ("v.module", "text"), ("v.from_side", "text"),
                                            ("v.record_id::text", "text")], descending: true),
        "run_history": ReportOrder(keys: [("v.run_id", "bigint")], descending: true),
        "event_history": ReportOrder(keys: [("v.event_id", "bigint")], descending: true),
    ]

    func reportView(_ name: String) throws -> String {
        guard let view = Self.reports[name] else {
            throw TandemError(.notFound, "unknown report '\(name)' (reports: \(Self.reportNames); links, runs and events are accepted too)")
        }
        return view
    }

    /// {"integration", "conflict_policy", "active_syncer", "cursor", "schema_version", "tabs"},
    /// written by jsonb (one spacing throughout).
    /// `tabs` are the rows of tandem.tab_status in sync order (contacts_companies,
    /// pipelines_products, activities, notes), each with `job_progress`: the
    /// scans of its background job as `jobProgress()` gives them ([] when it
    /// runs none). `active_syncer` is the session that holds the integration's
    /// syncer lock, whichever host it is, read from the server (null when no
    /// host syncs): {"pid", "application_name", "client_addr", "since"}, where
    /// `since` is when that session started (PostgreSQL does not record when
    /// a lock was granted).
    public func status() throws -> String {
        let bound = try requireBound()
        let progress = try jobProgress()
        var byTab: [String: [[String: Any]]] = [:]
        for scan in progress { byTab[scan.tab, default: []].append(scan.json) }
        let progressJSON = Self.json(byTab)
        return try database {
            try connection.execute("""
                SELECT jsonb_build_object(
                         'integration', i.name, 'conflict_policy', i.conflict_policy,
                         'active_syncer', \(Self.activeSyncer("i.name")),
                         'cursor', (SELECT position::text FROM tandem.sync_cursors c WHERE c.integration_id = i.integration_id),
                         'schema_version', (SELECT max(version) FROM tandem.migrations),
                         'tabs', (SELECT coalesce(jsonb_agg(to_jsonb(s) || jsonb_build_object('job_progress', coalesce(\(progressJSON)::jsonb -> s.tab, '[]'))
                                                           ORDER BY array_position(string_to_array(\(Tab.allCases.map(\.rawValue).joined(separator: ",")), ','), s.tab)),
                                           '[]'::jsonb)
                                    FROM tandem.tab_status s WHERE s.integration = i.name))::text
                  FROM tandem.integrations i WHERE i.integration_id = \(bound.id)
                """).scalar ?? "{}"
        }
    }

    /// The session holding the syncer lock of the integration named by the
    /// SQL expression `name` (`acquireSyncerLock`: classid 1952804196, objid
    /// hashtext(name), in this database), as a JSON object, or NULL.
    static func activeSyncer(_ name: String) -> SQL {
        """
        (SELECT json_build_object('pid', a.pid, 'application_name', a.application_name,
                                  'client_addr', host(a.client_addr), 'since', a.backend_start)
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
            AND l.classid = 1952804196::oid AND l.objid = hashtext(\(raw: name))::oid
          LIMIT 1)
        """
    }

    /// Where each scan of the tabs' background jobs (initial sync, edit sync,
    /// reactivation) stands, tabs in sync order, modules parents first, scans
    /// in the order they run. `counting`: false leaves the records a scan
    /// has still to read uncounted (its total is what it read until it is
    /// done), which costs one small query instead of a scan of every
    /// remaining record (`JobScanProgress.keepingTotal(of:)`).
    public func jobProgress(counting: Bool = true) throws -> [JobScanProgress] {
        let bound = try requireBound()
        return try database {
            let states = try tabStates(bound.id)
            var scans: [JobScanProgress] = []
            for tab in Tab.allCases {
                guard let row = states[tab.rawValue], let job = row.job.flatMap(Job.init(rawValue:)) else { continue }
                let progress = row.jobProgress
                for module in bound.integration.modules(of: tab) {
                    guard let compiler = bound.compilers.first(where: { $0.module.name == module.name }) else { continue }
                    for scan in job.scans {
                        let entry = progress[module.name]?[scan.rawValue] ?? [:]
                        let read = (entry["read"] as? NSNumber)?.int64Value ?? 0
                        let done = entry["done"] as? Bool == true
                        var total = read
                        if !done && counting {
                            let after = entry["after"] as? String
                            let statement: SQL
                            switch scan {
                            case .pipeline: statement = compiler.initialRemaining(.pipeline, after: after)
                            case .crm: statement = compiler.initialRemaining(.crm, after: after)
                            case .links: statement = compiler.linksRemaining(after: after)
                            }
                            total += Int64(try connection.execute(statement).scalar ?? "0") ?? 0
                        }
                        scans.append(JobScanProgress(tab: tab.rawValue, job: job.rawValue, module: module.name, scan: scan.rawValue,
                                                     read: read, total: total, done: done))
                    }
                }
            }
            return scans
        }
    }

    /// One reporting view of the bound integration as a JSON array.
    public func report(_ name: String, limit: Int) throws -> String {
        let view = try reportView(name)
        let bound = try requireBound()
        let rows = limit > 0 ? limit : 100
        let order = Self.reportOrders[view]?.orderBy ?? "1"
        return try database {
            try connection.execute("""
                SELECT coalesce(json_agg(row_to_json(r)), '[]'::json)::text
                  FROM (SELECT * FROM tandem.\(identifier: view) v WHERE v.integration = \(bound.integration.name)
                         ORDER BY \(raw: order) LIMIT \(rows)) r
                """).scalar ?? "[]"
        }
    }

    /// One page of a report: {"rows": [...], "next": key or null}. `after`
    /// is the "next" of the page before (nil for the first page): an opaque
    /// key this library made, naming the report and the order key of the
    /// last row handed out. Rows added or removed between pages shift no
    /// other row: each page starts after a key, not at an offset.
    public func reportPage(_ name: String, after: String?, limit: Int) throws -> String {
        let view = try reportView(name)
        guard limit >= 0 else { throw TandemError(.misuse, "limit must be 0 (100 rows) or more") }
        let rows = limit > 0 ? min(limit, 10_000) : 100
        guard let order = Self.reportOrders[view] else { throw TandemError(.error, "report \(view) has no order") }
        let start = try after.map { try Self.pageKey(decoding: $0, view: view, order: order) }
        let bound = try requireBound()
        return try database {
            var condition = SQL()
            if let start {
                // Checked by the server before use: a key whose values do not
                // read as their types is the caller's mistake, not a database error.
                let casts = zip(start, order.keys).map { SQL(parameter: $0) + SQL(raw: "::" + $1.type) }
                do {
                    try connection.execute(SQL(raw: "SELECT ") + SQL.join(casts, separator: ", "))
                } catch let error as PostgresError where error.kind == .statement {
                    throw TandemError(.misuse, "the page key is malformed: pass the \"next\" of the page before, unchanged")
                }
                condition = SQL(raw: " AND (\(order.keys.map(\.expression).joined(separator: ", "))) \(order.descending ? "<" : ">") (")
                    + SQL.join(casts, separator: ", ") + SQL(raw: ")")
            }
            let keys = order.keys.map { "(\($0.expression))::text" }.joined(separator: ", ")
            let result = try connection.execute("""
                SELECT row_to_json(v)::text, \(raw: keys) FROM tandem.\(identifier: view) v
                 WHERE v.integration = \(bound.integration.name)\(condition)
                 ORDER BY \(raw: order.orderBy) LIMIT \(rows + 1)
                """)
            let page = result.rows.prefix(rows)
            var next = "null"
            if result.rows.count > rows, let last = page.last {
                next = Self.json(["next": Self.pageKey(encoding: Array(last.dropFirst()), view: view)])
                next = String(next.dropFirst("{\"next\":".count).dropLast())
            }
            return "{\"rows\":[" + page.map { $0[0] ?? "null" }.joined(separator: ",") + "],\"next\":" + next + "}"
        }
    }

    /// The opaque page key: "p1." and base64url of a JSON array: the view,
    /// then the order key of the last row handed out.
    static func pageKey(encoding values: [String?], view: String) -> String {
        let array: [Any] = [view] + values.map { $0.map { $0 as Any } ?? NSNull() }
        let data = (try? JSONSerialization.data(withJSONObject: array)) ?? Data()
        return "p1." + data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func pageKey(decoding key: String, view: String, order: ReportOrder) throws -> [String?] {
        let malformed = TandemError(.misuse, "the page key is malformed: pass the \"next\" of the page before, unchanged")
        guard key.hasPrefix("p1."), key.utf8.count <= 4096 else { throw malformed }
        var base64 = String(key.dropFirst(3)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
              let array = try? JSONSerialization.jsonObject(with: data) as? [Any],
              array.count == order.keys.count + 1, let keyView = array.first as? String else { throw malformed }
        guard keyView == view else {
            throw TandemError(.misuse, "the page key belongs to report \(keyView), not \(view)")
        }
        return try array.dropFirst().map { value -> String? in
            guard let text = value as? String else { throw malformed }
            return text
        }
    }
}

/// One scan of a tab's background job: the unlinked records of one app
/// (`scan` "pipeline" or "crm") or the links (`scan` "links") of one module.
public struct JobScanProgress: Sendable, Equatable {
    public let tab: String
    /// initial_sync, edit_sync or reactivation.
    public let job: String
    public let module: String
    public let scan: String
    /// Records read so far.
    public let read: Int64
    /// `read` plus the records still to read, counted when asked (`read`
    /// alone when `jobProgress(counting: false)` gave it); `read` once the
    /// scan is done. Records linked meanwhile from the other side drop out
    /// of it, so it can shrink while the job runs.
    public let total: Int64
    public let done: Bool

    /// 0...100.
    public var percent: Int { total == 0 ? (done ? 100 : 0) : Int(read * 100 / total) }

    /// Whether `other` is the same scan of the same job.
    public func isSameScan(as other: JobScanProgress) -> Bool {
        (tab, job, module, scan) == (other.tab, other.job, other.module, other.scan)
    }

    /// This scan (read uncounted) with the total of `counted`, the same scan
    /// counted earlier: every record read since came out of the records it
    /// had still to read then, so the total holds while the scan runs.
    public func keepingTotal(of counted: JobScanProgress?) -> JobScanProgress {
        guard !done, let counted, isSameScan(as: counted) else { return self }
        return JobScanProgress(tab: tab, job: job, module: module, scan: scan, read: read, total: max(read, counted.total), done: done)
    }

    var json: [String: Any] {
        ["module": module, "scan": scan, "job": job, "read": read, "total": total, "done": done]
    }
}
