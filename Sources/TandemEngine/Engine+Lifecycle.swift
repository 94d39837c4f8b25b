import Foundation
import TandemCore
import TandemPostgres

/// The lifecycle of a tab and of the integration (R14-R17), on the same
/// engine as the sync: every operation is one transaction that changes the
/// tab's state, brings the triggers on the app tables in line
/// (tandem._reconcile_capture) and, where data must be looked at again,
/// schedules a background job that runs in chunks inside ordinary passes
/// (Engine+Jobs.swift). None of them deletes or rewrites app data by itself.
extension Engine {
    /// What an edit sync changed, per module of the tab.
    public struct EditSyncSummary: Sendable, Equatable {
        /// Modules whose CRM view changed (a re-scan runs in any case).
        public var viewsChanged: [String] = []
        /// Per module, the fields brought into line for every linked record.
        public var newlyMapped: [String: [String]] = [:]
        /// Per module, the fields that stopped syncing.
        public var unmapped: [String: [String]] = [:]
        /// Whether a re-scan runs in the background (false for an inactive tab:
        /// its reactivation looks at everything).
        public var rescanScheduled = false
    }

    /// Thrown inside a pass when another host changed the stored configuration.
    struct ConfigurationChanged: Error {
        let integrationID: Int64
    }

    /// Binds again to the configuration stored for the integration.
    func rebindStored(_ id: Int64) throws {
        let stored = try connection.execute("SELECT config::text, removed_at IS NOT NULL, name FROM tandem.integrations WHERE integration_id = \(id)").rows.first
        guard let stored, let json = stored[0] else {
            throw TandemError(.removed, "the integration this handle was bound to was removed (R17)")
        }
        if stored[1] == "t" { throw Self.removedError(stored[2] ?? "") }
        let (integration, users) = try validate(json)
        try bind(id: id, integration: integration, setupUsers: users)
    }

    /// The error of every call on an integration that was removed (R17).
    static func removedError(_ name: String) -> TandemError {
        TandemError(.removed, "integration '\(name)' was removed (R17): nothing of it syncs any more")
    }

    /// A standby host learns of a removal too, though it holds no lock.
    func requireNotRemoved(_ bound: Bound) throws {
        let removed = try connection.execute("SELECT removed_at IS NOT NULL FROM tandem.integrations WHERE integration_id = \(bound.id)").scalar
        if removed != "f" {
            throw Self.removedError(bound.integration.name)
        }
    }

