import TandemCore
import TandemPostgres

extension Engine {
    /// Activates a tab: capture triggers on its tables, match indexes, and the
    /// initial sync of existing data scheduled (R10). Activating a tab that is
    /// already syncing does nothing.
    public func activate(_ name: String) throws {
        let bound = try requireBound()
        guard let tab = Tab(rawValue: name) else {
            throw TandemError(.notFound, "unknown tab '\(name)' (tabs: \(Tab.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard bound.integration.tabs.contains(tab) else {
            throw TandemError(.state, "tab \(name) is not set up in the configuration of integration '\(bound.integration.name)': add it under \"tabs\" and configure again")
        }
        try database {
            let states = try tabStates(bound.id)
            if tab != .contactsCompanies {
                let first = states[Tab.contactsCompanies.rawValue]
                if first?.state != TabState.active.rawValue || first?.completed != true {
                    throw TandemError(.state, "tab \(name) can be set up only after contacts_companies is active and its initial sync is complete (R2); contacts_companies is \(first?.state ?? "not configured")")
                }
            }
            if let current = states[name], let state = TabState(rawValue: current.state), state.isSyncing { return }

            try connection.execute("BEGIN")
            do {
                for module in bound.integration.modules(of: tab) {
                    for side in Side.allCases {
                        let moduleSide = module.side(side)
                        try connection.execute("SELECT tandem._install_capture(\(quoted(moduleSide.table))::regclass, \(moduleSide.key.name))")
                        if let rule = module.match {
                            try createMatchIndex(moduleSide.table, column: rule.column(side).name)
                        }
                    }
                }
                try connection.execute("""
                    UPDATE tandem.tabs SET state = 'initial_sync', activated_at = now(), initial_sync_completed_at = NULL,
                           initial_sync_progress = '{}'
                     WHERE integration_id = \(bound.id) AND tab = \(name)
                    """)
                let event = Self.json(["type": "tab_activated", "integration": bound.integration.name, "tab": name])
                try connection.execute("INSERT INTO tandem.events (integration_id, type, tab, payload) VALUES (\(bound.id), 'tab_activated', \(name), \(event)::jsonb)")
                try connection.execute("COMMIT")
                emit([event])
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    struct TabRow {
        let state: String
        let completed: Bool
        let progress: String
    }

    func tabStates(_ id: Int64) throws -> [String: TabRow] {
        var states: [String: TabRow] = [:]
        for row in try connection.execute("""
            SELECT tab, state, initial_sync_completed_at IS NOT NULL, initial_sync_progress::text FROM tandem.tabs WHERE integration_id = \(id)
            """).rows {
            guard let tab = row[0], let state = row[1] else { continue }
            states[tab] = TabRow(state: state, completed: row[2] == "t", progress: row[3] ?? "{}")
        }
        return states
    }

    /// B3 matching probes the other app by the normalized match value; an
    /// expression index keeps that proportional to the changes, not the table.
    /// Its name fits PostgreSQL's 63 bytes and never collides with another
    /// table's or column's (IdentifierName.matchIndex).
    func createMatchIndex(_ table: TableName, column: String) throws {
        let name = IdentifierName.matchIndex(schema: table.schema, table: table.name, column: column)
        let expression = ModuleCompiler.normalized("\(identifier: column)")
        try connection.execute("CREATE INDEX IF NOT EXISTS \(identifier: name) ON \(qualified: table.schema, table.name) ((\(expression)))")
    }
}
