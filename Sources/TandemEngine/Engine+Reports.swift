import Foundation
import TandemCore
import TandemPostgres

/// Status and reports as JSON, built by PostgreSQL from the reporting views.
extension Engine {
    /// The reports a host may ask for, by name, and the view behind each.
    public static let reports: [String: String] = [
        "tab_status": "tab_status",
        "pending_changes": "pending_changes",
        "links": "linked_records",
        "conflicts": "conflicts",
        "record_errors": "record_errors",
        "runs": "run_history",
        "events": "event_history",
    ]

    static let reportOrder: [String: String] = [
        "tab_status": "tab", "pending_changes": "since", "linked_records": "link_id",
        "conflicts": "decided_at DESC", "record_errors": "last_failed_at DESC",
        "run_history": "run_id DESC", "event_history": "event_id DESC",
    ]

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
    /// in the order they run.
    public func jobProgress() throws -> [JobScanProgress] {
        let bound = try requireBound()
        return try database {
            let states = try tabStates(bound.id)
            var scans: [JobScanProgress] = []
            for tab in Tab.allCases {
                guard let row = states[tab.rawValue], let job = row.job.flatMap(Job.init(rawValue:)) else { continue }
                let progress = (try? JSONSerialization.jsonObject(with: Data(row.progress.utf8))) as? [String: [String: [String: Any]]] ?? [:]
                for module in bound.integration.modules(of: tab) {
                    guard let compiler = bound.compilers.first(where: { $0.module.name == module.name }) else { continue }
                    for scan in job.scans {
                        let entry = progress[module.name]?[scan.rawValue] ?? [:]
                        let read = (entry["read"] as? NSNumber)?.int64Value ?? 0
                        let done = entry["done"] as? Bool == true
                        var total = read
                        if !done {
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
        guard let view = Self.reports[name] else {
            throw TandemError(.notFound, "unknown report '\(name)' (reports: \(Self.reports.keys.sorted().joined(separator: ", ")))")
        }
        let bound = try requireBound()
        let rows = limit > 0 ? limit : 100
        return try database {
            try connection.execute("""
                SELECT coalesce(json_agg(row_to_json(r)), '[]'::json)::text
                  FROM (SELECT * FROM tandem.\(identifier: view) v WHERE v.integration = \(bound.integration.name)
                         ORDER BY \(raw: Self.reportOrder[view] ?? "1") LIMIT \(rows)) r
                """).scalar ?? "[]"
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
    /// `read` plus the records still to read, counted when asked; `read`
    /// once the scan is done. Records linked meanwhile from the other side
    /// drop out of it, so it can shrink while the job runs.
    public let total: Int64
    public let done: Bool

    /// 0...100.
    public var percent: Int { total == 0 ? (done ? 100 : 0) : Int(read * 100 / total) }

    var json: [String: Any] {
        ["module": module, "scan": scan, "job": job, "read": read, "total": total, "done": done]
    }
}