    /// Runs `work` in one transaction, with the integration row locked so
    /// that lifecycle operations of several hosts go one after the other.
    /// Returns the work's result and the events to emit after the commit.
    func lifecycleTransaction<T>(_ bound: Bound, _ work: (inout [String]) throws -> T) throws -> T {
        try database {
            try connection.execute("BEGIN")
            do {
                let removed = try connection.execute("""
                    SELECT removed_at IS NOT NULL FROM tandem.integrations WHERE integration_id = \(bound.id) FOR UPDATE
                    """).scalar
                if removed != "f" {
                    throw Self.removedError(bound.integration.name)
                }
                var events: [String] = []
                let result = try work(&events)
                try connection.execute("COMMIT")
                emit(events)
                return result
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    func recordEvent(_ bound: Bound, type: String, tab: Tab?, _ payload: [String: Any], into events: inout [String]) throws {
        var object = payload
        object["type"] = type
        object["integration"] = bound.integration.name
        if let tab { object["tab"] = tab.rawValue }
        let event = Self.json(object)
        try connection.execute("""
            INSERT INTO tandem.events (integration_id, type, tab, payload) VALUES (\(bound.id), \(type), \(tab?.rawValue), \(event)::jsonb)
            """)
        events.append(event)
    }

    // MARK: - Edit sync (R14)

    /// Changes the CRM view or the field mapping of Contacts & Companies or
    /// Pipelines & Products. `configuration` is the whole new configuration,
    /// validated like any; only that tab's views and fields may differ from
    /// the stored one. nil keeps the configuration and re-scans the views (for
    /// a view whose definition changed in SQL).
    ///  - Records synced from the old view keep their links; CRM records now
    ///    in the view and not linked are matched or created, in the background.
    ///  - A newly mapped field is brought into line for every linked record:
    ///    equal values do nothing, a value on one side only fills the other,
    ///    different values are decided by the policy and recorded.
    ///  - A field no longer mapped stops syncing; both apps keep their values.
    @discardableResult
    public func editSync(_ name: String, configuration json: String?) throws -> EditSyncSummary {
        let bound = try requireBound()
        let tab = try configuredTab(name, in: bound)
        guard tab.hasViewsAndMappings else {
            throw TandemError(.state, "tab \(name) has no CRM view and no field mapping to edit: the system maps activities and notes itself (R9)", extended: ExtendedCode.stateNotAllowed)
        }
        let stored = try database {
            try connection.execute("SELECT config::text FROM tandem.integrations WHERE integration_id = \(bound.id)").scalar
        }
        guard let storedJSON = stored else { throw Self.removedError(bound.integration.name) }
        let newJSON = json ?? storedJSON
        // Validation first, outside the transaction: every problem in one error.
        let (after, users) = try validate(newJSON)
        // The stored configuration may no longer validate (its old view was
        // dropped, say): then the binding tells what was mapped.
        let before = (try? validate(storedJSON).0) ?? bound.integration
        let differences = try Configuration.parse(storedJSON).differences(outside: tab, from: try Configuration.parse(newJSON))
        if !differences.isEmpty {
            throw TandemError(.config, "edit sync changes only the CRM views and field mappings of tab \(name); this configuration also changes \(differences.joined(separator: ", ")): use configure for those")
        }

        var summary = EditSyncSummary()
        try lifecycleTransaction(bound) { events in
            let state = try tabStates(bound.id)[name]
            switch state.flatMap({ TabState(rawValue: $0.state) }) {
            case .active? where state?.job == nil, .inactive?: break
            case .active?, .initialSync?:
                throw TandemError(.state, "tab \(name) is running its \(state?.job ?? "initial_sync") job: edit sync once it completes (see tandem.tab_status)", extended: ExtendedCode.stateJobRunning)
            case .configured?, nil:
                throw TandemError(.state, "tab \(name) is not active: change its view or mapping with configure, then activate it", extended: ExtendedCode.stateNotActivated)
            case .removed?:
                throw Self.removedError(bound.integration.name)
            }
            let id = try store(after, json: newJSON, users: users)
            for module in after.modules(of: tab) {
                let old = before.module(named: module.name)
                if old?.crm.view != module.crm.view { summary.viewsChanged.append(module.name) }
                let changes = FieldChanges(before: old, after: module)
                if !changes.newlyMapped.isEmpty { summary.newlyMapped[module.name] = changes.newlyMapped }
                if !changes.unmapped.isEmpty { summary.unmapped[module.name] = changes.unmapped }
                let forgotten = changes.forgotten
                guard !forgotten.isEmpty else { continue }
                // Last-synced values of those fields say nothing true any
                // more: mirrors read them as no value through their layouts
                // (migration 0012).
                let names = Self.json(["names": forgotten])
                try connection.execute("""
                    UPDATE tandem.mirror_layouts l
                       SET forgotten = ARRAY(SELECT DISTINCT x FROM unnest(l.forgotten || f.names) x ORDER BY x)
                      FROM (SELECT array_agg(x) AS names FROM jsonb_array_elements_text(\(names)::jsonb -> 'names') x) f
                     WHERE l.integration_id = \(id) AND l.module = \(module.name) AND l.fields && f.names
                    """)
            }
            if state?.state == TabState.active.rawValue {
                // The re-scan: CRM records in the view, linked records where fields became mapped.
                var progress: [String: [String: [String: Any]]] = [:]
                for module in after.modules(of: tab) {
                    progress[module.name] = [
                        Job.Scan.pipeline.rawValue: ["done": true],
                        Job.Scan.links.rawValue: ["done": summary.newlyMapped[module.name] == nil],
                    ]
                }
                let text = String(decoding: try JSONSerialization.data(withJSONObject: progress, options: [.sortedKeys]), as: UTF8.self)
                try connection.execute("""
                    UPDATE tandem.tabs SET job = 'edit_sync', job_policy = NULL, job_started_at = now(), initial_sync_progress = \(text)::jsonb
                     WHERE integration_id = \(id) AND tab = \(name)
                    """)
                summary.rescanScheduled = true
            }
            try recordEvent(bound, type: "edit_sync_started", tab: tab, [
                "views_changed": summary.viewsChanged, "newly_mapped": summary.newlyMapped,
                "unmapped": summary.unmapped, "rescan": summary.rescanScheduled,
            ], into: &events)
            try bind(id: id, integration: after, setupUsers: users)
            if summary.rescanScheduled, let rebound = self.bound { try createMatchIndexes(rebound, tab: tab) }
        }
        return summary
    }

    // MARK: - Deactivate (R15)

    /// Stops the tab's new and edited data from syncing, at once: its capture
    /// triggers are dropped, so its tables cost their writers nothing while
    /// it is inactive. Links and mirrors stay; nothing is deleted.
    /// Contacts & Companies, the parent of every other tab, cannot be
    /// deactivated. Returns false when the tab was inactive already.
    @discardableResult
    public func deactivate(_ name: String) throws -> Bool {
        let bound = try requireBound()
        let tab = try configuredTab(name, in: bound)
        guard tab != .contactsCompanies else {
            throw TandemError(.state, "contacts_companies cannot be deactivated: it is the parent of every other tab (R15); to stop all sync, remove the integration (R17)", extended: ExtendedCode.stateNotAllowed)
        }
        return try lifecycleTransaction(bound) { events in
            let state = try tabStates(bound.id)[name]
            switch state.flatMap({ TabState(rawValue: $0.state) }) {
            case .inactive?: return false
            case .configured?, nil: throw TandemError(.state, "tab \(name) was never activated: there is nothing to deactivate", extended: ExtendedCode.stateNotActivated)
            case .removed?: throw Self.removedError(bound.integration.name)
            case .active?, .initialSync?: break
            }
            try connection.execute("""
                UPDATE tandem.tabs SET state = 'inactive', inactive_since = now(), job = NULL, job_policy = NULL
                 WHERE integration_id = \(bound.id) AND tab = \(name)
                """)
            try connection.execute("SELECT tandem._reconcile_capture()")
            var payload: [String: Any] = [:]
            if let job = state?.job { payload["interrupted_job"] = job }
            try recordEvent(bound, type: "tab_deactivated", tab: tab, payload, into: &events)
            return true
        }
    }

    // MARK: - Reactivate (R16)

    /// Brings an inactive tab back. What changed while it was inactive is
    /// found by diffing every linked record against its mirror (set-based,
    /// nothing depends on trigger history); a record changed on one side only
    /// syncs to the other, one changed on both sides is decided by `policy`
    /// and recorded as "changed on both sides while inactive"; records added
    /// meanwhile sync as new, matched first. The policy applies to that
    /// catch-up only. Returns false when the tab was active already.
    @discardableResult
    public func reactivate(_ name: String, policy: ConflictPolicy) throws -> Bool {
        let bound = try requireBound()
        let tab = try configuredTab(name, in: bound)
        return try lifecycleTransaction(bound) { events in
            let state = try tabStates(bound.id)[name]
            switch state.flatMap({ TabState(rawValue: $0.state) }) {
            case .active?, .initialSync?: return false
            case .configured?, nil: throw TandemError(.state, "tab \(name) was never activated: activate it instead", extended: ExtendedCode.stateNotActivated)
            case .removed?: throw Self.removedError(bound.integration.name)
            case .inactive?: break
            }
            try connection.execute("""
                UPDATE tandem.tabs SET state = 'active', inactive_since = NULL, job = 'reactivation', job_policy = \(policy.rawValue),
                       job_started_at = now(), initial_sync_progress = '{}'
                 WHERE integration_id = \(bound.id) AND tab = \(name)
                """)
            try connection.execute("SELECT tandem._reconcile_capture()")
            try createMatchIndexes(bound, tab: tab)
            try recordEvent(bound, type: "tab_reactivated", tab: tab, ["policy": policy.rawValue], into: &events)
            // Hosts following the integration start the catch-up at once.
            try connection.execute("NOTIFY tandem")
            return true
        }
    }

    // MARK: - Remove (R17)

    /// Stops all sync of the bound integration: every tab is marked removed,
    /// every trigger, function and index Tandem put on the app tables goes
    /// (where no other integration needs it), and hosts following it return
    /// with TANDEM_REMOVED. Nothing in either app is deleted. The history
    /// (links, conflicts, runs, events) stays for reporting unless `purge`.
    /// A second call is harmless. Returns false when it was removed already.
    /// A match index the tables' owner created (README "Roles") cannot be
    /// dropped by Tandem's role: `leftForOwner` gets the statements for the
    /// owner to run, and so does the `integration_removed` event.
    @discardableResult
    public func remove(purge: Bool) throws -> Bool {
        try remove(purge: purge, leftForOwner: nil)
    }

    @discardableResult
    public func remove(purge: Bool, leftForOwner: UnsafeMutablePointer<[String]>?) throws -> Bool {
        guard let bound else {
            throw TandemError(.state, "no integration is bound to this handle: attach to the integration to remove", extended: ExtendedCode.stateNotBound)
        }
        return try database {
            try connection.execute("BEGIN")
            do {
                let row = try connection.execute("""
                    SELECT removed_at IS NOT NULL FROM tandem.integrations WHERE integration_id = \(bound.id) FOR UPDATE
                    """).rows.first
                guard let row else {
                    // Purged already: nothing is left to remove.
                    try connection.execute("COMMIT")
                    return false
                }
                let first = row[0] == "f"
                var events: [String] = []
                if first {
                    try connection.execute("UPDATE tandem.integrations SET removed_at = now() WHERE integration_id = \(bound.id)")
                    try connection.execute("""
                        UPDATE tandem.tabs SET state = 'removed', job = NULL, job_policy = NULL WHERE integration_id = \(bound.id)
                        """)
                    try connection.execute("DELETE FROM tandem.sync_cursors WHERE integration_id = \(bound.id)")
                    try connection.execute("DELETE FROM tandem.waiting_records WHERE integration_id = \(bound.id)")
                }
                try connection.execute("SELECT tandem._reconcile_capture()")
                let forOwner = try connection.execute("SELECT s FROM tandem._drop_unused_match_indexes() s").rows.compactMap { $0[0] }
                leftForOwner?.pointee = forOwner
                if first || !forOwner.isEmpty {
                    try recordEvent(bound, type: "integration_removed", tab: nil,
                                    ["purged": purge, "owner_must_run": forOwner], into: &events)
                }
                if purge {
                    try connection.execute("SELECT tandem._purge_integration(\(bound.id))")
                }
                // Hosts following the integration learn of it at once.
                try connection.execute("NOTIFY tandem")
                try connection.execute("COMMIT")
                if isActiveSyncer { try? releaseSyncerLock(bound) }
                emit(events)
                return first || purge
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    // MARK: - Uninstall

    /// Drops the tandem schema, with the history of removed integrations.
    /// Refused, naming them, while an integration is still in place.
    public func uninstall() throws {
        try database {
            let installed = try connection.execute("SELECT to_regclass('tandem.integrations') IS NOT NULL").scalar
            guard installed == "t" else { return }
            try connection.execute("BEGIN")
            do {
                try connection.execute("LOCK TABLE tandem.integrations IN EXCLUSIVE MODE")
                let names = try connection.execute("""
                    SELECT name FROM tandem.integrations WHERE removed_at IS NULL ORDER BY name
                    """).rows.compactMap { $0[0] }
                if !names.isEmpty {
                    throw TandemError(.state, "the tandem schema still serves integration\(names.count == 1 ? "" : "s") \(names.map { "'\($0)'" }.joined(separator: ", ")): remove \(names.count == 1 ? "it" : "them") first (R17)", extended: ExtendedCode.stateNotAllowed)
                }
                // Nothing of Tandem's may stay on the app tables.
                try connection.execute("SELECT tandem._reconcile_capture()")
                let forOwner = try connection.execute("SELECT s FROM tandem._drop_unused_match_indexes() s").rows.compactMap { $0[0] }
                if !forOwner.isEmpty {
                    throw TandemError(.permission, "match indexes created by the tables' owner are still on the app tables; as their owner, run:\n\(forOwner.joined(separator: "\n"))\nthen uninstall again", sqlstate: "42501")
                }
                try connection.execute("DROP SCHEMA tandem CASCADE")
                try connection.execute("COMMIT")
                bound = nil
                isActiveSyncer = false
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }
}
