import Foundation
import TandemCore
import TandemPostgres

extension Engine {
    /// Activates a tab: capture triggers on its tables, match indexes, and the
    /// initial sync of existing data scheduled (R10). Returns false, and does
    /// nothing, when the tab is syncing already.
    @discardableResult
    public func activate(_ name: String) throws -> Bool {
        let bound = try requireBound()
        let tab = try configuredTab(name, in: bound)
        return try database {
            let states = try tabStates(bound.id)
            if tab != .contactsCompanies {
                let first = states[Tab.contactsCompanies.rawValue]
                if first?.state != TabState.active.rawValue || first?.completed != true {
                    throw TandemError(.state, "tab \(name) can be set up only after contacts_companies is active and its initial sync is complete (R2); contacts_companies is \(first?.state ?? "not configured")", extended: ExtendedCode.stateTabOrder)
                }
            }
            switch states[name].flatMap({ TabState(rawValue: $0.state) }) {
            case .initialSync?, .active?: return false
            case .inactive?:
                throw TandemError(.state, "tab \(name) is inactive: reactivate it with a conflict policy for records changed on both sides meanwhile (R16)", extended: ExtendedCode.stateInactive)
            case .removed?:
                throw Self.removedError(bound.integration.name)
            case .configured?, nil: break
            }

            try connection.execute("BEGIN")
            do {
                try connection.execute("""
                    UPDATE tandem.tabs SET state = 'initial_sync', job = 'initial_sync', job_policy = NULL, activated_at = now(),
                           job_started_at = now(), initial_sync_completed_at = NULL, initial_sync_progress = '{}'
                     WHERE integration_id = \(bound.id) AND tab = \(name)
                    """)
                try connection.execute("SELECT tandem._reconcile_capture()")
                try createMatchIndexes(bound, tab: tab)
                let event = Self.json(["type": "tab_activated", "integration": bound.integration.name, "tab": name])
                try connection.execute("INSERT INTO tandem.events (integration_id, type, tab, payload) VALUES (\(bound.id), 'tab_activated', \(name), \(event)::jsonb)")
                try connection.execute("COMMIT")
                emit([event])
                return true
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// The tab of that name, set up in the bound configuration.
    func configuredTab(_ name: String, in bound: Bound) throws -> Tab {
        guard let tab = Tab(rawValue: name) else {
            throw TandemError(.notFound, "unknown tab '\(name)' (tabs: \(Tab.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard bound.integration.tabs.contains(tab) else {
            throw TandemError(.state, "tab \(name) is not set up in the configuration of integration '\(bound.integration.name)': add it under \"tabs\" and configure again", extended: ExtendedCode.stateTabNotConfigured)
        }
        return tab
    }

    struct TabRow {
        let state: String
        let completed: Bool
        let progress: String
        let job: String?
        let jobPolicy: String?

        /// The running job's progress: module -> scan -> {after, read, done}.
        var jobProgress: [String: [String: [String: Any]]] {
            (try? JSONSerialization.jsonObject(with: Data(progress.utf8))) as? [String: [String: [String: Any]]] ?? [:]
        }
    }

    func tabStates(_ id: Int64) throws -> [String: TabRow] {
        var states: [String: TabRow] = [:]
        for row in try connection.execute("""
            SELECT tab, state, initial_sync_completed_at IS NOT NULL, initial_sync_progress::text, job, job_policy
              FROM tandem.tabs WHERE integration_id = \(id)
            """).rows {
            guard let tab = row[0], let state = row[1] else { continue }
            states[tab] = TabRow(state: state, completed: row[2] == "t", progress: row[3] ?? "{}", job: row[4], jobPolicy: row[5])
        }
        return states
    }

    /// B3 matching probes the other app by the normalized match value; an
    /// expression index keeps that proportional to the changes, not the table.
    /// Each index is recorded, so that removal drops exactly Tandem's (R17).
    /// A table Tandem's role does not own gets its index from the owner: the
    /// error names the statement to run (README, "Roles").
    func createMatchIndexes(_ bound: Bound, tab: Tab) throws {
        var missingIndexes: [MissingMatchIndex] = []
        for module in bound.integration.modules(of: tab) {
            guard let rule = module.match else { continue }
            for side in Side.allCases {
                let table = module.side(side).table
                let column = rule.column(side).name
                let name = Self.matchIndexName(table, column: column)
                let expression = ModuleCompiler.normalized("\(identifier: column)")
                do {
                    try createIndexAsGuest("CREATE INDEX IF NOT EXISTS \(identifier: name) ON \(qualified: table.schema, table.name) ((\(expression)))",
                                           table: table, name: name)
                } catch let missing as MissingMatchIndex {
                    missingIndexes.append(missing)
                    continue
                }
                try connection.execute("""
                    INSERT INTO tandem.match_indexes (index_schema, index_name, integration_id, table_name)
                    VALUES (\(table.schema), \(name), \(bound.id), \(quoted(table))::regclass)
                    ON CONFLICT DO NOTHING
                    """)
            }
        }
        if !missingIndexes.isEmpty {
            let role = try currentRole()
            throw TandemError(.permission, """
                activating \(tab.rawValue) needs a match index (B3) on \(missingIndexes.map { "\($0.table)" }.joined(separator: ", ")); creating one needs the ownership of the table, which the role \(role) that runs Tandem does not have. As the owner of the tables, run:
                \(missingIndexes.map(\.statement).joined(separator: "\n"))
                then activate again (README, "Roles").
                """, sqlstate: "42501")
        }
    }

    /// Fits PostgreSQL's 63 bytes and never collides with another table's or
    /// column's (IdentifierName.matchIndex).
    static func matchIndexName(_ table: TableName, column: String) -> String {
        IdentifierName.matchIndex(schema: table.schema, table: table.name, column: column)
    }
}
