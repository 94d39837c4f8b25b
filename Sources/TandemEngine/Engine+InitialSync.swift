import Foundation
import TandemCore
import TandemPostgres

/// The initial sync of a tab (R10) is the ordinary pass fed with all existing
/// records instead of the change log: chunk by chunk in key order, module by
/// module (parents first), pipeline side then CRM side (the CRM view only, R7).
/// Each chunk commits with its progress, so a host killed midway resumes
/// where it stopped (B5) and people can watch tandem.tab_status meanwhile.
struct InitialSyncChunk {
    let tab: Tab
    /// nil when every module and side is done and the tab only needs completing.
    let module: String?
    let side: Side?
    let read: Int64
    let last: String?
    let done: Bool
    var progress: [String: [String: [String: Any]]]
}

extension Engine {
    func initialSyncChunk(_ bound: Bound, states: [String: TabRow], events: inout [String]) throws -> InitialSyncChunk? {
        for tab in Tab.allCases where states[tab.rawValue]?.state == TabState.initialSync.rawValue {
            let progressText = states[tab.rawValue]?.progress ?? "{}"
            let progress = (try? JSONSerialization.jsonObject(with: Data(progressText.utf8))) as? [String: [String: [String: Any]]] ?? [:]
            for module in bound.integration.modules(of: tab) {
                for side in Side.allCases {
                    let entry = progress[module.name]?[side.rawValue] ?? [:]
                    if entry["done"] as? Bool == true { continue }
                    let after = entry["after"] as? String
                    guard let compiler = bound.compilers.first(where: { $0.module.name == module.name }) else { continue }
                    let limit = bound.integration.initialSyncChunk
                    let row = try connection.execute(compiler.initialChunk(side, after: after, limit: limit)).rows.first ?? []
                    let read = row.first.flatMap { $0.flatMap { Int64($0) } } ?? 0
                    let last = (row.count > 1 ? row[1] : nil) ?? after
                    return InitialSyncChunk(tab: tab, module: module.name, side: side, read: read, last: last,
                                            done: read < Int64(limit), progress: progress)
                }
            }
            return InitialSyncChunk(tab: tab, module: nil, side: nil, read: 0, last: nil, done: true, progress: progress)
        }
        return nil
    }

    /// Records the chunk's progress and, after the last one, completes the tab.
    func finishChunk(_ bound: Bound, _ chunk: InitialSyncChunk, events: inout [String]) throws {
        var progress = chunk.progress
        if let module = chunk.module, let side = chunk.side {
            var entry = progress[module]?[side.rawValue] ?? [:]
            entry["after"] = chunk.last ?? NSNull()
            let read = ((entry["read"] as? NSNumber)?.int64Value ?? 0) &+ chunk.read
            entry["read"] = read
            entry["done"] = chunk.done
            progress[module, default: [:]][side.rawValue] = entry
            events.append(Self.json([
                "type": "initial_sync_progress", "integration": bound.integration.name, "tab": chunk.tab.rawValue,
                "module": module, "side": side.rawValue, "read": read, "done": chunk.done,
            ]))
        }
        let data = try JSONSerialization.data(withJSONObject: progress, options: [.sortedKeys])
        let text = String(decoding: data, as: UTF8.self)
        try connection.execute("UPDATE tandem.tabs SET initial_sync_progress = \(text)::jsonb WHERE integration_id = \(bound.id) AND tab = \(chunk.tab.rawValue)")

        let modules = bound.integration.modules(of: chunk.tab)
        let complete = modules.allSatisfy { module in
            Side.allCases.allSatisfy { side in progress[module.name]?[side.rawValue]?["done"] as? Bool == true }
        }
        guard complete else { return }
        let names = modules.map(\.name).joined(separator: ",")
        let counts = try connection.execute("""
            SELECT json_build_object(
                     'type', 'initial_sync_complete', 'integration', i.name, 'tab', \(chunk.tab.rawValue)::text,
                     'modules', (SELECT coalesce(json_object_agg(m.module, json_build_object(
                                   'linked', (SELECT count(*) FROM tandem.links l WHERE l.integration_id = i.integration_id AND l.module = m.module),
                                   'matched', (SELECT count(*) FROM tandem.links l WHERE l.integration_id = i.integration_id AND l.module = m.module AND l.origin = 'matched'),
                                   'created_in_crm', (SELECT count(*) FROM tandem.links l WHERE l.integration_id = i.integration_id AND l.module = m.module AND l.origin = 'pipeline'),
                                   'created_in_pipeline', (SELECT count(*) FROM tandem.links l WHERE l.integration_id = i.integration_id AND l.module = m.module AND l.origin = 'crm'),
                                   'waiting', (SELECT count(DISTINCT (w.side, w.record_id)) FROM tandem.waiting_records w WHERE w.integration_id = i.integration_id AND w.module = m.module),
                                   'errors', (SELECT count(*) FROM tandem.record_failures f WHERE f.integration_id = i.integration_id AND f.module = m.module AND f.resolved_at IS NULL))), '{}')
                                   FROM unnest(string_to_array(\(names), ',')) AS m(module)),
                     'seconds', round(extract(epoch FROM clock_timestamp() - t.activated_at)::numeric, 3))::text
              FROM tandem.integrations i JOIN tandem.tabs t ON t.integration_id = i.integration_id AND t.tab = \(chunk.tab.rawValue)
             WHERE i.integration_id = \(bound.id)
            """)
        let event = counts.scalar ?? "{}"
        try connection.execute("""
            UPDATE tandem.tabs SET state = 'active', initial_sync_completed_at = now()
             WHERE integration_id = \(bound.id) AND tab = \(chunk.tab.rawValue)
            """)
        try connection.execute("""
            INSERT INTO tandem.events (integration_id, type, tab, payload)
            VALUES (\(bound.id), 'initial_sync_complete', \(chunk.tab.rawValue), \(event)::jsonb)
            """)
        events.append(event)
    }
}
