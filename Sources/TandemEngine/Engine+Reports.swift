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

    /// {"integration": ..., "policy": ..., "active_syncer": ..., "tabs": [rows of tandem.tab_status]}
    public func status() throws -> String {
        let bound = try requireBound()
        return try database {
            try connection.execute("""
                SELECT json_build_object(
                         'integration', i.name, 'conflict_policy', i.conflict_policy,
                         'active_syncer', \(isActiveSyncer)::boolean,
                         'cursor', (SELECT position::text FROM tandem.sync_cursors c WHERE c.integration_id = i.integration_id),
                         'schema_version', (SELECT max(version) FROM tandem.migrations),
                         'tabs', (SELECT coalesce(json_agg(row_to_json(s) ORDER BY s.tab), '[]'::json)
                                    FROM tandem.tab_status s WHERE s.integration = i.name))::text
                  FROM tandem.integrations i WHERE i.integration_id = \(bound.id)
                """).scalar ?? "{}"
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
